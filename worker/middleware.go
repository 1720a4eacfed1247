package worker

import (
	"fmt"
	"maps"

	"github.com/walq/walq/queue"
)

// Middleware wraps a Handler: it runs around every attempt of a job, sees
// the job (job.Attempt is the running attempt's number, job.Meta its
// metadata) and the attempt's outcome, and may change the context the
// handler gets, its result or its error (queue.Permanent, say).
//
// Middleware is set globally (Options.Middleware) and per queue
// (HandlerOptions.Middleware). The order is documented and fixed: the
// global middleware, first outermost, then the queue's, first outermost,
// then the handler; so Options.Middleware[0] sees an attempt first and its
// outcome last. All of it runs inside the runtime's own attempt handling:
// under the attempt's timeout context, on the attempt's goroutine, with a
// panic anywhere in the chain recovered and recorded as a failed attempt
// like a handler's; its outcome is what the runtime records.
type Middleware func(next Handler) Handler

// wrap builds a queue's handler: global middleware around the queue's
// around h.
func wrap(global, perQueue []Middleware, h Handler) (Handler, error) {
	for i := len(perQueue) - 1; i >= 0; i-- {
		if perQueue[i] == nil {
			return nil, fmt.Errorf("%w: HandlerOptions.Middleware[%d] is nil", queue.ErrInvalid, i)
		}
		h = perQueue[i](h)
	}
	for i := len(global) - 1; i >= 0; i-- {
		if global[i] == nil {
			return nil, fmt.Errorf("%w: Options.Middleware[%d] is nil", queue.ErrInvalid, i)
		}
		h = global[i](h)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: a middleware returned a nil handler", queue.ErrInvalid)
	}
	return h, nil
}

// inheritMeta gives follow-up jobs (from Options.OnComplete, such as
// Callback's) the completed job's metadata: a trace, a tenant or a request
// ID carries on to the work the job caused. Entries a follow-up sets
// itself win. A follow-up's map is copied, never changed.
func inheritMeta(job *queue.Job, then []queue.NewJob) {
	if len(job.Meta) == 0 {
		return
	}
	for i := range then {
		m := maps.Clone(job.Meta)
		maps.Copy(m, then[i].Meta)
		then[i].Meta = m
	}
}
