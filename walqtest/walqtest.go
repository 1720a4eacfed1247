// Package walqtest is a test kit for apps that use walq: it opens a queue in
// a temporary directory on a mock clock in one call, runs due jobs
// synchronously through the app's handlers (advancing the clock through
// retries and backoff on request), and asserts what happened with failure
// messages that say what was found instead.
//
// It may change between versions; only package queue has a compatibility
// promise.
package walqtest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// TB is what the kit needs of a test: *testing.T and *testing.B have it.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Epoch is where the mock clock of Open starts: a round time, so that
// times in failure messages are easy to read.
var Epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// Queue is a queue.Queue opened for a test, with its mock clock and the
// handlers Run uses. It is meant for one test goroutine: Run is not safe
// for concurrent use, the embedded *queue.Queue is.
type Queue struct {
	*queue.Queue
	// Clock is the queue's mock clock, at Epoch when Open returns.
	Clock *clock.Mock

	t          TB
	handlers   map[string]worker.Handler
	middleware []worker.Middleware
}

// Open opens a queue in t.TempDir() on a mock clock at Epoch, with opts
// (nil for the defaults) otherwise; Clock, background maintenance and
// logging are the kit's (a mock clock, none, discarded) unless opts set
// them. The queue is closed when the test ends; an error there fails the
// test.
func Open(t TB, opts *queue.Options) *Queue {
	t.Helper()
	var o queue.Options
	if opts != nil {
		o = *opts
	}
	mc, _ := o.Clock.(*clock.Mock)
	if o.Clock == nil {
		mc = clock.NewMock()
		mc.Set(Epoch)
		o.Clock = mc
	}
	if mc == nil {
		t.Fatalf("walqtest.Open: Options.Clock must be a *clock.Mock (or nil), not %T", o.Clock)
	}
	if o.CompactRatio == 0 {
		o.CompactRatio = -1
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = 10000 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := queue.Open(t.TempDir(), &o)
	if err != nil {
		t.Fatalf("walqtest.Open: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("walqtest: closing the queue: %v", err)
		}
	})
	return &Queue{Queue: q, Clock: mc, t: t, handlers: map[string]worker.Handler{}}
}

// Handle registers h for the named queue's jobs in Run.
func (q *Queue) Handle(queueName string, h worker.Handler) {
	if queueName == "" {
		queueName = queue.DefaultQueue
	}
	q.handlers[queueName] = h
}

// Use adds middleware around every handler Run calls, as
// worker.Options.Middleware does (first outermost).
func (q *Queue) Use(mw ...worker.Middleware) { q.middleware = append(q.middleware, mw...) }

// RunOptions steer Run.
type RunOptions struct {
	// Advance lets Run move the mock clock to the next scheduled job
	// (a retry after its backoff, a delayed job) whenever nothing is due,
	// until no job of a handled queue is pending or MaxAdvance is used up.
	// Defaults to false: only jobs due now run.
	Advance bool
	// MaxAdvance bounds how far Run moves the clock in all. Defaults to
	// 24h.
	MaxAdvance time.Duration
	// MaxJobs bounds the attempts Run makes, against a handler that
	// enqueues without end. Defaults to 10,000.
	MaxJobs int
}

// Report is what Run did.
type Report struct {
	// Attempts counts the attempts run; Completed, Failed (retried or
	// snoozed) and Dead their outcomes as recorded.
	Attempts, Completed, Failed, Dead int
	// Advanced is how far the clock was moved.
	Advanced time.Duration
}

// Run runs every due job of the queues with a handler, one at a time on
// the calling goroutine, through the middleware and the handler, and
// records each outcome as the worker runtime would (Complete, or Fail
// with the handler's error: queue.Permanent, queue.RetryAfter and
// queue.Snooze steer it). Jobs that a handler enqueues run too. With
// opts.Advance it moves the clock through backoff and delays until no job
// of a handled queue is left pending. It fails the test on a queue error.
// Follow-up jobs of worker.Options.OnComplete are not made: call
// q.CompleteAndEnqueue in a test that needs them.
func (q *Queue) Run(ctx context.Context, opts *RunOptions) Report {
	q.t.Helper()
	var o RunOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxAdvance == 0 {
		o.MaxAdvance = 24 * time.Hour
	}
	if o.MaxJobs == 0 {
		o.MaxJobs = 10000
	}
	var rep Report
	for rep.Attempts < o.MaxJobs {
		ran, err := q.runDue(ctx, &rep, o.MaxJobs)
		if err != nil {
			q.t.Fatalf("walqtest: Run: %v", err)
			return rep
		}
		if ran || !o.Advance {
			if !ran {
				return rep
			}
			continue
		}
		next, ok := q.nextScheduled(ctx)
		if !ok {
			return rep
		}
		d := next.Sub(q.Clock.Now())
		if rep.Advanced+d > o.MaxAdvance {
			q.t.Errorf("walqtest: Run: the next job is due at %v, beyond MaxAdvance (%v) from the start", next, o.MaxAdvance)
			return rep
		}
		q.Clock.Add(d)
		rep.Advanced += d
	}
	q.t.Errorf("walqtest: Run: stopped after MaxJobs (%d) attempts; a handler may enqueue without end", o.MaxJobs)
	return rep
}

// runDue runs the jobs due now; ran reports whether it ran any.
func (q *Queue) runDue(ctx context.Context, rep *Report, max int) (ran bool, err error) {
	for _, name := range slices.Sorted(maps.Keys(q.handlers)) {
		for rep.Attempts < max {
			l, err := q.TryLease(ctx, name)
			if err == queue.ErrNoJob {
				break
			}
			if err != nil {
				return ran, err
			}
			ran = true
			if err := q.attempt(ctx, l, rep); err != nil {
				return ran, err
			}
		}
	}
	return ran, nil
}

// attempt runs one leased job and records its outcome.
func (q *Queue) attempt(ctx context.Context, l *queue.Lease, rep *Report) error {
	rep.Attempts++
	h := q.handlers[l.Job.Queue]
	for i := len(q.middleware) - 1; i >= 0; i-- {
		h = q.middleware[i](h)
	}
	res, herr := call(ctx, h, l.Job)
	if herr == nil {
		rep.Completed++
		return q.Complete(ctx, l.Token, res)
	}
	if err := q.Fail(ctx, l.Token, herr); err != nil {
		return err
	}
	j, err := q.Get(ctx, l.Job.ID)
	if err != nil {
		return err
	}
	if j.State == queue.StateDead {
		rep.Dead++
	} else {
		rep.Failed++
	}
	return nil
}

// call runs h, turning a panic into an error as the runtime does.
func call(ctx context.Context, h worker.Handler, job *queue.Job) (res []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("walqtest: handler panicked: %v", v)
		}
	}()
	return h(ctx, job)
}

// nextScheduled returns the earliest run-at of a scheduled job of a
// handled queue.
func (q *Queue) nextScheduled(ctx context.Context) (time.Time, bool) {
	var next time.Time
	for name := range q.handlers {
		js, err := q.Jobs(ctx, queue.JobFilter{Queue: name, State: queue.StateScheduled})
		if err != nil {
			q.t.Fatalf("walqtest: listing scheduled jobs: %v", err)
		}
		for _, j := range js {
			if next.IsZero() || j.RunAt.Before(next) {
				next = j.RunAt
			}
		}
	}
	return next, !next.IsZero()
}
