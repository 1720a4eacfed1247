package queuetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/walq/walq/queue"
)

// kill enqueues a job on the named queue and dead-letters it with reason.
func (v *env) kill(name, reason string) uint64 {
	v.t.Helper()
	res := v.enqueue(queue.NewJob{Queue: name, Payload: []byte(reason)})
	l := v.lease(name)
	if l.Job.ID != res.ID {
		v.t.Fatalf("leased job %d, want %d", l.Job.ID, res.ID)
	}
	v.fail(l, queue.Permanent(errors.New(reason)))
	return res.ID
}

// ids returns the jobs' IDs, sorted.
func ids(js []*queue.Job) []uint64 {
	out := make([]uint64, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	slices.Sort(out)
	return out
}

// dead lists the dead-letter queue through f.
func (v *env) dead(f queue.DeadFilter) []uint64 {
	v.t.Helper()
	js, err := v.e.Dead(v.ctx, f)
	if err != nil {
		v.t.Fatalf("Dead(%+v): %v", f, err)
	}
	return ids(js)
}

// testDeadLetter: list, filter and requeue the dead-letter queue.
func testDeadLetter(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	a1 := v.kill("a", "card declined")
	a2 := v.kill("a", "timeout")
	b1 := v.kill("b", "card declined")
	for _, c := range []struct {
		f    queue.DeadFilter
		want []uint64
	}{
		{queue.DeadFilter{}, []uint64{a1, a2, b1}},
		{queue.DeadFilter{Queue: "a"}, []uint64{a1, a2}},
		{queue.DeadFilter{ErrorContains: "declined"}, []uint64{a1, b1}},
		{queue.DeadFilter{Queue: "b", ErrorContains: "timeout"}, []uint64{}},
	} {
		if got := v.dead(c.f); !slices.Equal(got, c.want) {
			t.Fatalf("Dead(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if got := v.dead(queue.DeadFilter{Limit: 2}); len(got) != 2 {
		t.Fatalf("Dead(Limit 2) = %v, want 2 jobs", got)
	}

	if err := v.e.Requeue(v.ctx, []uint64{a1}, queue.RequeueOptions{}); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	if j := v.state(a1, queue.StateReady); j.Attempt != 0 {
		t.Fatalf("requeued job's attempt count %d, want 0", j.Attempt)
	}
	wantErr(t, "Requeue(not dead)", v.e.Requeue(v.ctx, []uint64{a1}, queue.RequeueOptions{}), queue.ErrState)
	// One job that is not dead fails the whole call.
	wantErr(t, "Requeue(dead and not dead)", v.e.Requeue(v.ctx, []uint64{a2, a1}, queue.RequeueOptions{}), queue.ErrState)
	v.state(a2, queue.StateDead)
	if l := v.lease("a"); l.Job.ID != a1 || l.Token.Attempt != 1 {
		t.Fatalf("lease after Requeue = job %d attempt %d, want job %d attempt 1", l.Job.ID, l.Token.Attempt, a1)
	}

	n, err := v.e.RequeueDead(v.ctx, queue.DeadFilter{ErrorContains: "declined"}, queue.RequeueOptions{Queue: "c"})
	if err != nil || n != 1 {
		t.Fatalf("RequeueDead(declined → c) = %d, %v; want 1", n, err)
	}
	if l := v.lease("c"); l.Job.ID != b1 || l.Job.Queue != "c" {
		t.Fatalf("lease from c = job %d of %q, want job %d moved to c", l.Job.ID, l.Job.Queue, b1)
	}

	if err := v.e.Requeue(v.ctx, []uint64{a2}, queue.RequeueOptions{Delay: 3 * v.u}); err != nil {
		t.Fatal(err)
	}
	v.state(a2, queue.StateScheduled)
	v.notYet("a", 3*v.u)
	if l := v.lease("a"); l.Job.ID != a2 {
		t.Fatalf("lease = job %d, want the requeued-with-delay %d", l.Job.ID, a2)
	}
	if got := v.dead(queue.DeadFilter{}); len(got) != 0 {
		t.Fatalf("dead-letter queue after requeueing all: %v", got)
	}
}

// testPurge: finished jobs are forgotten on request; others are refused,
// the whole call with them.
func testPurge(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	done := v.enqueue(queue.NewJob{Queue: "pg"})
	v.complete(v.lease("pg"), "r")
	dead1, dead2 := v.kill("pg", "x"), v.kill("pg", "y")
	pending := v.enqueue(queue.NewJob{Queue: "pg"})

	wantErr(t, "Purge(pending)", v.e.Purge(v.ctx, []uint64{done.ID, pending.ID}), queue.ErrState)
	v.state(done.ID, queue.StateCompleted)
	if err := v.e.Purge(v.ctx, []uint64{done.ID, dead1}); err != nil {
		t.Fatalf("Purge(completed, dead): %v", err)
	}
	for _, id := range []uint64{done.ID, dead1} {
		_, err := v.e.Get(v.ctx, id)
		wantErr(t, "Get(purged)", err, queue.ErrNotFound)
		_, err = v.e.Wait(v.ctx, id)
		wantErr(t, "Wait(purged)", err, queue.ErrNotFound)
	}
	n, err := v.e.PurgeDead(v.ctx, queue.DeadFilter{})
	if err != nil || n != 1 {
		t.Fatalf("PurgeDead = %d, %v; want 1", n, err)
	}
	_, err = v.e.Get(v.ctx, dead2)
	wantErr(t, "Get(purged dead job)", err, queue.ErrNotFound)
	v.state(pending.ID, queue.StateReady)
}

// testCancel: a pending job can be cancelled; a leased or finished one
// cannot.
func testCancel(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	ready := v.enqueue(queue.NewJob{Queue: "c"})
	if err := v.e.Cancel(v.ctx, ready.ID); err != nil {
		t.Fatalf("Cancel(ready): %v", err)
	}
	if j := v.state(ready.ID, queue.StateCancelled); j.FinishedAt.IsZero() {
		t.Fatal("cancelled job has no FinishedAt")
	}
	v.noJob("c")
	later := v.enqueue(queue.NewJob{Queue: "c", Delay: 2 * v.u})
	if err := v.e.Cancel(v.ctx, later.ID); err != nil {
		t.Fatalf("Cancel(scheduled): %v", err)
	}
	v.advance(3 * v.u)
	v.noJob("c")
	v.state(later.ID, queue.StateCancelled)

	leased := v.enqueue(queue.NewJob{Queue: "c"})
	l := v.lease("c")
	wantErr(t, "Cancel(leased)", v.e.Cancel(v.ctx, leased.ID), queue.ErrState)
	v.complete(l, "")
	wantErr(t, "Cancel(completed)", v.e.Cancel(v.ctx, leased.ID), queue.ErrState)
	wantErr(t, "Cancel(dead)", v.e.Cancel(v.ctx, v.kill("c", "x")), queue.ErrState)
	wantErr(t, "Cancel(unknown)", v.e.Cancel(v.ctx, 987654), queue.ErrNotFound)
}

// testPauseResume: a paused queue takes jobs and hands out none; other
// queues go on; Resume wakes a blocked Lease.
func testPauseResume(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	if err := v.e.Pause(v.ctx, "p"); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	res := v.enqueue(queue.NewJob{Queue: "p"})
	other := v.enqueue(queue.NewJob{Queue: "other"})
	v.noJob("p")
	if st := v.stats("p"); !st.Paused || st.Ready != 1 {
		t.Fatalf("stats of paused queue: paused %v ready %d; want true, 1", st.Paused, st.Ready)
	}
	if l := v.lease("other"); l.Job.ID != other.ID {
		t.Fatalf("lease from another queue = job %d, want %d", l.Job.ID, other.ID)
	}
	got := make(chan *queue.Lease, 1)
	go func() {
		ctx, cancel := v.patience()
		defer cancel()
		l, _ := v.e.Lease(ctx, "p")
		got <- l
	}()
	if err := v.e.Resume(v.ctx, "p"); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if l := <-got; l == nil || l.Job.ID != res.ID {
		t.Fatalf("Lease blocked on a paused queue returned %v after Resume, want job %d", l, res.ID)
	}
	if st := v.stats("p"); st.Paused {
		t.Fatal("queue still paused after Resume")
	}
}

// testStats: per-queue counts of every state.
func testStats(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	v.complete(v.lease1("s"), "")
	v.lease1("s") // stays leased
	v.kill("s", "x")
	c := v.enqueue(queue.NewJob{Queue: "s"})
	if err := v.e.Cancel(v.ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	v.enqueue(queue.NewJob{Queue: "s", Delay: 5 * v.u})
	v.enqueue(queue.NewJob{Queue: "s"})
	v.enqueue(queue.NewJob{Queue: "t"})
	st := v.stats("s")
	got := [6]int{st.Ready, st.Scheduled, st.Leased, st.Completed, st.Dead, st.Cancelled}
	if want := [6]int{1, 1, 1, 1, 1, 1}; got != want {
		t.Fatalf("stats of s (ready, scheduled, leased, completed, dead, cancelled) = %v, want %v", got, want)
	}
	if st := v.stats("t"); st.Ready != 1 || st.Paused {
		t.Fatalf("stats of t: %+v, want 1 ready", st)
	}
}

// lease1 enqueues a job on the named queue and leases it.
func (v *env) lease1(name string) *queue.Lease {
	v.t.Helper()
	res := v.enqueue(queue.NewJob{Queue: name})
	l := v.lease(name)
	if l.Job.ID != res.ID {
		v.t.Fatalf("leased job %d, want %d", l.Job.ID, res.ID)
	}
	return l
}

// testJobs: Jobs lists by queue and state, in ID order, a page at a time.
func testJobs(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	a1 := v.enqueue(queue.NewJob{Queue: "ja"})
	a2 := v.enqueue(queue.NewJob{Queue: "ja"})
	b1 := v.enqueue(queue.NewJob{Queue: "jb"})
	a3 := v.enqueue(queue.NewJob{Queue: "ja"})
	l := v.lease("jb")
	v.complete(l, "")
	list := func(f queue.JobFilter) []uint64 {
		t.Helper()
		js, err := v.e.Jobs(v.ctx, f)
		if err != nil {
			t.Fatalf("Jobs(%+v): %v", f, err)
		}
		out := make([]uint64, len(js))
		for i, j := range js {
			out[i] = j.ID
		}
		return out
	}
	for _, c := range []struct {
		f    queue.JobFilter
		want []uint64
	}{
		{queue.JobFilter{}, []uint64{a1.ID, a2.ID, b1.ID, a3.ID}},
		{queue.JobFilter{Queue: "ja"}, []uint64{a1.ID, a2.ID, a3.ID}},
		{queue.JobFilter{State: queue.StateCompleted}, []uint64{b1.ID}},
		{queue.JobFilter{Queue: "ja", State: queue.StateReady, Limit: 2}, []uint64{a1.ID, a2.ID}},
		{queue.JobFilter{Queue: "ja", AfterID: a2.ID}, []uint64{a3.ID}},
	} {
		if got := list(c.f); !slices.Equal(got, c.want) {
			t.Fatalf("Jobs(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
}
