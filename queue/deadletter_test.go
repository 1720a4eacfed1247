package queue

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// deadLetters fills a queue with four dead jobs, one a minute from epoch+1m
// (A in "a", B in "b", C in "a", D in "b"), plus jobs in other states. It
// returns the dead jobs' IDs in order of death.
func deadLetters(t *testing.T, q *Queue) []uint64 {
	t.Helper()
	mc := mockOf(t, q)
	var ids []uint64
	for _, d := range []struct{ queue, err string }{
		{"a", "timeout: smtp"}, {"b", "invalid address"}, {"a", "timeout: dns"}, {"b", "timeout: api"},
	} {
		mc.Add(time.Minute)
		id := enqueueT(t, q, NewJob{Queue: d.queue, Payload: []byte(d.err)})
		if err := q.Fail(t.Context(), leaseT(t, q, d.queue).Token, Permanent(errors.New(d.err))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	done := enqueueT(t, q, NewJob{Queue: "a"})
	if err := q.Complete(t.Context(), leaseT(t, q, "a").Token, nil); err != nil {
		t.Fatal(err)
	}
	if done == 0 {
		t.Fatal("no ID")
	}
	enqueueT(t, q, NewJob{Queue: "b", Delay: time.Hour})
	return ids
}

func jobIDs(js []*Job) []uint64 {
	var out []uint64
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func TestDeadFilter(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	ids := deadLetters(t, q)
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	minute := func(n int) time.Time { return epoch.Add(time.Duration(n) * time.Minute) }
	for _, tc := range []struct {
		name string
		f    DeadFilter
		want []uint64
	}{
		{"all, oldest death first", DeadFilter{}, []uint64{a, b, c, d}},
		{"queue", DeadFilter{Queue: "a"}, []uint64{a, c}},
		{"unknown queue", DeadFilter{Queue: "none"}, nil},
		{"error text", DeadFilter{ErrorContains: "timeout"}, []uint64{a, c, d}},
		{"queue and error text", DeadFilter{Queue: "b", ErrorContains: "timeout"}, []uint64{d}},
		{"before is exclusive", DeadFilter{Before: minute(3)}, []uint64{a, b}},
		{"after is exclusive", DeadFilter{After: minute(2)}, []uint64{c, d}},
		{"between", DeadFilter{After: minute(1), Before: minute(4)}, []uint64{b, c}},
		{"limit", DeadFilter{Limit: 2}, []uint64{a, b}},
		{"limit after filter", DeadFilter{ErrorContains: "timeout", Limit: 2}, []uint64{a, c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := q.Dead(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(jobIDs(got), tc.want) {
				t.Fatalf("Dead(%+v) = %v, want %v", tc.f, jobIDs(got), tc.want)
			}
			for _, j := range got {
				if j.State != StateDead || j.LastError == "" || j.Payload != nil || j.FinishedAt.IsZero() {
					t.Errorf("listed job %+v", j)
				}
			}
		})
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()

	t.Run("to another queue", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		ids := deadLetters(t, q)
		a := ids[0]
		before := getT(t, q, a)
		if err := q.Requeue(ctx, []uint64{a}, RequeueOptions{Queue: "retry"}); err != nil {
			t.Fatal(err)
		}
		j := getT(t, q, a)
		if j.State != StateReady || j.Queue != "retry" || j.Attempt != 0 || !j.RunAt.Equal(mockOf(t, q).Now()) {
			t.Fatalf("requeued job: %+v", j)
		}
		// The timeline keeps the old attempts and marks the requeue.
		if !slices.Equal(outcomes(j), append(outcomes(before), "requeued")) || string(j.Payload) != string(before.Payload) {
			t.Fatalf("requeue lost the history or payload: %+v", j)
		}
		dead, _ := q.Dead(ctx, DeadFilter{})
		if !slices.Equal(jobIDs(dead), ids[1:]) {
			t.Fatalf("Dead after requeue = %v, want %v", jobIDs(dead), ids[1:])
		}
		st, _ := q.Stats(ctx)
		if st.Queues["a"].Dead != 1 || st.Queues["retry"].Ready != 1 {
			t.Fatalf("stats a=%+v retry=%+v", st.Queues["a"], st.Queues["retry"])
		}
		noLease(t, q, "a")
		l := leaseT(t, q, "retry")
		if l.Job.ID != a || l.Token.Attempt != 1 {
			t.Fatalf("lease after requeue: job %d attempt %d, want %d attempt 1 (attempts reset)", l.Job.ID, l.Token.Attempt, a)
		}
		if err := q.Complete(ctx, l.Token, []byte("ok")); err != nil {
			t.Fatal(err)
		}
		j = getT(t, q, a)
		if !slices.Equal(outcomes(j), []string{"dead", "requeued", "completed"}) {
			t.Fatalf("outcomes %q", outcomes(j))
		}
		if last := j.History[len(j.History)-1]; last.Number != l.Token.Attempt {
			t.Errorf("the attempt after the requeue is numbered %d in the history, but ran as attempt %d (Number is documented as the count toward MaxAttempts, which the requeue reset)",
				last.Number, l.Token.Attempt)
		}
	})

	t.Run("gets all its attempts again", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), &Options{MaxAttempts: 2})
		mc := mockOf(t, q)
		id := enqueueT(t, q, NewJob{})
		for range 2 {
			if err := q.Fail(ctx, leaseT(t, q, "").Token, errors.New("x")); err != nil {
				t.Fatal(err)
			}
			mc.Add(time.Hour)
		}
		if j := getT(t, q, id); j.State != StateDead {
			t.Fatalf("job %s", j.State)
		}
		if err := q.Requeue(ctx, []uint64{id}, RequeueOptions{Delay: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if j := getT(t, q, id); j.State != StateScheduled || !j.RunAt.Equal(mc.Now().Add(time.Minute)) {
			t.Fatalf("requeued with delay: %s at %v", j.State, j.RunAt)
		}
		mc.Add(time.Minute)
		if err := q.Fail(ctx, leaseT(t, q, "").Token, errors.New("x")); err != nil {
			t.Fatal(err)
		}
		if j := getT(t, q, id); j.State != StateScheduled || j.Attempt != 1 {
			t.Fatalf("first failure after requeue: %s attempt %d; want a retry", j.State, j.Attempt)
		}
	})

	t.Run("refuses what is not dead, atomically", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		ids := deadLetters(t, q)
		ready := enqueueT(t, q, NewJob{Queue: "a"})
		if err := q.Requeue(ctx, []uint64{ids[0], ready}, RequeueOptions{}); !errors.Is(err, ErrState) {
			t.Fatalf("Requeue(dead, ready) = %v, want ErrState", err)
		}
		if err := q.Requeue(ctx, []uint64{ids[0], 999}, RequeueOptions{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Requeue(dead, unknown) = %v, want ErrNotFound", err)
		}
		if j := getT(t, q, ids[0]); j.State != StateDead {
			t.Fatalf("a failed Requeue changed job %d to %s", ids[0], j.State)
		}
		if err := q.Requeue(ctx, []uint64{ids[0], ids[0]}, RequeueOptions{}); err != nil {
			t.Fatalf("Requeue with a repeated ID: %v", err)
		}
		if j := getT(t, q, ids[0]); j.State != StateReady {
			t.Fatalf("job %s", j.State)
		}
	})

	t.Run("RequeueDead", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		ids := deadLetters(t, q)
		n, err := q.RequeueDead(ctx, DeadFilter{Queue: "b"}, RequeueOptions{})
		if err != nil || n != 2 {
			t.Fatalf("RequeueDead(b) = %d, %v; want 2", n, err)
		}
		dead, _ := q.Dead(ctx, DeadFilter{})
		if want := []uint64{ids[0], ids[2]}; !slices.Equal(jobIDs(dead), want) {
			t.Fatalf("Dead = %v, want %v", jobIDs(dead), want)
		}
		if st, _ := q.Stats(ctx); st.Queues["b"].Ready != 2 || st.Queues["b"].Dead != 0 {
			t.Fatalf("stats b = %+v", st.Queues["b"])
		}
		n, err = q.RequeueDead(ctx, DeadFilter{Limit: 1}, RequeueOptions{Queue: "c"})
		if err != nil || n != 1 {
			t.Fatalf("RequeueDead(limit 1) = %d, %v", n, err)
		}
		if j := getT(t, q, ids[0]); j.State != StateReady || j.Queue != "c" {
			t.Fatalf("oldest dead job after RequeueDead(limit 1): %s in %q", j.State, j.Queue)
		}
		n, err = q.RequeueDead(ctx, DeadFilter{Queue: "none"}, RequeueOptions{})
		if err != nil || n != 0 {
			t.Fatalf("RequeueDead(nothing) = %d, %v", n, err)
		}
	})
}

func TestPurge(t *testing.T) {
	t.Parallel()

	t.Run("PurgeDead", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		ids := deadLetters(t, q)
		n, err := q.PurgeDead(ctx, DeadFilter{ErrorContains: "timeout"})
		if err != nil || n != 3 {
			t.Fatalf("PurgeDead(timeout) = %d, %v; want 3", n, err)
		}
		dead, _ := q.Dead(ctx, DeadFilter{})
		if !slices.Equal(jobIDs(dead), []uint64{ids[1]}) {
			t.Fatalf("Dead = %v, want [%d]", jobIDs(dead), ids[1])
		}
		for _, id := range []uint64{ids[0], ids[2], ids[3]} {
			if _, err := q.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(purged %d) = %v, want ErrNotFound", id, err)
			}
			if _, err := q.Wait(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Wait(purged %d) = %v, want ErrNotFound", id, err)
			}
		}
		if st, _ := q.Stats(ctx); st.Queues["a"].Dead != 0 || st.Queues["b"].Dead != 1 {
			t.Fatalf("stats %+v", st.Queues)
		}
	})

	t.Run("only finished jobs, atomically", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		done := enqueueT(t, q, NewJob{Key: "done"})
		if err := q.Complete(ctx, leaseT(t, q, "").Token, nil); err != nil {
			t.Fatal(err)
		}
		cancelled := enqueueT(t, q, NewJob{})
		if err := q.Cancel(ctx, cancelled); err != nil {
			t.Fatal(err)
		}
		leased := enqueueT(t, q, NewJob{})
		leaseT(t, q, "")
		ready := enqueueT(t, q, NewJob{})
		scheduled := enqueueT(t, q, NewJob{Delay: time.Hour})
		for _, id := range []uint64{ready, scheduled, leased} {
			if err := q.Purge(ctx, []uint64{done, id}); !errors.Is(err, ErrState) {
				t.Fatalf("Purge(completed, %s) = %v, want ErrState", getT(t, q, id).State, err)
			}
		}
		if err := q.Purge(ctx, []uint64{done, 999}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Purge(unknown) = %v, want ErrNotFound", err)
		}
		if all, _ := q.Jobs(ctx, JobFilter{}); len(all) != 5 {
			t.Fatalf("failed Purges removed jobs: %d left", len(all))
		}
		if err := q.Purge(ctx, []uint64{done, cancelled}); err != nil {
			t.Fatal(err)
		}
		if all, _ := q.Jobs(ctx, JobFilter{}); !slices.Equal(jobIDs(all), []uint64{leased, ready, scheduled}) {
			t.Fatalf("after Purge: %v", jobIDs(all))
		}
		if r, err := q.Enqueue(ctx, NewJob{Key: "done"}); err != nil || r.Duplicate {
			t.Fatalf("Enqueue(purged key) = %+v, %v; want a new job", r, err)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		job  NewJob
	}{
		{"ready", NewJob{}},
		{"scheduled", NewJob{Delay: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), nil)
			mc := mockOf(t, q)
			id := enqueueT(t, q, tc.job)
			waited := make(chan error, 1)
			go func() { _, err := q.Wait(ctx, id); waited <- err }()
			mc.Add(time.Second)
			if err := q.Cancel(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := receive(t, waited, "Wait during Cancel"); !errors.Is(err, ErrCancelled) {
				t.Fatalf("blocked Wait = %v, want ErrCancelled", err)
			}
			if _, err := q.Wait(ctx, id); !errors.Is(err, ErrCancelled) {
				t.Fatalf("Wait = %v, want ErrCancelled", err)
			}
			j := getT(t, q, id)
			if j.State != StateCancelled || !j.FinishedAt.Equal(epoch.Add(time.Second)) {
				t.Fatalf("cancelled job %+v", j)
			}
			mc.Add(2 * time.Hour)
			noLease(t, q, "")
			if err := q.Cancel(ctx, id); !errors.Is(err, ErrState) {
				t.Fatalf("second Cancel = %v, want ErrState", err)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), nil)
		leased := enqueueT(t, q, NewJob{})
		l := leaseT(t, q, "")
		done := enqueueT(t, q, NewJob{})
		if err := q.Complete(ctx, leaseT(t, q, "").Token, nil); err != nil {
			t.Fatal(err)
		}
		dead := enqueueT(t, q, NewJob{})
		if err := q.Fail(ctx, leaseT(t, q, "").Token, Permanent(errors.New("x"))); err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint64{leased, done, dead} {
			state := getT(t, q, id).State
			if err := q.Cancel(ctx, id); !errors.Is(err, ErrState) {
				t.Errorf("Cancel(%s job) = %v, want ErrState", state, err)
			}
			if got := getT(t, q, id).State; got != state {
				t.Errorf("refused Cancel moved a %s job to %s", state, got)
			}
		}
		if err := q.Cancel(ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("Cancel(unknown) = %v, want ErrNotFound", err)
		}
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatalf("Complete after a refused Cancel: %v", err)
		}
	})
}

func TestPause(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mc := startClock()
	dir := t.TempDir()
	q := openTest(t, dir, &Options{Clock: mc})
	running := enqueueT(t, q, NewJob{Queue: "p"})
	l := leaseT(t, q, "p")
	if err := q.Pause(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	ready := enqueueT(t, q, NewJob{Queue: "p"})
	enqueueT(t, q, NewJob{Queue: "p", Delay: time.Minute})
	other := enqueueT(t, q, NewJob{Queue: "other"})
	noLease(t, q, "p")
	if l := leaseT(t, q, "other"); l.Job.ID != other {
		t.Fatalf("other queue leased %d", l.Job.ID)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatalf("Complete of job %d leased before Pause: %v", running, err)
	}
	if st, _ := q.Stats(ctx); !st.Queues["p"].Paused || st.Queues["p"].Ready != 1 || st.Queues["other"].Paused {
		t.Fatalf("stats %+v", st.Queues)
	}

	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(time.Minute) // the delayed job is due: still not leasable
	q = openTest(t, dir, &Options{Clock: mc})
	noLease(t, q, "p")
	if st, _ := q.Stats(ctx); !st.Queues["p"].Paused || st.Queues["p"].Ready != 2 {
		t.Fatalf("stats after reopen %+v", st.Queues["p"])
	}
	if err := q.Pause(ctx, "p"); err != nil {
		t.Fatalf("Pause of a paused queue: %v", err)
	}

	res := leaseAsync(ctx, q, "p")
	if err := q.Resume(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	r := receive(t, res, "Lease after Resume")
	if r.err != nil || r.l.Job.ID != ready {
		t.Fatalf("Lease after Resume = %+v, %v; want job %d", r.l, r.err, ready)
	}
	leaseT(t, q, "p")
	if err := q.Resume(ctx, "never-paused"); err != nil {
		t.Fatalf("Resume of a queue never paused: %v", err)
	}

	// The default queue is named by "".
	if err := q.Pause(ctx, ""); err != nil {
		t.Fatal(err)
	}
	enqueueT(t, q, NewJob{})
	noLease(t, q, DefaultQueue)
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if err := q.Resume(ctx2, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resume with a cancelled context = %v", err)
	}
}

// A requeued job is not finished: it has no FinishedAt (issue 13, bug 4),
// though its last error stays for the operator to read.
func TestRequeuedJobNotFinished(t *testing.T) {
	ctx := context.Background()
	q := openTest(t, t.TempDir(), &Options{CompactRatio: -1})
	id := enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	if err := q.Fail(ctx, l.Token, Permanent(errors.New("boom"))); err != nil {
		t.Fatal(err)
	}
	if j := getT(t, q, id); j.FinishedAt.IsZero() {
		t.Fatalf("dead job has no FinishedAt")
	}
	if err := q.Requeue(ctx, []uint64{id}, RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, id)
	if j.State != StateReady || !j.FinishedAt.IsZero() || j.LastError != "boom" {
		t.Fatalf("requeued job: state %s, FinishedAt %v, LastError %q; want ready, zero, boom", j.State, j.FinishedAt, j.LastError)
	}
}
