package queue

import (
	"context"
	"fmt"
)

// EnqueueFunc is the shape of EnqueueBatch: what an EnqueueMiddleware
// wraps.
type EnqueueFunc func(ctx context.Context, jobs []NewJob) ([]Enqueued, error)

// EnqueueMiddleware wraps the enqueueing of jobs (Options.EnqueueMiddleware).
// It sees every Enqueue (as a batch of one) and EnqueueBatch call before
// the jobs are validated, with the caller's context, and the results or
// error after they are durable. It may change the jobs it passes on: the
// slice is the queue's own copy of the caller's, but the jobs' Payload and
// Meta are the caller's, so a middleware that adds metadata sets Meta to a
// new map (maps.Clone, then set) instead of writing into the caller's.
// Follow-up jobs of a completion (Completion.Then, CompleteAndEnqueue) are
// part of the completion's log entry and do not pass through it.
//
// A middleware must call next at most once and return what it returned
// (or an error of its own, enqueueing nothing). It runs on the caller's
// goroutine and must be safe for concurrent use.
type EnqueueMiddleware func(next EnqueueFunc) EnqueueFunc

// checkEnqueueMiddleware refuses a nil middleware.
func checkEnqueueMiddleware(mw []EnqueueMiddleware) error {
	for i, m := range mw {
		if m == nil {
			return fmt.Errorf("%w: Options.EnqueueMiddleware[%d] is nil", ErrInvalid, i)
		}
	}
	return nil
}

// chainEnqueue wraps inner in mw, mw[0] outermost; nil without middleware.
func chainEnqueue(mw []EnqueueMiddleware, inner EnqueueFunc) EnqueueFunc {
	if len(mw) == 0 {
		return nil
	}
	f := inner
	for i := len(mw) - 1; i >= 0; i-- {
		f = mw[i](f)
	}
	return f
}
