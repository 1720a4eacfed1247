package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// t0 is where the mock clock starts in these tests.
var t0 = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// openMock opens a queue in a fresh directory on a mock clock at t0, with
// the background compactor off. It is closed on cleanup.
func openMock(t *testing.T, opts *queue.Options) (*queue.Queue, *clock.Mock) {
	t.Helper()
	var o queue.Options
	if opts != nil {
		o = *opts
	}
	clk := clock.NewMock()
	clk.Set(t0)
	o.Clock, o.CompactRatio, o.Logger = clk, -1, slog.New(slog.DiscardHandler)
	q, err := queue.Open(t.TempDir(), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	})
	return q, clk
}

// drain returns the events already buffered in sub. Events are published
// before the call that caused them returns, so after a call they are all
// there: no waiting.
func drain(sub *queue.Subscription) []queue.Event {
	var evs []queue.Event
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// describe formats an event with times as offsets from t0.
func describe(ev queue.Event) string {
	s := fmt.Sprintf("+%v %s job=%d queue=%s attempt=%d", ev.At.Sub(t0), ev.Kind, ev.Job, ev.Queue, ev.Attempt)
	if !ev.NextRunAt.IsZero() {
		s += fmt.Sprintf(" next=+%v", ev.NextRunAt.Sub(t0))
	}
	if ev.Duration != 0 {
		s += fmt.Sprintf(" took=%v", ev.Duration)
	}
	if ev.Error != "" {
		s += fmt.Sprintf(" error=%q", ev.Error)
	}
	return s
}

// TestEventsEveryTransition walks jobs through every transition and checks
// each step's events: kind, job, queue, attempt, and the time fields.
func TestEventsEveryTransition(t *testing.T) {
	t.Parallel()
	q, clk := openMock(t, nil)
	sub := q.Subscribe(64)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	enq := func(nj queue.NewJob) uint64 {
		t.Helper()
		r, err := q.Enqueue(ctx, nj)
		must(err)
		return r.ID
	}
	lease := func(name string) queue.Token {
		t.Helper()
		l, err := q.TryLease(ctx, name)
		must(err)
		return l.Token
	}
	var a, b, d uint64
	var tok queue.Token

	seen := map[queue.EventKind]bool{}
	for _, step := range []struct {
		name string
		do   func()
		want []string
	}{
		{"enqueue", func() { a = enq(queue.NewJob{Queue: "a"}) },
			[]string{"+0s enqueued job=1 queue=a attempt=0"}},
		{"lease", func() { tok = lease("a") },
			[]string{"+0s leased job=1 queue=a attempt=1"}},
		{"complete after 2s", func() { clk.Add(2 * time.Second); must(q.Complete(ctx, tok, nil)) },
			[]string{"+2s completed job=1 queue=a attempt=1 took=2s"}},
		{"fail after 3s", func() {
			b = enq(queue.NewJob{Queue: "b", MaxAttempts: 2})
			tok = lease("b")
			clk.Add(3 * time.Second)
			must(q.Fail(ctx, tok, errors.New("boom")))
		}, []string{
			"+2s enqueued job=2 queue=b attempt=0",
			"+2s leased job=2 queue=b attempt=1",
			`+5s retrying job=2 queue=b attempt=1 next=+6s took=3s error="boom"`,
		}},
		{"fail permanently", func() {
			clk.Add(time.Second)
			must(q.Fail(ctx, lease("b"), queue.Permanent(errors.New("bad"))))
		}, []string{
			"+6s leased job=2 queue=b attempt=2",
			`+6s dead job=2 queue=b attempt=2 error="bad"`,
		}},
		{"requeue to another queue", func() { must(q.Requeue(ctx, []uint64{b}, queue.RequeueOptions{Queue: "b2"})) },
			[]string{"+6s requeued job=2 queue=b2 attempt=0"}},
		{"release", func() { must(q.Release(ctx, lease("b2"))) }, []string{
			"+6s leased job=2 queue=b2 attempt=1",
			"+6s released job=2 queue=b2 attempt=1 next=+6s",
		}},
		{"snooze", func() { must(q.Fail(ctx, lease("b2"), queue.Snooze(5*time.Second))) }, []string{
			"+6s leased job=2 queue=b2 attempt=1",
			"+6s released job=2 queue=b2 attempt=1 next=+11s",
		}},
		{"lease expires", func() {
			enq(queue.NewJob{Queue: "c"})
			lease("c")
			clk.Add(31 * time.Second)
			tok = lease("c") // reaps the expired lease, then leases again
		}, []string{
			"+6s enqueued job=3 queue=c attempt=0",
			"+6s leased job=3 queue=c attempt=1",
			`+37s expired job=3 queue=c attempt=1 took=31s error="walq: lease expired during attempt 1"`,
			"+37s leased job=3 queue=c attempt=2",
		}},
		{"cancel", func() {
			d = enq(queue.NewJob{Queue: "d", Delay: time.Hour})
			must(q.Cancel(ctx, d))
		}, []string{
			"+37s enqueued job=4 queue=d attempt=0",
			"+37s cancelled job=4 queue=d attempt=0",
		}},
		{"purge", func() { must(q.Purge(ctx, []uint64{a})) },
			[]string{"+37s purged job=1 queue=a attempt=0"}},
	} {
		step.do()
		var got []string
		for _, ev := range drain(sub) {
			got = append(got, describe(ev))
			seen[ev.Kind] = true
		}
		if strings.Join(got, "\n") != strings.Join(step.want, "\n") {
			t.Errorf("%s: events\n\t%s\nwant\n\t%s", step.name, strings.Join(got, "\n\t"), strings.Join(step.want, "\n\t"))
		}
	}
	for _, k := range []queue.EventKind{queue.EventEnqueued, queue.EventLeased, queue.EventCompleted,
		queue.EventRetrying, queue.EventDead, queue.EventExpired, queue.EventReleased, queue.EventRequeued,
		queue.EventCancelled, queue.EventPurged} {
		if !seen[k] {
			t.Errorf("no %s event", k)
		}
	}
	if n := sub.Dropped(); n != 0 {
		t.Errorf("%d events dropped with a buffer that was never full", n)
	}
}

// TestEventDuration checks that an attempt's events carry how long it ran
// on the queue's clock, whatever ended it.
func TestEventDuration(t *testing.T) {
	t.Parallel()
	ends := []struct {
		kind queue.EventKind
		end  func(context.Context, *queue.Queue, queue.Token) error
	}{
		{queue.EventCompleted, func(ctx context.Context, q *queue.Queue, tok queue.Token) error {
			return q.Complete(ctx, tok, []byte("ok"))
		}},
		{queue.EventRetrying, func(ctx context.Context, q *queue.Queue, tok queue.Token) error {
			return q.Fail(ctx, tok, errors.New("boom"))
		}},
		{queue.EventDead, func(ctx context.Context, q *queue.Queue, tok queue.Token) error {
			return q.Fail(ctx, tok, queue.Permanent(errors.New("bad")))
		}},
		{queue.EventReleased, func(ctx context.Context, q *queue.Queue, tok queue.Token) error {
			return q.Release(ctx, tok)
		}},
	}
	for _, e := range ends {
		for _, d := range []time.Duration{0, 1500 * time.Millisecond, 2 * time.Minute} {
			t.Run(fmt.Sprintf("%s/after=%v", e.kind, d), func(t *testing.T) {
				t.Parallel()
				q, clk := openMock(t, &queue.Options{LeaseDuration: time.Hour})
				if _, err := q.Enqueue(t.Context(), queue.NewJob{}); err != nil {
					t.Fatal(err)
				}
				l, err := q.TryLease(t.Context(), "")
				if err != nil {
					t.Fatal(err)
				}
				sub := q.Subscribe(4)
				clk.Add(d)
				if err := e.end(t.Context(), q, l.Token); err != nil {
					t.Fatal(err)
				}
				evs := drain(sub)
				if len(evs) != 1 || evs[0].Kind != e.kind || evs[0].Duration != d {
					var got []string
					for _, ev := range evs {
						got = append(got, describe(ev))
					}
					t.Errorf("events %q, want one %s that took %v", got, e.kind, d)
				}
			})
		}
	}
}

func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	t.Parallel()
	q, _ := openMock(t, nil)
	slow := q.Subscribe(1) // nobody reads it while the jobs are enqueued
	fast := q.Subscribe(64)
	const jobs = 10
	done := make(chan error, 1)
	go func() {
		for range jobs {
			if _, err := q.Enqueue(context.Background(), queue.NewJob{}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("enqueueing blocked on a subscriber whose buffer is full")
	}
	if n := slow.Dropped(); n != jobs-1 {
		t.Errorf("slow subscriber: Dropped() = %d, want %d", n, jobs-1)
	}
	if evs := drain(slow); len(evs) != 1 || evs[0].Job != 1 {
		t.Errorf("slow subscriber kept %d events (first job %v), want the first one only", len(evs), evs)
	}
	if evs := drain(fast); len(evs) != jobs || fast.Dropped() != 0 {
		t.Errorf("fast subscriber: %d events, %d dropped; want %d, 0", len(evs), fast.Dropped(), jobs)
	}
	// Once read, the buffer takes events again.
	if _, err := q.Enqueue(t.Context(), queue.NewJob{}); err != nil {
		t.Fatal(err)
	}
	if evs := drain(slow); len(evs) != 1 || evs[0].Job != jobs+1 || slow.Dropped() != jobs-1 {
		t.Errorf("after reading: %d events, %d dropped; want job %d's event and still %d dropped", len(evs), slow.Dropped(), jobs+1, jobs-1)
	}
}

func TestSubscriptionClose(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		close func(q *queue.Queue, sub *queue.Subscription) *queue.Subscription
	}{
		{"Close", func(q *queue.Queue, sub *queue.Subscription) *queue.Subscription {
			sub.Close()
			sub.Close() // idempotent
			return sub
		}},
		{"queue Close", func(q *queue.Queue, sub *queue.Subscription) *queue.Subscription {
			q.Close()
			return sub
		}},
		{"subscribe after queue Close", func(q *queue.Queue, _ *queue.Subscription) *queue.Subscription {
			q.Close()
			return q.Subscribe(8)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openMock(t, nil)
			sub := tc.close(q, q.Subscribe(8))
			select {
			case ev, ok := <-sub.C:
				if ok {
					t.Fatalf("received %v, want C closed", describe(ev))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("C not closed")
			}
			closeSub(t, sub) // once more, whoever closed it first
			// The queue goes on without the subscriber (if still open).
			if _, err := q.Enqueue(t.Context(), queue.NewJob{}); err != nil && !errors.Is(err, queue.ErrClosed) {
				t.Fatal(err)
			}
		})
	}
}

// closeSub calls sub.Close, turning a panic into a test failure so that
// the other tests of the package still run.
func closeSub(t *testing.T, sub *queue.Subscription) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("BUG: Subscription.Close panicked: %v (queue/events.go, Queue.Subscribe closes the channel of a "+
				"subscription made after Close directly instead of through s.once, so its Close closes it again)", r)
		}
	}()
	sub.Close()
}

// upperBound is the bound of the histogram bucket that holds d: 100µs
// doubling.
func upperBound(d time.Duration) time.Duration {
	b := 100 * time.Microsecond
	for b < d {
		b *= 2
	}
	return b
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	q, clk := openMock(t, &queue.Options{LeaseDuration: time.Hour})
	ctx := t.Context()
	for range 4 {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	lease := func() queue.Token {
		t.Helper()
		l, err := q.TryLease(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		return l.Token
	}
	// Job 1 waits 2s and runs 3s; job 2 waits 5s and runs 1s, then fails;
	// job 3 waits 6s and dies at once; job 4 is still ready.
	clk.Add(2 * time.Second)
	tok := lease()
	clk.Add(3 * time.Second)
	if err := q.Complete(ctx, tok, nil); err != nil {
		t.Fatal(err)
	}
	tok = lease()
	clk.Add(time.Second)
	if err := q.Fail(ctx, tok, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, lease(), queue.Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}

	stats := func() queue.QueueStats {
		t.Helper()
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Queues["m"]
	}
	qs := stats()
	m := qs.Metrics
	if m.Enqueued != 4 || m.Completed != 1 || m.Failed != 2 || m.Dead != 1 {
		t.Errorf("counts: enqueued %d completed %d failed %d dead %d; want 4 1 2 1", m.Enqueued, m.Completed, m.Failed, m.Dead)
	}
	if qs.Dead != 1 || qs.OldestReady != 6*time.Second {
		t.Errorf("dead %d, oldest ready %v; want 1, 6s", qs.Dead, qs.OldestReady)
	}
	for _, h := range []struct {
		name     string
		h        *queue.Histogram
		count    uint64
		sum      time.Duration
		quantile map[float64]time.Duration // q → the observation it falls on
	}{
		// Durations 3s, 1s, 0; latencies 2s, 5s, 6s.
		{"duration", m.Duration, 3, 4 * time.Second, map[float64]time.Duration{0.01: 0, 0.5: time.Second, 1: 3 * time.Second}},
		{"latency", m.Latency, 3, 13 * time.Second, map[float64]time.Duration{0.01: 2 * time.Second, 0.5: 5 * time.Second, 0.99: 6 * time.Second}},
	} {
		if h.h.Count != h.count || h.h.Sum != h.sum {
			t.Errorf("%s: count %d sum %v, want %d %v", h.name, h.h.Count, h.h.Sum, h.count, h.sum)
		}
		for p, d := range h.quantile {
			if got, want := h.h.Quantile(p), upperBound(d); got != want {
				t.Errorf("%s: Quantile(%v) = %v, want %v (the bucket of %v)", h.name, p, got, want, d)
			}
		}
	}
	for _, r := range []struct {
		name      string
		got, want float64
	}{
		{"enqueue", m.EnqueueRate, 4.0 / 60},
		{"complete", m.CompleteRate, 1.0 / 60},
		{"fail", m.FailRate, 2.0 / 60},
	} {
		if r.got != r.want {
			t.Errorf("%s rate %v/s, want %v/s (over the last minute)", r.name, r.got, r.want)
		}
	}

	// A minute later the rates have nothing left to count; the counters
	// keep everything since Open.
	clk.Add(time.Minute)
	m = stats().Metrics
	if m.EnqueueRate != 0 || m.CompleteRate != 0 || m.FailRate != 0 {
		t.Errorf("rates a minute later: %v %v %v, want 0", m.EnqueueRate, m.CompleteRate, m.FailRate)
	}
	if m.Enqueued != 4 || m.Completed != 1 || m.Failed != 2 || m.Dead != 1 {
		t.Errorf("counts a minute later: %d %d %d %d, want 4 1 2 1", m.Enqueued, m.Completed, m.Failed, m.Dead)
	}
}
