package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// within is how long a test waits for a goroutine it set going before it
// declares the goroutine stuck. It is a failure deadline, never a way to
// synchronise: every wait in these tests ends by an event (a channel send,
// an Event, a timer created on the mock clock, a state the queue reports).
const within = 10 * time.Second

// epoch is where the mock clock starts: a round time, so that run-at times
// in failure messages are easy to read.
var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// testClock is a mock clock that records every timer and ticker created on
// it. The runtime arms them in goroutines of its own (a heartbeat ticker per
// attempt, the fetcher's timer while it waits for a retry to come due), and
// the mock fires only what exists when it is advanced: a test waits until
// the timer or ticker it means to fire exists, then advances the clock.
type testClock struct {
	*clock.Mock

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever one is created
	tickers []time.Duration
	timers  []time.Time // deadlines
}

func newTestClock() *testClock {
	m := clock.NewMock()
	m.Set(epoch)
	return &testClock{Mock: m, changed: make(chan struct{})}
}

// Ticker creates a mock ticker and records its period.
func (c *testClock) Ticker(d time.Duration) *clock.Ticker {
	t := c.Mock.Ticker(d)
	c.mu.Lock()
	c.tickers = append(c.tickers, d)
	c.signalLocked()
	c.mu.Unlock()
	return t
}

// Timer creates a mock timer and records its deadline.
func (c *testClock) Timer(d time.Duration) *clock.Timer {
	at := c.Mock.Now().Add(d)
	t := c.Mock.Timer(d)
	c.mu.Lock()
	c.timers = append(c.timers, at)
	c.signalLocked()
	c.mu.Unlock()
	return t
}

func (c *testClock) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until cond, evaluated under c.mu, holds.
func (c *testClock) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not after %v", what, within)
		}
	}
}

// waitTickers waits until n tickers of period d have been created since the
// clock was made.
func (c *testClock) waitTickers(t *testing.T, d time.Duration, n int) {
	t.Helper()
	c.waitFor(t, "ticker of "+d.String(), func() bool {
		k := 0
		for _, p := range c.tickers {
			if p == d {
				k++
			}
		}
		return k >= n
	})
}

// waitTimer waits until a timer due at `at` exists (a fetcher waiting for
// a scheduled job), so that advancing the clock to `at` fires it.
func (c *testClock) waitTimer(t *testing.T, at time.Time) {
	t.Helper()
	c.waitFor(t, "timer due at "+at.String(), func() bool {
		return slices.ContainsFunc(c.timers, at.Equal)
	})
}

// openQueue opens a queue in a fresh directory on a testClock. opts may set
// anything but the clock; the background compactor is off (its ticker would
// fire on every minute the tests advance). The queue is closed on cleanup.
func openQueue(t *testing.T, opts *queue.Options) (*queue.Queue, *testClock) {
	t.Helper()
	var o queue.Options
	if opts != nil {
		o = *opts
	}
	clk := newTestClock()
	o.Clock = clk
	o.CompactRatio = -1
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := queue.Open(t.TempDir(), &o)
	if err != nil {
		t.Fatalf("queue.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q, clk
}

// newRuntime makes a runtime for q with opts (logging discarded unless
// opts say otherwise). On cleanup it stops the runtime with an already
// expired context, cancelling whatever still runs, and checks that no job is
// left leased: Stop hands every lease back.
func newRuntime(t *testing.T, q *queue.Queue, opts *Options) *Runtime {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rt, err := New(q, &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { stopAndCheck(t, q, rt) })
	return rt
}

// startRuntime makes a runtime for q with opts, registers handlers (queue
// name → handler, with the runtime's defaults) and starts it.
func startRuntime(t *testing.T, q *queue.Queue, opts *Options, handlers map[string]Handler) *Runtime {
	t.Helper()
	rt := newRuntime(t, q, opts)
	for name, h := range handlers {
		if err := rt.Handle(name, h, nil); err != nil {
			t.Fatalf("Handle(%q): %v", name, err)
		}
	}
	if err := rt.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return rt
}

// stopAndCheck stops rt at once and checks that it left no lease behind.
func stopAndCheck(t *testing.T, q *queue.Queue, rt *Runtime) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rt.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Stop: %v", err)
	}
	leased, err := q.Jobs(context.Background(), queue.JobFilter{State: queue.StateLeased})
	if err != nil {
		t.Errorf("Jobs: %v", err)
		return
	}
	for _, j := range leased {
		t.Errorf("after Stop, job %d (queue %q) is still leased (attempt %d)", j.ID, j.Queue, j.Attempt)
	}
}

// enqueue enqueues a job and returns its ID.
func enqueue(t *testing.T, q *queue.Queue, nj queue.NewJob) uint64 {
	t.Helper()
	r, err := q.Enqueue(context.Background(), nj)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", nj, err)
	}
	return r.ID
}

// getJob returns a snapshot of job id.
func getJob(t *testing.T, q *queue.Queue, id uint64) *queue.Job {
	t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return j
}

// waitJob polls the queue's view of job id (Get takes the queue's lock, so
// each look is a consistent snapshot) until cond holds. It is for state
// that the runtime changes in its own goroutines with no event to wait on
// (a heartbeat moving a lease deadline): an observation, bounded by within,
// that yields the processor between looks.
func waitJob(t *testing.T, q *queue.Queue, id uint64, what string, cond func(*queue.Job) bool) *queue.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := getJob(t, q, id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: %s: not after %v; last seen %s attempt %d, deadline %v, history %v",
				id, what, within, j.State, j.Attempt, j.LeaseDeadline, outcomes(j))
		}
		runtime.Gosched()
	}
}

// waitResult waits for job id to finish and returns what Wait returns.
func waitResult(t *testing.T, q *queue.Queue, id uint64) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	res, err := q.Wait(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		j := getJob(t, q, id)
		t.Fatalf("Wait(%d): not finished after %v; %s attempt %d, history %v", id, within, j.State, j.Attempt, outcomes(j))
	}
	return res, err
}

// nextEvent returns the next event of sub that match accepts, skipping the
// others.
func nextEvent(t *testing.T, sub *queue.Subscription, what string, match func(queue.Event) bool) queue.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("waiting for %s: subscription closed", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("waiting for %s: no such event after %v", what, within)
		}
	}
}

// eventsFor waits for an event of kind for every job in ids, in any order.
func eventsFor(t *testing.T, sub *queue.Subscription, kind queue.EventKind, ids []uint64) {
	t.Helper()
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for len(want) > 0 {
		nextEvent(t, sub, fmt.Sprintf("%s events of jobs %v", kind, ids), func(ev queue.Event) bool {
			if ev.Kind == kind && want[ev.Job] {
				delete(want, ev.Job)
				return true
			}
			return false
		})
	}
}

// eventOf matches events of one kind for one job.
func eventOf(kind queue.EventKind, job uint64) func(queue.Event) bool {
	return func(ev queue.Event) bool { return ev.Kind == kind && ev.Job == job }
}

// receive returns the next value of ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("%s: nothing after %v", what, within)
		panic("unreachable")
	}
}

// outcomes lists the outcomes of a job's attempts, oldest first.
func outcomes(j *queue.Job) []string {
	var out []string
	for _, a := range j.History {
		out = append(out, a.Outcome)
	}
	return out
}
