package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// within is how long a test waits for a goroutine it unblocked before it
// declares the goroutine stuck. It is a failure deadline, never a way to
// synchronise: every wait in these tests ends by an event.
const within = 10 * time.Second

// receive returns the next value of ch, failing the test if none comes.
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

type leaseResult struct {
	l   *Lease
	err error
}

// leaseAsync runs a blocking Lease in a goroutine.
func leaseAsync(ctx context.Context, q *Queue, name string) <-chan leaseResult {
	ch := make(chan leaseResult, 1)
	go func() {
		l, err := q.Lease(ctx, name)
		ch <- leaseResult{l, err}
	}()
	return ch
}

// timerClock is a mock clock that reports every timer created on it, so
// that a test knows a blocked Lease is waiting for the clock before it
// advances the clock. Without it, an Add could slip between the moment Lease
// computes its sleep and the moment it creates its timer.
type timerClock struct {
	*clock.Mock
	timers chan time.Duration
}

func newTimerClock() *timerClock {
	return &timerClock{Mock: startClock(), timers: make(chan time.Duration, 64)}
}

func (c *timerClock) Timer(d time.Duration) *clock.Timer {
	tm := c.Mock.Timer(d)
	c.timers <- d
	return tm
}

func TestLeaseBlocks(t *testing.T) {
	t.Parallel()

	t.Run("wakes on enqueue", func(t *testing.T) {
		t.Parallel()
		q := openTest(t, t.TempDir(), nil)
		res := leaseAsync(t.Context(), q, "jobs")
		id := enqueueT(t, q, NewJob{Queue: "jobs", Payload: []byte("x")})
		r := receive(t, res, "Lease after Enqueue")
		if r.err != nil || r.l.Job.ID != id || string(r.l.Job.Payload) != "x" {
			t.Fatalf("Lease = %+v, %v", r.l, r.err)
		}
	})

	t.Run("ignores other queues", func(t *testing.T) {
		t.Parallel()
		q := openTest(t, t.TempDir(), nil)
		res := leaseAsync(t.Context(), q, "jobs")
		enqueueT(t, q, NewJob{Queue: "other"})
		id := enqueueT(t, q, NewJob{Queue: "jobs"})
		if r := receive(t, res, "Lease"); r.err != nil || r.l.Job.ID != id {
			t.Fatalf("Lease = %+v, %v; want job %d", r.l, r.err, id)
		}
	})

	t.Run("wakes when the clock reaches run-at", func(t *testing.T) {
		t.Parallel()
		tc := newTimerClock()
		q := openTest(t, t.TempDir(), &Options{Clock: tc})
		res := leaseAsync(t.Context(), q, "")
		id := enqueueT(t, q, NewJob{Delay: time.Minute})
		// Lease sleeps until the run-at: a timer for exactly the delay.
		if d := receive(t, tc.timers, "Lease's timer"); d != time.Minute {
			t.Fatalf("Lease sleeps for %v, want 1m", d)
		}
		select {
		case r := <-res:
			t.Fatalf("Lease returned before run-at: %+v, %v", r.l, r.err)
		default:
		}
		tc.Add(time.Minute)
		if r := receive(t, res, "Lease at run-at"); r.err != nil || r.l.Job.ID != id {
			t.Fatalf("Lease = %+v, %v", r.l, r.err)
		}
	})

	t.Run("wakes when a lease expires", func(t *testing.T) {
		t.Parallel()
		tc := newTimerClock()
		q := openTest(t, t.TempDir(), &Options{Clock: tc, LeaseDuration: 10 * time.Second})
		id := enqueueT(t, q, NewJob{})
		leaseT(t, q, "") // a worker that will never finish
		res := leaseAsync(t.Context(), q, "")
		if d := receive(t, tc.timers, "Lease's timer"); d != 10*time.Second {
			t.Fatalf("Lease sleeps for %v, want the lease's 10s", d)
		}
		tc.Add(10 * time.Second)
		r := receive(t, res, "Lease after expiry")
		if r.err != nil || r.l.Job.ID != id || r.l.Token.Attempt != 2 {
			t.Fatalf("Lease = %+v, %v", r.l, r.err)
		}
	})

	t.Run("returns ctx's error", func(t *testing.T) {
		t.Parallel()
		q := openTest(t, t.TempDir(), nil)
		ctx, cancel := context.WithCancel(t.Context())
		res := leaseAsync(ctx, q, "")
		cancel()
		if r := receive(t, res, "Lease after cancel"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("Lease = %+v, %v; want context.Canceled", r.l, r.err)
		}
		// Nothing was taken: a later job is leasable.
		enqueueT(t, q, NewJob{})
		leaseT(t, q, "")
	})

	t.Run("returns ErrClosed on Close", func(t *testing.T) {
		t.Parallel()
		q := openTest(t, t.TempDir(), nil)
		res := leaseAsync(t.Context(), q, "")
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if r := receive(t, res, "Lease after Close"); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("Lease = %+v, %v; want ErrClosed", r.l, r.err)
		}
	})
}

func TestLeaseN(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	for i := range 5 {
		enqueueT(t, q, NewJob{Payload: fmt.Appendf(nil, "%d", i)})
	}
	ids := func(ls []*Lease) []uint64 {
		var out []uint64
		for _, l := range ls {
			out = append(out, l.Job.ID)
		}
		return out
	}
	ls, err := q.TryLeaseN(ctx, "", 3)
	if err != nil || !slices.Equal(ids(ls), []uint64{1, 2, 3}) {
		t.Fatalf("TryLeaseN(3) = %v, %v", ids(ls), err)
	}
	for i, l := range ls {
		if string(l.Job.Payload) != fmt.Sprint(i) || l.Token.Attempt != 1 {
			t.Errorf("lease %d: payload %q token %+v", i, l.Job.Payload, l.Token)
		}
	}
	ls, err = q.TryLeaseN(ctx, "", 10)
	if err != nil || !slices.Equal(ids(ls), []uint64{4, 5}) {
		t.Fatalf("TryLeaseN(10) = %v, %v; want the 2 left", ids(ls), err)
	}
	ls, err = q.TryLeaseN(ctx, "", 10)
	if err != nil || len(ls) != 0 {
		t.Fatalf("TryLeaseN on an empty queue = %v, %v; want none, nil", ids(ls), err)
	}
	for _, n := range []int{0, -1} {
		if _, err := q.TryLeaseN(ctx, "", n); !errors.Is(err, ErrInvalid) {
			t.Errorf("TryLeaseN(%d) = %v, want ErrInvalid", n, err)
		}
	}

	// LeaseN waits for work, then takes what one batch made ready.
	ch := make(chan []*Lease, 1)
	go func() {
		ls, err := q.LeaseN(ctx, "", 4)
		if err != nil {
			t.Error(err)
		}
		ch <- ls
	}()
	if _, err := q.EnqueueBatch(ctx, []NewJob{{}, {}}); err != nil {
		t.Fatal(err)
	}
	if got := ids(receive(t, ch, "LeaseN")); !slices.Equal(got, []uint64{6, 7}) {
		t.Fatalf("LeaseN(4) = %v, want [6 7]", got)
	}
}

func TestWaitBlocks(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	id := enqueueT(t, q, NewJob{})
	type waitResult struct {
		b   []byte
		err error
	}
	wait := func(ctx context.Context) <-chan waitResult {
		ch := make(chan waitResult, 1)
		go func() {
			b, err := q.Wait(ctx, id)
			ch <- waitResult{b, err}
		}()
		return ch
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := wait(ctx)
	done := wait(t.Context())
	cancel()
	if r := receive(t, cancelled, "Wait after cancel"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Wait = %q, %v; want context.Canceled", r.b, r.err)
	}
	l := leaseT(t, q, "")
	if err := q.Complete(t.Context(), l.Token, []byte("r")); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, done, "Wait after Complete"); r.err != nil || string(r.b) != "r" {
		t.Fatalf("Wait = %q, %v", r.b, r.err)
	}

	id = enqueueT(t, q, NewJob{})
	closed := wait(t.Context())
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, closed, "Wait after Close"); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Wait = %q, %v; want ErrClosed", r.b, r.err)
	}
}

// TestConcurrentLeasing has 8 workers drain 1000 jobs: no job is handed out
// twice and every one completes.
func TestConcurrentLeasing(t *testing.T) {
	t.Parallel()
	const jobs, workers = 1000, 8
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	batch := make([]NewJob, jobs)
	for i := range batch {
		batch[i] = NewJob{Queue: "c", Payload: fmt.Appendf(nil, "job %d", i)}
	}
	if _, err := q.EnqueueBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				l, err := q.TryLease(ctx, "c")
				if errors.Is(err, ErrNoJob) {
					return
				}
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				seen[l.Job.ID]++
				mu.Unlock()
				if want := fmt.Sprintf("job %d", l.Job.ID-1); string(l.Job.Payload) != want {
					t.Errorf("job %d has payload %q, want %q", l.Job.ID, l.Job.Payload, want)
				}
				if err := q.Complete(ctx, l.Token, l.Job.Payload); err != nil {
					t.Errorf("worker %d: Complete(%d): %v", w, l.Job.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Errorf("%d distinct jobs leased, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d leased %d times", id, n)
		}
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := st.Queues["c"]
	if m := got.Metrics; m.Enqueued != jobs || m.Completed != jobs || m.Failed != 0 {
		t.Errorf("metrics: %d enqueued, %d completed, %d failed; want %d, %d, 0", m.Enqueued, m.Completed, m.Failed, jobs, jobs)
	}
	got.Metrics = Metrics{}
	if want := (QueueStats{Completed: jobs}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	all, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.State != StateCompleted || j.Attempt != 1 || len(j.History) != 1 {
			t.Fatalf("job %d: %s, attempt %d, %d attempts in history", j.ID, j.State, j.Attempt, len(j.History))
		}
	}
}

// TestCompleteRacesExpiry runs Complete against the clock reaching the
// lease's deadline (with a TryLease that reaps it). Exactly one side wins.
func TestCompleteRacesExpiry(t *testing.T) {
	t.Parallel()
	const rounds = 40
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{LeaseDuration: 10 * time.Second})
	mc := mockOf(t, q)
	wins := map[bool]int{}
	for i := range rounds {
		name := fmt.Sprint("r", i)
		id := enqueueT(t, q, NewJob{Queue: name})
		l := leaseT(t, q, name)
		mc.Add(10*time.Second - time.Nanosecond)
		start := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			<-start
			errc <- q.Complete(ctx, l.Token, []byte("won"))
		}()
		leasec := make(chan leaseResult, 1)
		go func() {
			<-start
			mc.Add(time.Nanosecond) // the deadline
			l, err := q.TryLease(ctx, name)
			leasec <- leaseResult{l, err}
		}()
		close(start)
		cerr := receive(t, errc, "Complete")
		lr := receive(t, leasec, "TryLease")
		l2, lerr := lr.l, lr.err

		j := getT(t, q, id)
		first := j.History[0].Outcome
		switch {
		case cerr == nil:
			if j.State != StateCompleted || first != "completed" || string(j.Result) != "won" || !errors.Is(lerr, ErrNoJob) {
				t.Fatalf("round %d: Complete won but job %s, outcome %q, TryLease %v", i, j.State, first, lerr)
			}
		case errors.Is(cerr, ErrLeaseLost):
			if j.State == StateCompleted || first != "expired" || j.HasResult {
				t.Fatalf("round %d: Complete lost (%v) but job %s, outcome %q", i, cerr, j.State, first)
			}
			if lerr == nil && (l2.Job.ID != id || l2.Token.Attempt != 2) {
				t.Fatalf("round %d: re-lease %+v", i, l2.Token)
			}
			if lerr == nil && j.State != StateLeased || lerr != nil && j.State != StateReady {
				t.Fatalf("round %d: TryLease %v but job %s", i, lerr, j.State)
			}
		default:
			t.Fatalf("round %d: Complete = %v", i, cerr)
		}
		wins[cerr == nil]++
	}
	t.Logf("Complete won %d of %d rounds", wins[true], rounds)
}

// TestCancelRacesLease runs Cancel against TryLease on a ready job: exactly
// one of them gets it.
func TestCancelRacesLease(t *testing.T) {
	t.Parallel()
	const rounds = 40
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	for i := range rounds {
		name := fmt.Sprint("r", i)
		id := enqueueT(t, q, NewJob{Queue: name})
		start := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			<-start
			errc <- q.Cancel(ctx, id)
		}()
		close(start)
		_, lerr := q.TryLease(ctx, name)
		cerr := receive(t, errc, "Cancel")
		j := getT(t, q, id)
		switch {
		case cerr == nil && errors.Is(lerr, ErrNoJob) && j.State == StateCancelled:
		case lerr == nil && errors.Is(cerr, ErrState) && j.State == StateLeased:
		default:
			t.Fatalf("round %d: Cancel %v, TryLease %v, job %s", i, cerr, lerr, j.State)
		}
	}
}

// racingClock advances its mock clock by skip inside Timer, before creating
// the timer: exactly what happens when a test's Add lands between Lease
// computing how long to sleep and Lease creating its timer.
type racingClock struct {
	*clock.Mock
	skip time.Duration
}

func (c *racingClock) Timer(d time.Duration) *clock.Timer {
	if c.skip > 0 {
		c.Mock.Add(c.skip)
		c.skip = 0
	}
	return c.Mock.Timer(d)
}

// TestLeaseClockAdvancesWhileFallingAsleep: a blocked Lease must not
// oversleep when the clock reaches the run-at just as it goes to sleep. With
// a mock clock (which Options invites tests to use) the timer is otherwise
// set a whole delay too late, and Lease sits on a ready job.
func TestLeaseClockAdvancesWhileFallingAsleep(t *testing.T) {
	t.Parallel()
	rc := &racingClock{Mock: startClock()}
	q := openTest(t, t.TempDir(), &Options{Clock: rc})
	id := enqueueT(t, q, NewJob{Delay: time.Minute})
	rc.skip = time.Minute // set before Lease starts: no data race
	res := leaseAsync(t.Context(), q, "")
	select {
	case r := <-res:
		if r.err != nil || r.l.Job.ID != id {
			t.Fatalf("Lease = %+v, %v", r.l, r.err)
		}
	case <-time.After(2 * time.Second): // a failure deadline, not synchronisation
		t.Fatalf("Lease still blocked at %v with job %d ready since %v", rc.Now(), id, epoch.Add(time.Minute))
	}
}
