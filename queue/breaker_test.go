package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	wlog "github.com/walq/walq/log"
)

// breakerOf returns the named queue's breaker status from Stats.
func breakerOf(t testing.TB, q *Queue, name string) BreakerStatus {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Queues[name].Breaker
}

// failT fails a lease.
func failT(t testing.TB, q *Queue, l *Lease) {
	t.Helper()
	if err := q.Fail(context.Background(), l.Token, errors.New("503 from the API")); err != nil {
		t.Fatal(err)
	}
}

// breakerEvents returns the breaker events buffered in sub.
func breakerEvents(sub *Subscription) []EventKind {
	var out []EventKind
	for {
		select {
		case ev := <-sub.C:
			switch ev.Kind {
			case EventBreakerOpened, EventBreakerHalfOpen, EventBreakerClosed:
				out = append(out, ev.Kind)
			}
		default:
			return out
		}
	}
}

func TestBreakerOpenProbeClose(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), &Options{Breakers: map[string]Breaker{"api": {Failures: 3, Cooldown: time.Minute}}})
	mc := mockOf(t, q)
	sub := q.Subscribe(1000)
	ctx := context.Background()
	for range 8 {
		enqueueT(t, q, NewJob{Queue: "api"})
	}
	l := leaseT(t, q, "api")
	failT(t, q, l)
	l = leaseT(t, q, "api")
	if err := q.Complete(ctx, l.Token, nil); err != nil { // a success resets the count
		t.Fatal(err)
	}
	for range 3 {
		failT(t, q, leaseT(t, q, "api"))
	}
	if b := breakerOf(t, q, "api"); b.State != BreakerOpen || b.Failures != 3 || !b.ProbeAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("after 3 failures: %+v", b)
	}
	noLease(t, q, "api")
	js, err := q.Jobs(ctx, JobFilter{Queue: "api", State: StateReady})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		if j.Attempt > 1 {
			t.Fatalf("job %d behind the open breaker has %d attempts", j.ID, j.Attempt)
		}
	}
	mc.Add(time.Minute - 1)
	noLease(t, q, "api")
	mc.Add(1)
	probes := leaseN(t, q, "api", 5)
	if len(probes) != 1 {
		t.Fatalf("half-open breaker leased %d jobs, want one probe", len(probes))
	}
	if b := breakerOf(t, q, "api"); b.State != BreakerHalfOpen || b.Probe != probes[0].Job.ID {
		t.Fatalf("after the probe's lease: %+v", b)
	}
	noLease(t, q, "api")
	failT(t, q, probes[0]) // the probe fails: open for another cool-down
	if b := breakerOf(t, q, "api"); b.State != BreakerOpen || !b.OpenedAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("after the probe failed: %+v", b)
	}
	noLease(t, q, "api")
	mc.Add(time.Minute)
	l = leaseT(t, q, "api")
	if err := q.Release(ctx, l.Token); err != nil { // a released probe: the next lease probes again
		t.Fatal(err)
	}
	l = leaseT(t, q, "api")
	noLease(t, q, "api")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if b := breakerOf(t, q, "api"); b.State != BreakerClosed || b.Failures != 0 {
		t.Fatalf("after the probe completed: %+v", b)
	}
	if n := len(leaseN(t, q, "api", 10)); n < 2 {
		t.Fatalf("closed breaker leased %d", n)
	}
	want := []EventKind{EventBreakerOpened, EventBreakerHalfOpen, EventBreakerOpened, EventBreakerHalfOpen,
		EventBreakerHalfOpen, EventBreakerClosed}
	if got := breakerEvents(sub); !slicesEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBreakerAcrossRestart: an open breaker is open again after a reopen
// (and after a crash), until its cool-down; a probe running at a crash
// counts as failed.
func TestBreakerAcrossRestart(t *testing.T) {
	t.Parallel()
	mc := startClock()
	opts := &Options{Clock: mc, Breakers: map[string]Breaker{"api": {Failures: 2, Cooldown: time.Minute}}}
	q := openTest(t, t.TempDir(), opts)
	for range 5 {
		enqueueT(t, q, NewJob{Queue: "api"})
	}
	failT(t, q, leaseT(t, q, "api"))
	failT(t, q, leaseT(t, q, "api"))
	crash := crashImage(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(30 * time.Second)
	for _, dir := range []string{crash, q.Dir()} {
		q2 := openTest(t, dir, opts)
		noLease(t, q2, "api")
		if b := breakerOf(t, q2, "api"); b.State != BreakerOpen || !b.ProbeAt.Equal(epoch.Add(time.Minute)) {
			t.Fatalf("after reopen: %+v", b)
		}
		ro := openTest(t, dir, &Options{ReadOnly: true, Clock: mc})
		if b := breakerOf(t, ro, "api"); b.State != BreakerOpen {
			t.Fatalf("a reader sees %+v", b)
		}
		if err := q2.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mc.Add(30 * time.Second)
	q2 := openTest(t, q.Dir(), opts)
	leaseT(t, q2, "api") // the probe
	crash = crashImage(t, q2)
	q3 := openTest(t, crash, opts) // the probe's lease is voided: a failure
	if b := breakerOf(t, q3, "api"); b.State != BreakerOpen || !b.OpenedAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("after a crash during the probe: %+v", b)
	}
}

func TestBreakerValidation(t *testing.T) {
	t.Parallel()
	for _, bs := range []map[string]Breaker{
		{"api": {Failures: 0, Cooldown: time.Second}},
		{"api": {Failures: 1}},
		{"bad name": {Failures: 1, Cooldown: time.Second}},
	} {
		if _, err := Open(t.TempDir(), &Options{Breakers: bs}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open with Breakers %v = %v, want ErrInvalid", bs, err)
		}
	}
}

// TestBreakerConcurrent has workers lease (alone and in batches) and fail
// most attempts, complete some, while the clock advances and the
// background compactor runs: the breaker opens and closes many times. Its
// history (lease decisions and attempt ends in log order, traced under the
// queue's lock) is replayed through a model of the breaker: no lease was
// decided while it was open before its cool-down, nor while a probe was
// leased, and each probe was one job.
func TestBreakerConcurrent(t *testing.T) {
	t.Parallel()
	const cooldown = 5 * time.Second
	mc := startClock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, KeyRetention: time.Second,
		MaxAttempts: 1000, Breakers: map[string]Breaker{"api": {Failures: 3, Cooldown: cooldown}}})
	var trace []brkStep
	q.mu.Lock()
	q.brkTrace = &trace
	q.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	for range 200 {
		enqueueT(t, q, NewJob{Queue: "api", Payload: make([]byte, 100)})
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ls, err := q.TryLeaseN(ctx, "api", 1+w%2)
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				for k, l := range ls {
					var err error
					switch (i + w + k) % 5 {
					case 0:
						err = q.Complete(context.Background(), l.Token, nil)
					case 1:
						err = q.Release(context.Background(), l.Token)
					default:
						err = q.Fail(context.Background(), l.Token, RetryAfter(0, errors.New("boom")))
					}
					// The clock runs on while a worker waits for the CPU:
					// a lease can expire (an expired attempt, a failure).
					if err != nil && !errors.Is(err, ErrLeaseLost) {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 300 {
		mc.Add(500 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	q.mu.Lock()
	defer q.mu.Unlock()
	state, failures, probe, opens, probes := BreakerClosed, 0, uint64(0), 0, 0
	var openedAt int64
	for i, s := range trace {
		if s.leased > 0 {
			switch {
			case state == BreakerClosed:
			case state == BreakerOpen && probe == 0 && s.now >= openedAt+int64(cooldown) && s.leased == 1:
				state, probe = BreakerHalfOpen, s.job
				probes++
			default:
				t.Fatalf("step %d: %d leases decided at %v with the breaker %s (opened %v, probe %d)", i, s.leased,
					time.Duration(s.now-epoch.UnixNano()), state, time.Duration(openedAt-epoch.UnixNano()), probe)
			}
			continue
		}
		failed := s.end == wlog.KindFailed || s.end == wlog.KindDead || s.end == wlog.KindExpired
		switch {
		case state == BreakerClosed && failed:
			if failures++; failures == 3 {
				state, openedAt = BreakerOpen, s.now
				opens++
			}
		case state == BreakerClosed && s.end == wlog.KindCompleted:
			failures = 0
		case state == BreakerHalfOpen && s.job == probe:
			switch {
			case failed:
				state, openedAt = BreakerOpen, s.now
				opens++
			case s.end == wlog.KindCompleted:
				state, failures = BreakerClosed, 0
			default: // released: the next lease probes again
				state = BreakerOpen
			}
			probe = 0
		}
	}
	if opens < 3 || probes < 2 {
		t.Fatalf("the breaker opened %d times and let %d probes through", opens, probes)
	}
	t.Logf("%d steps, %d openings, %d probes", len(trace), opens, probes)
}
