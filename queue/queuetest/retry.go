package queuetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// testBackoff: failures retry after the backoff delays (the queue's, or a
// job's own), then the job dies with its last error.
func testBackoff(t *testing.T, h *Harness) {
	u := v0(h)
	v := open(t, h, Config{MaxAttempts: 3, Backoff: queue.Backoff{Base: 2 * u, Factor: 2, Cap: 16 * u}})
	res := v.enqueue(queue.NewJob{Queue: "r"})
	for _, step := range []struct{ attempt, delay int }{{1, 2}, {2, 4}} {
		l := v.lease("r")
		if l.Token.Attempt != step.attempt {
			t.Fatalf("attempt %d, want %d", l.Token.Attempt, step.attempt)
		}
		failedAt := v.now()
		v.fail(l, fmt.Errorf("boom %d", step.attempt))
		j := v.state(res.ID, queue.StateScheduled)
		if j.LastError != fmt.Sprintf("boom %d", step.attempt) {
			t.Fatalf("LastError %q, want boom %d", j.LastError, step.attempt)
		}
		if want := failedAt.Add(u * timeUnits(step.delay)); v.mock != nil && !j.RunAt.Equal(want) {
			t.Fatalf("after failed attempt %d RunAt is %v, want %v", step.attempt, j.RunAt, want)
		}
		v.notYet("r", u*timeUnits(step.delay))
	}
	l := v.lease("r")
	if l.Token.Attempt != 3 {
		t.Fatalf("attempt %d, want 3", l.Token.Attempt)
	}
	v.fail(l, errors.New("boom 3"))
	v.state(res.ID, queue.StateDead)
	_, err := v.e.Wait(v.ctx, res.ID)
	var de *queue.DeadError
	if !errors.As(err, &de) || de.Attempts != 3 || de.Reason != "boom 3" {
		t.Fatalf("Wait = %v, want a *DeadError after 3 attempts, reason boom 3", err)
	}

	// A job's own backoff overrides the queue's.
	own := v.enqueue(queue.NewJob{Queue: "own", Backoff: &queue.Backoff{Base: 5 * u, Cap: 5 * u}})
	v.fail(v.lease("own"), errors.New("slow down"))
	v.notYet("own", 5*u)
	if l := v.lease("own"); l.Job.ID != own.ID || l.Token.Attempt != 2 {
		t.Fatalf("lease = job %d attempt %d, want job %d attempt 2", l.Job.ID, l.Token.Attempt, own.ID)
	}
}

// timeUnits converts a count of Units for multiplication.
func timeUnits(n int) time.Duration { return time.Duration(n) }

// testPermanent: a Permanent error dead-letters at once.
func testPermanent(t *testing.T, h *Harness) {
	v := open(t, h, Config{MaxAttempts: 5})
	res := v.enqueue(queue.NewJob{Queue: "perm"})
	v.fail(v.lease("perm"), queue.Permanent(errors.New("card declined")))
	j := v.state(res.ID, queue.StateDead)
	if j.Attempt != 1 || j.LastError != "card declined" || j.FinishedAt.IsZero() {
		t.Fatalf("dead job: attempt %d error %q finished %v; want 1, card declined, set", j.Attempt, j.LastError, j.FinishedAt)
	}
	v.noJob("perm")
}

// testRetryAfter: RetryAfter sets the next attempt's delay, and the
// attempt counts.
func testRetryAfter(t *testing.T, h *Harness) {
	v := open(t, h, Config{MaxAttempts: 3})
	res := v.enqueue(queue.NewJob{Queue: "ra"})
	v.fail(v.lease("ra"), queue.RetryAfter(6*v.u, errors.New("429")))
	v.state(res.ID, queue.StateScheduled)
	v.notYet("ra", 6*v.u)
	if l := v.lease("ra"); l.Token.Attempt != 2 {
		t.Fatalf("attempt after RetryAfter = %d, want 2", l.Token.Attempt)
	}
	last := v.enqueue(queue.NewJob{Queue: "ra1", MaxAttempts: 1})
	v.fail(v.lease("ra1"), queue.RetryAfter(v.u, errors.New("429")))
	v.state(last.ID, queue.StateDead)
}

// testSnooze: Snooze puts the job back for a while without counting the
// attempt.
func testSnooze(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	res := v.enqueue(queue.NewJob{Queue: "z", MaxAttempts: 1})
	l1 := v.lease("z")
	v.fail(l1, queue.Snooze(3*v.u))
	v.state(res.ID, queue.StateScheduled)
	v.notYet("z", 3*v.u)
	l2 := v.lease("z")
	if l2.Token.Attempt != 1 || l2.Token == l1.Token {
		t.Fatalf("token after Snooze %+v (before %+v), want attempt 1 under a new lease", l2.Token, l1.Token)
	}
	v.complete(l2, "ok")
}

// testRelease: Release gives the job back at once, uncounted.
func testRelease(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	res := v.enqueue(queue.NewJob{Queue: "rel", MaxAttempts: 1})
	l := v.lease("rel")
	if err := v.e.Release(v.ctx, l.Token); err != nil {
		t.Fatalf("Release: %v", err)
	}
	v.state(res.ID, queue.StateReady)
	if l := v.lease("rel"); l.Token.Attempt != 1 {
		t.Fatalf("attempt after Release = %d, want 1", l.Token.Attempt)
	}
}

// testHistory: a job's timeline records each attempt's number, lease and
// outcome.
func testHistory(t *testing.T, h *Harness) {
	need(t, h.Caps.History, "detailed history (Job.History)")
	u := v0(h)
	v := open(t, h, Config{MaxAttempts: 5, LeaseDuration: 2 * u, Backoff: queue.Backoff{Base: u, Factor: 1, Cap: u}})
	res := v.enqueue(queue.NewJob{Queue: "h"})
	v.fail(v.lease("h"), errors.New("first"))
	v.advance(u)
	v.lease("h")
	v.advance(3 * u) // expires
	l := v.lease("h")
	if err := v.e.Release(v.ctx, l.Token); err != nil {
		t.Fatal(err)
	}
	v.complete(v.lease("h"), "")
	j := v.get(res.ID)
	var outcomes []string
	var numbers, leases []int
	for _, a := range j.History {
		outcomes, numbers, leases = append(outcomes, a.Outcome), append(numbers, a.Number), append(leases, a.Lease)
	}
	if want := []string{"failed", "expired", "released", "completed"}; !slices.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	if want := []int{1, 2, 3, 3}; !slices.Equal(numbers, want) {
		t.Fatalf("attempt numbers %v, want %v", numbers, want)
	}
	if want := []int{1, 2, 3, 4}; !slices.Equal(leases, want) {
		t.Fatalf("lease numbers %v, want %v", leases, want)
	}
	if j.History[0].Error != "first" || j.History[0].Ended.IsZero() {
		t.Fatalf("first attempt %+v, want error first and an end", j.History[0])
	}
}
