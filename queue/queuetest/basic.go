package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// testHappyPath: enqueue, lease, complete with a result, Wait.
func testHappyPath(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	res := v.enqueue(queue.NewJob{Queue: "email", Payload: []byte("hello")})
	if res.ID == 0 || res.Duplicate {
		t.Fatalf("Enqueue = %+v, want a new job with a non-zero ID", res)
	}
	j := v.state(res.ID, queue.StateReady)
	if j.Queue != "email" || string(j.Payload) != "hello" || j.MaxAttempts != v.cfg.MaxAttempts {
		t.Fatalf("Get = queue %q payload %q max attempts %d, want email, hello, %d", j.Queue, j.Payload, j.MaxAttempts, v.cfg.MaxAttempts)
	}
	waited := make(chan error, 1)
	var result []byte
	go func() {
		ctx, cancel := v.patience()
		defer cancel()
		r, err := v.e.Wait(ctx, res.ID)
		result = r
		waited <- err
	}()

	start := v.now()
	l := v.lease("email")
	if l.Job.ID != res.ID || string(l.Job.Payload) != "hello" || l.Token.Job != res.ID || l.Token.Attempt != 1 || l.Job.Attempt != 1 {
		t.Fatalf("Lease = job %d payload %q token %+v attempt %d, want job %d, hello, attempt 1", l.Job.ID, l.Job.Payload, l.Token, l.Job.Attempt, res.ID)
	}
	if v.mock != nil && !l.Deadline.Equal(start.Add(v.cfg.LeaseDuration)) {
		t.Fatalf("lease deadline %v, want %v", l.Deadline, start.Add(v.cfg.LeaseDuration))
	}
	if !l.Deadline.After(start) {
		t.Fatalf("lease deadline %v is not after the lease (%v)", l.Deadline, start)
	}
	v.state(res.ID, queue.StateLeased)
	v.complete(l, "250 OK")
	if err := <-waited; err != nil || string(result) != "250 OK" {
		t.Fatalf("Wait = %q, %v; want 250 OK", result, err)
	}
	j = v.state(res.ID, queue.StateCompleted)
	if string(j.Result) != "250 OK" || !j.HasResult || j.FinishedAt.IsZero() {
		t.Fatalf("completed job: result %q has %v finished %v", j.Result, j.HasResult, j.FinishedAt)
	}
	wantErr(t, "second Complete", v.e.Complete(v.ctx, l.Token, nil), queue.ErrLeaseLost)

	// The empty queue name is DefaultQueue.
	d := v.enqueue(queue.NewJob{Payload: []byte("x")})
	if q := v.get(d.ID).Queue; q != queue.DefaultQueue {
		t.Fatalf("job enqueued with no queue name is in %q, want %q", q, queue.DefaultQueue)
	}
	if l := v.lease(""); l.Job.ID != d.ID {
		t.Fatalf("Lease(\"\") = job %d, want %d", l.Job.ID, d.ID)
	}
}

// testWaitOutcomes: Wait for every kind of end, and for jobs it cannot
// wait for.
func testWaitOutcomes(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	_, err := v.e.Wait(v.ctx, 987654)
	wantErr(t, "Wait(unknown job)", err, queue.ErrNotFound)

	none := v.enqueue(queue.NewJob{Queue: "w"})
	v.complete(v.lease("w"), "")
	if r, err := v.e.Wait(v.ctx, none.ID); err != nil || r != nil {
		t.Fatalf("Wait(completed without result) = %q, %v; want nil, nil", r, err)
	}

	dead := v.enqueue(queue.NewJob{Queue: "w"})
	v.fail(v.lease("w"), queue.Permanent(errors.New("card declined")))
	_, err = v.e.Wait(v.ctx, dead.ID)
	var de *queue.DeadError
	if !errors.Is(err, queue.ErrDead) || !errors.As(err, &de) {
		t.Fatalf("Wait(dead job) = %v, want a *DeadError matching ErrDead", err)
	}
	if de.ID != dead.ID || de.Attempts != 1 || de.Reason != "card declined" {
		t.Fatalf("DeadError = %+v, want job %d, 1 attempt, reason %q", de, dead.ID, "card declined")
	}

	cancelled := v.enqueue(queue.NewJob{Queue: "w"})
	if err := v.e.Cancel(v.ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	_, err = v.e.Wait(v.ctx, cancelled.ID)
	wantErr(t, "Wait(cancelled job)", err, queue.ErrCancelled)

	pending := v.enqueue(queue.NewJob{Queue: "w"})
	ctx, cancel := context.WithCancel(v.ctx)
	cancel()
	_, err = v.e.Wait(ctx, pending.ID)
	wantErr(t, "Wait(pending job, cancelled context)", err, context.Canceled)
}

// testTryLeaseEmpty: nothing to lease, and invalid names.
func testTryLeaseEmpty(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	v.noJob("empty")
	ls, err := v.e.TryLeaseN(v.ctx, "empty", 5)
	if err != nil || len(ls) != 0 {
		t.Fatalf("TryLeaseN(empty queue) = %d leases, %v; want none, nil", len(ls), err)
	}
	const bad = "no spaces allowed"
	_, err = v.e.TryLease(v.ctx, bad)
	wantErr(t, "TryLease(invalid name)", err, queue.ErrInvalid)
	_, err = v.e.Enqueue(v.ctx, queue.NewJob{Queue: bad})
	wantErr(t, "Enqueue(invalid name)", err, queue.ErrInvalid)
	wantErr(t, "Pause(invalid name)", v.e.Pause(v.ctx, bad), queue.ErrInvalid)
}

// testLeaseBlocks: Lease waits for a job, and returns early when its
// context ends.
func testLeaseBlocks(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	got := make(chan *queue.Lease, 1)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := v.patience()
		defer cancel()
		l, err := v.e.Lease(ctx, "b")
		got <- l
		errc <- err
	}()
	res := v.enqueue(queue.NewJob{Queue: "b", Payload: []byte("wake")})
	if l, err := <-got, <-errc; err != nil || l.Job.ID != res.ID {
		t.Fatalf("blocked Lease = %v, %v; want job %d", l, err, res.ID)
	}
	ctx, cancel := context.WithCancel(v.ctx)
	cancel()
	_, err := v.e.Lease(ctx, "b")
	wantErr(t, "Lease(cancelled context)", err, context.Canceled)
}

// testLeaseN: several leases in one call, each job once.
func testLeaseN(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	for range 5 {
		v.enqueue(queue.NewJob{Queue: "n"})
	}
	ctx, cancel := v.patience()
	defer cancel()
	seen := map[uint64]bool{}
	ls, err := v.e.LeaseN(ctx, "n", 3)
	if err != nil || len(ls) == 0 || len(ls) > 3 {
		t.Fatalf("LeaseN(3) = %d leases, %v; want 1 to 3", len(ls), err)
	}
	for len(seen) < 5 {
		for _, l := range ls {
			if seen[l.Job.ID] {
				t.Fatalf("job %d leased twice", l.Job.ID)
			}
			seen[l.Job.ID] = true
		}
		if len(seen) == 5 {
			break
		}
		if ls, err = v.e.LeaseN(ctx, "n", 10); err != nil {
			t.Fatalf("LeaseN(10) with %d jobs left: %v", 5-len(seen), err)
		}
	}
	if ls, err := v.e.TryLeaseN(v.ctx, "n", 10); err != nil || len(ls) != 0 {
		t.Fatalf("TryLeaseN with every job leased = %d leases, %v; want none", len(ls), err)
	}
}

// testPriority: a higher priority runs first; with Caps.Ordering, ready
// jobs go strictly by priority, then run-at, then enqueue order.
func testPriority(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	low := v.enqueue(queue.NewJob{Queue: "p", Priority: 0})
	high := v.enqueue(queue.NewJob{Queue: "p", Priority: 5})
	if l := v.lease("p"); l.Job.ID != high.ID {
		t.Fatalf("leased job %d first, want the higher priority %d (not %d)", l.Job.ID, high.ID, low.ID)
	}
	v.lease("p")
	need(t, h.Caps.Ordering, "strict ordering (priority, then run-at, then enqueue order)")
	late := v.enqueue(queue.NewJob{Queue: "o", Delay: 2 * v.u})
	soon := v.enqueue(queue.NewJob{Queue: "o", Delay: v.u})
	a := v.enqueue(queue.NewJob{Queue: "o", Priority: 1})
	b := v.enqueue(queue.NewJob{Queue: "o", Priority: 1})
	c := v.enqueue(queue.NewJob{Queue: "o"})
	v.advance(2 * v.u)
	want := []uint64{a.ID, b.ID, c.ID, soon.ID, late.ID}
	for i, id := range want {
		if l := v.lease("o"); l.Job.ID != id {
			t.Fatalf("lease %d is job %d, want %d (order %v)", i+1, l.Job.ID, id, want)
		}
	}
}

// testDelay: Delay and RunAt hold a job back until its time.
func testDelay(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	start := v.now()
	d := v.enqueue(queue.NewJob{Queue: "d", Delay: 5 * v.u})
	j := v.state(d.ID, queue.StateScheduled)
	if v.mock != nil && !j.RunAt.Equal(start.Add(5*v.u)) {
		t.Fatalf("RunAt %v, want %v", j.RunAt, start.Add(5*v.u))
	}
	if st := v.stats("d"); st.Scheduled != 1 || st.Ready != 0 {
		t.Fatalf("stats of a delayed job: %d scheduled, %d ready; want 1, 0", st.Scheduled, st.Ready)
	}
	v.notYet("d", 5*v.u)
	if l := v.lease("d"); l.Job.ID != d.ID {
		t.Fatalf("leased job %d, want the delayed %d", l.Job.ID, d.ID)
	}
	at := v.enqueue(queue.NewJob{Queue: "d", RunAt: v.now().Add(3 * v.u)})
	v.state(at.ID, queue.StateScheduled)
	v.notYet("d", 3*v.u)
	if l := v.lease("d"); l.Job.ID != at.ID {
		t.Fatalf("leased job %d, want the one with RunAt %d", l.Job.ID, at.ID)
	}
}

// testExtend: an extended lease outlives its first deadline.
func testExtend(t *testing.T, h *Harness) {
	v := open(t, h, Config{LeaseDuration: 4 * v0(h)})
	v.enqueue(queue.NewJob{Queue: "x"})
	l := v.lease("x")
	v.advance(2 * v.u)
	from := v.now()
	dl, err := v.e.Extend(v.ctx, l.Token, 5*v.u)
	if err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if v.mock != nil && !dl.Equal(from.Add(5*v.u)) {
		t.Fatalf("Extend's deadline %v, want %v", dl, from.Add(5*v.u))
	}
	if !dl.After(l.Deadline) {
		t.Fatalf("Extend's deadline %v is not after the first %v", dl, l.Deadline)
	}
	v.advance(3 * v.u) // past the first deadline, within the extension
	v.state(l.Job.ID, queue.StateLeased)
	from = v.now()
	dl, err = v.e.Extend(v.ctx, l.Token, 0)
	if err != nil {
		t.Fatalf("Extend(0): %v", err)
	}
	if v.mock != nil && !dl.Equal(from.Add(v.cfg.LeaseDuration)) {
		t.Fatalf("Extend(0)'s deadline %v, want the lease duration from now, %v", dl, from.Add(v.cfg.LeaseDuration))
	}
	_, err = v.e.Extend(v.ctx, l.Token, -v.u)
	wantErr(t, "Extend(negative)", err, queue.ErrInvalid)
	v.complete(l, "late but leased")
	_, err = v.e.Extend(v.ctx, l.Token, v.u)
	wantErr(t, "Extend after Complete", err, queue.ErrLeaseLost)
}

// v0 is h's Unit with its default, for configs built before open.
func v0(h *Harness) time.Duration { return h.Unit }

// testLeaseExpiry: an expired lease counts as an attempt; its token is
// stale; the last attempt expiring makes the job dead (a poison pill).
func testLeaseExpiry(t *testing.T, h *Harness) {
	v := open(t, h, Config{LeaseDuration: 2 * v0(h), MaxAttempts: 2})
	res := v.enqueue(queue.NewJob{Queue: "e"})
	l1 := v.lease("e")
	v.advance(3 * v.u)
	wantErr(t, "Complete after the lease expired", v.e.Complete(v.ctx, l1.Token, nil), queue.ErrLeaseLost)
	l2 := v.lease("e")
	if l2.Job.ID != res.ID || l2.Token.Attempt != 2 || l2.Token == l1.Token {
		t.Fatalf("lease after expiry: job %d token %+v, want job %d attempt 2 and a new token (old %+v)", l2.Job.ID, l2.Token, res.ID, l1.Token)
	}
	v.advance(3 * v.u)
	if v.mock != nil {
		v.noJob("e")
	}
	ctx, cancel := v.patience()
	defer cancel()
	_, err := v.e.Wait(ctx, res.ID)
	wantErr(t, "Wait(job whose last lease expired)", err, queue.ErrDead)
}

// testStaleTokens: only the current lease's token is accepted.
func testStaleTokens(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	v.enqueue(queue.NewJob{Queue: "s"})
	l1 := v.lease("s")
	if err := v.e.Release(v.ctx, l1.Token); err != nil {
		t.Fatalf("Release: %v", err)
	}
	l2 := v.lease("s")
	if l2.Token == l1.Token || l2.Token.Attempt != l1.Token.Attempt {
		t.Fatalf("tokens after Release: %+v then %+v; want the same attempt under another lease", l1.Token, l2.Token)
	}
	wantErr(t, "Complete(stale token)", v.e.Complete(v.ctx, l1.Token, nil), queue.ErrLeaseLost)
	wantErr(t, "Fail(stale token)", v.e.Fail(v.ctx, l1.Token, errors.New("x")), queue.ErrLeaseLost)
	wantErr(t, "Release(stale token)", v.e.Release(v.ctx, l1.Token), queue.ErrLeaseLost)
	_, err := v.e.Extend(v.ctx, l1.Token, 0)
	wantErr(t, "Extend(stale token)", err, queue.ErrLeaseLost)
	v.state(l2.Job.ID, queue.StateLeased)
	v.complete(l2, "once")
	wantErr(t, "Complete twice", v.e.Complete(v.ctx, l2.Token, nil), queue.ErrLeaseLost)
	if j := v.get(l2.Job.ID); string(j.Result) != "once" {
		t.Fatalf("result %q, want once", j.Result)
	}
}
