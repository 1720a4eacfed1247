package worker

import (
	"context"
	"fmt"

	"github.com/walq/walq/queue"
)

// progressKey is the context key of a running handler's progressReporter.
type progressKey struct{}

// progressReporter reports the progress of one lease.
type progressReporter struct {
	q   progressEngine
	tok queue.Token
}

// withProgress returns ctx carrying what ReportProgress needs for the lease.
func withProgress(ctx context.Context, e queue.Engine, tok queue.Token) context.Context {
	q, _ := e.(progressEngine)
	return context.WithValue(ctx, progressKey{}, progressReporter{q: q, tok: tok})
}

// progressEngine is an engine that records progress reports (*queue.Queue
// does; the Engine interface does not require it).
type progressEngine interface {
	Progress(ctx context.Context, tok queue.Token, n int64, msg string) error
}

// ReportProgress records the progress of the job whose handler received
// ctx: a number and a short message (see queue.Queue.Progress). Each call is
// one log entry: report every few seconds, not every item. Outside a
// handler it returns an error matching queue.ErrInvalid; after the lease
// was lost, queue.ErrLeaseLost.
func ReportProgress(ctx context.Context, n int64, msg string) error {
	pr, ok := ctx.Value(progressKey{}).(progressReporter)
	if !ok {
		return fmt.Errorf("%w: ReportProgress called outside a handler's context", queue.ErrInvalid)
	}
	if pr.q == nil {
		return fmt.Errorf("%w: this engine does not record progress", queue.ErrInvalid)
	}
	return pr.q.Progress(ctx, pr.tok, n, msg)
}
