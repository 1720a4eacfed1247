package queue

import (
	"context"
	"sync"
	"testing"
	"time"
)

// holdWrites returns hooks that, once armed, stop the next group of log
// entries before it is written: entered receives when one is held, and
// closing release lets it (and every later group) through.
func holdWrites() (h *hooks, arm func(), entered <-chan struct{}, release func()) {
	var mu sync.Mutex
	armed := false
	in := make(chan struct{}, 1)
	out := make(chan struct{})
	var once sync.Once
	h = &hooks{write: func(first, last uint64) error {
		mu.Lock()
		hold := armed
		armed = false
		mu.Unlock()
		if hold {
			in <- struct{}{}
			<-out
		}
		return nil
	}}
	arm = func() { mu.Lock(); armed = true; mu.Unlock() }
	return h, arm, in, func() { once.Do(func() { close(out) }) }
}

// TestStatsReadyExcludesReservedScheduledJobs checks what Stats says about
// a pending job while an operation on it is being made durable: a
// scheduled job stays scheduled (it used to be counted as ready), a due
// job stays ready, and Ready + Scheduled is every pending job.
func TestStatsReadyExcludesReservedScheduledJobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		delay     time.Duration
		op        func(q *Queue, id uint64) error
		wantReady int
		wantSched int
	}{
		{name: "cancel-scheduled", delay: time.Hour, wantSched: 1,
			op: func(q *Queue, id uint64) error { return q.Cancel(context.Background(), id) }},
		{name: "lease-ready", wantReady: 1,
			op: func(q *Queue, id uint64) error { _, err := q.TryLease(context.Background(), DefaultQueue); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, arm, entered, release := holdWrites()
			defer release()
			dir := t.TempDir()
			inject(t, dir, h)
			q := openTest(t, dir, &Options{Clock: startClock()})
			id := enqueueT(t, q, NewJob{Payload: []byte("x"), Delay: tc.delay})
			arm()
			done := make(chan error, 1)
			go func() { done <- tc.op(q, id) }()
			<-entered // the operation's entry is held before its write
			if r, s := readySplit(t, q, DefaultQueue); r != tc.wantReady || s != tc.wantSched {
				t.Errorf("Stats while the %s is in flight: ready %d scheduled %d, want %d and %d",
					tc.name, r, s, tc.wantReady, tc.wantSched)
			}
			release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if r, s := readySplit(t, q, DefaultQueue); r != 0 || s != 0 {
				t.Errorf("Stats after the %s: ready %d scheduled %d, want 0 and 0", tc.name, r, s)
			}
		})
	}
}
