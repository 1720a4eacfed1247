package queue

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The clock-step rule: a pending job is leasable only when its run-at is at
// or before the clock reading taken by the lease itself. A clock that steps
// back (NTP does) therefore holds back jobs it had already made ready, and a
// reopened queue, which sees only the records and the clock, agrees.

// readySplit returns the named queue's ready and scheduled counts.
func readySplit(t *testing.T, q *Queue, name string) (ready, scheduled int) {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	qs := st.Queues[name]
	return qs.Ready, qs.Scheduled
}

// stepBack shows the queue a later time (Stats promotes), then sets the
// clock back to at.
func stepBack(t *testing.T, q *Queue, ahead time.Duration, at time.Time) {
	t.Helper()
	mc := mockOf(t, q)
	mc.Set(at.Add(ahead))
	if _, err := q.Stats(context.Background()); err != nil {
		t.Fatal(err)
	}
	mc.Set(at)
}

// reopenAt closes q and opens its directory again with the same options.
func reopenAt(t *testing.T, q *Queue) *Queue {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	o := q.opts
	return openTest(t, q.Dir(), &o)
}

func TestClockStepBackDelayedEnqueueWaits(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	stepBack(t, q, time.Hour, epoch)
	id := enqueueT(t, q, NewJob{Payload: []byte("x"), Delay: 30 * time.Minute})

	noLease(t, q, DefaultQueue)
	if got := getT(t, q, id).State; got != StateScheduled {
		t.Fatalf("state after a step back: %s, want scheduled", got)
	}
	if r, s := readySplit(t, q, DefaultQueue); r != 0 || s != 1 {
		t.Fatalf("Stats: ready %d scheduled %d, want 0 and 1", r, s)
	}

	q = reopenAt(t, q)
	noLease(t, q, DefaultQueue)
	mc.Add(30*time.Minute - time.Nanosecond)
	noLease(t, q, DefaultQueue)
	mc.Add(time.Nanosecond)
	if l := leaseT(t, q, DefaultQueue); l.Job.ID != id {
		t.Fatalf("leased job %d, want %d", l.Job.ID, id)
	}
}

func TestClockStepBackBackoffHolds(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), &Options{Clock: startClock(), Backoff: Backoff{Base: time.Second}})
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Payload: []byte("x")})
	stepBack(t, q, time.Hour, epoch)
	l := leaseT(t, q, DefaultQueue)
	if err := q.Fail(context.Background(), l.Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}

	noLease(t, q, DefaultQueue) // the 1s backoff holds
	q = reopenAt(t, q)
	noLease(t, q, DefaultQueue)
	mc.Add(time.Second)
	l = leaseT(t, q, DefaultQueue)
	if l.Job.ID != id || l.Token.Attempt != 2 {
		t.Fatalf("leased job %d attempt %d, want job %d attempt 2", l.Job.ID, l.Token.Attempt, id)
	}
}

func TestClockStepBackDemotesReadyJob(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Payload: []byte("x"), Delay: 30 * time.Minute})
	mc.Add(time.Hour)
	if r, s := readySplit(t, q, DefaultQueue); r != 1 || s != 0 {
		t.Fatalf("Stats an hour on: ready %d scheduled %d, want 1 and 0", r, s)
	}
	mc.Set(epoch) // NTP steps the clock back an hour

	for _, phase := range []string{"live", "reopened"} {
		noLease(t, q, DefaultQueue)
		if r, s := readySplit(t, q, DefaultQueue); r != 0 || s != 1 {
			t.Fatalf("%s, after the step back: ready %d scheduled %d, want 0 and 1", phase, r, s)
		}
		if got := getT(t, q, id).State; got != StateScheduled {
			t.Fatalf("%s, after the step back: state %s, want scheduled", phase, got)
		}
		if phase == "live" {
			q = reopenAt(t, q)
		}
	}
	mc.Add(30 * time.Minute)
	leaseT(t, q, DefaultQueue)
}
