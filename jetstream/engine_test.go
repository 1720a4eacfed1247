package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHappyPath(t *testing.T) {
	q := openR1(t, nil)
	ctx := ctxT(t)
	e, err := q.Enqueue(ctx, queue.NewJob{Queue: "email.v2/x", Payload: []byte("hi"), Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := q.Enqueue(ctx, queue.NewJob{Queue: "email.v2/x", Payload: []byte("again"), Key: "k1"})
	if err != nil || !d.Duplicate || d.ID != e.ID {
		t.Fatalf("duplicate enqueue = %+v, %v; want duplicate of %d", d, err, e.ID)
	}
	l, err := q.Lease(ctx, "email.v2/x")
	if err != nil {
		t.Fatal(err)
	}
	if l.Job.ID != e.ID || string(l.Job.Payload) != "hi" || l.Token.Attempt != 1 {
		t.Fatalf("lease = %+v %+v", l.Job, l.Token)
	}
	if got, _ := q.Get(ctx, e.ID); got.State != queue.StateLeased {
		t.Fatalf("state %s, want leased", got.State)
	}
	if err := q.Complete(ctx, l.Token, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l.Token, []byte("ok")); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("second complete: %v, want ErrLeaseLost", err)
	}
	res, err := q.Wait(ctx, e.ID)
	if err != nil || string(res) != "ok" {
		t.Fatalf("Wait = %q, %v", res, err)
	}
	j, err := q.GetByKey(ctx, "k1")
	if err != nil || j.State != queue.StateCompleted || string(j.Result) != "ok" {
		t.Fatalf("GetByKey = %+v, %v", j, err)
	}
	if _, err := q.TryLease(ctx, "email.v2/x"); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("TryLease on empty queue: %v", err)
	}
}

func TestRetryDeadRequeue(t *testing.T) {
	q := openR1(t, &Options{MaxAttempts: 2, Backoff: queue.Backoff{Base: 50 * time.Millisecond}})
	ctx := ctxT(t)
	e, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("p")})
	l, err := q.Lease(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	failedAt := time.Now()
	if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	l2, err := q.Lease(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(failedAt); waited < 50*time.Millisecond {
		t.Fatalf("retried after %v, before the 50ms backoff", waited)
	}
	if l2.Token.Attempt != 2 || l2.Job.LastError != "boom" {
		t.Fatalf("second lease %+v, error %q", l2.Token, l2.Job.LastError)
	}
	if err := q.Fail(ctx, l2.Token, errors.New("boom again")); err != nil {
		t.Fatal(err)
	}
	var de *queue.DeadError
	if _, err := q.Wait(ctx, e.ID); !errors.As(err, &de) || de.Reason != "boom again" {
		t.Fatalf("Wait = %v, want dead", err)
	}
	dead, err := q.Dead(ctx, queue.DeadFilter{})
	if err != nil || len(dead) != 1 || dead[0].ID != e.ID {
		t.Fatalf("Dead = %v, %v", dead, err)
	}
	if err := q.Requeue(ctx, []uint64{e.ID}, queue.RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	l3, err := q.Lease(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if l3.Job.ID != e.ID || l3.Token.Attempt != 1 || l3.Token.Lease <= l2.Token.Lease || string(l3.Job.Payload) != "p" {
		t.Fatalf("requeued lease %+v token %+v", l3.Job, l3.Token)
	}
	if err := q.Fail(ctx, l3.Token, queue.Permanent(errors.New("perm"))); err != nil {
		t.Fatal(err)
	}
	if n, err := q.PurgeDead(ctx, queue.DeadFilter{}); err != nil || n != 1 {
		t.Fatalf("PurgeDead = %d, %v", n, err)
	}
	if _, err := q.Get(ctx, e.ID); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get after purge: %v", err)
	}
}

func TestReleaseSnoozeExtendExpire(t *testing.T) {
	q := openR1(t, &Options{LeaseDuration: 400 * time.Millisecond, MaxAttempts: 2})
	ctx := ctxT(t)
	e, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("p")})
	l, _ := q.Lease(ctx, "")
	if err := q.Release(ctx, l.Token); err != nil {
		t.Fatal(err)
	}
	l, _ = q.Lease(ctx, "")
	if l.Token.Attempt != 1 {
		t.Fatalf("after release attempt %d, want 1", l.Token.Attempt)
	}
	if err := q.Fail(ctx, l.Token, queue.Snooze(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	l, _ = q.Lease(ctx, "")
	if l.Token.Attempt != 1 {
		t.Fatalf("after snooze attempt %d, want 1", l.Token.Attempt)
	}
	// Extend past the original deadline.
	for i := 0; i < 3; i++ {
		time.Sleep(200 * time.Millisecond) // real time: the server's AckWait
		if _, err := q.Extend(ctx, l.Token, 0); err != nil {
			t.Fatalf("extend %d: %v", i, err)
		}
	}
	if _, err := q.TryLease(ctx, ""); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("extended job redelivered: %v", err)
	}
	// Let it expire: the attempt counts, and the next is the last.
	l2, err := q.Lease(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if l2.Token.Attempt != 2 {
		t.Fatalf("after expiry attempt %d, want 2", l2.Token.Attempt)
	}
	if err := q.Complete(ctx, l.Token, nil); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("stale token: %v", err)
	}
	// Expire the last attempt too: the job is dead.
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := q.Lease(ctx2, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lease after last expiry: %v", err)
	}
	j, _ := q.Get(ctx, e.ID)
	if j.State != queue.StateDead {
		t.Fatalf("state %s, want dead", j.State)
	}
}

func TestDelayedAndBatch(t *testing.T) {
	for _, noSched := range []bool{false, true} {
		t.Run(fmt.Sprintf("noSchedules=%v", noSched), func(t *testing.T) {
			q := openR1(t, &Options{NoSchedules: noSched})
			ctx := ctxT(t)
			start := time.Now()
			res, err := q.EnqueueBatch(ctx, []queue.NewJob{
				{Payload: []byte("a"), Key: "a"},
				{Payload: []byte("late"), Delay: 1100 * time.Millisecond},
				{Payload: []byte("b")},
				{Payload: []byte("a2"), Key: "a"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res[3].Duplicate || res[3].ID != res[0].ID {
				t.Fatalf("in-batch duplicate: %+v", res)
			}
			for i, want := range []string{"a", "late", "b"} {
				j, err := q.Get(ctx, res[i].ID)
				if err != nil || string(j.Payload) != want {
					t.Fatalf("job %d: %+v %v", i, j, err)
				}
			}
			if j, _ := q.Get(ctx, res[1].ID); j.State != queue.StateScheduled {
				t.Fatalf("delayed job state %s", j.State)
			}
			got := map[uint64]time.Duration{}
			for len(got) < 3 {
				l, err := q.Lease(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				got[l.Job.ID] = time.Since(start)
				if l.Token.Attempt != 1 {
					t.Fatalf("job %d attempt %d", l.Job.ID, l.Token.Attempt)
				}
				q.Complete(ctx, l.Token, nil)
			}
			if got[res[1].ID] < 1100*time.Millisecond {
				t.Fatalf("delayed job ran after %v", got[res[1].ID])
			}
		})
	}
}

func TestCancelPause(t *testing.T) {
	q := openR1(t, nil)
	ctx := ctxT(t)
	a, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("a")})
	b, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("b")})
	if err := q.Cancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Wait(ctx, a.ID); !errors.Is(err, queue.ErrCancelled) {
		t.Fatalf("Wait cancelled: %v", err)
	}
	if err := q.Pause(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := q.TryLease(ctx, ""); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("TryLease on paused queue: %v", err)
	}
	st, err := q.Stats(ctx)
	if err != nil || !st.Queues["default"].Paused || st.Queues["default"].Cancelled != 1 || st.Queues["default"].Ready != 1 {
		t.Fatalf("Stats = %+v, %v", st.Queues["default"], err)
	}
	if err := q.Resume(ctx, ""); err != nil {
		t.Fatal(err)
	}
	l, err := q.Lease(ctx, "")
	if err != nil || l.Job.ID != b.ID {
		t.Fatalf("lease after resume: %+v %v (cancelled job must not run)", l, err)
	}
	if err := q.Cancel(ctx, b.ID); !errors.Is(err, queue.ErrState) {
		t.Fatalf("cancel leased: %v", err)
	}
}

func TestSubscribe(t *testing.T) {
	q := openR1(t, nil)
	ctx := ctxT(t)
	sub := q.Subscribe(64)
	defer sub.Close()
	e, _ := q.Enqueue(ctx, queue.NewJob{Queue: "ev", Payload: []byte("p")})
	l, err := q.Lease(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	var kinds []queue.EventKind
	for len(kinds) < 2 {
		select {
		case ev := <-sub.C:
			if ev.Job != e.ID || ev.Queue != "ev" {
				t.Fatalf("event %+v for job %d", ev, e.ID)
			}
			kinds = append(kinds, ev.Kind)
		case <-ctx.Done():
			t.Fatalf("events so far %v", kinds)
		}
	}
	// Two watches feed the events (the stream for enqueues, the jobs
	// bucket for the rest): their order across watches is not kept.
	slices.Sort(kinds)
	if fmt.Sprint(kinds) != "[completed enqueued]" {
		t.Fatalf("events %v", kinds)
	}
}

func TestRetentionSweep(t *testing.T) {
	q := openR1(t, &Options{KeyRetention: 200 * time.Millisecond, MaintenanceInterval: 100 * time.Millisecond})
	ctx := ctxT(t)
	done, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("a"), Key: "a"})
	pending, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("b"), Delay: time.Hour})
	l, _ := q.Lease(ctx, "")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := q.Get(ctx, done.ID)
		if errors.Is(err, queue.ErrNotFound) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("completed job not purged after its retention: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // real time: the sweep runs every 100ms
	}
	if _, err := q.GetByKey(ctx, "a"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("key of a purged job: %v", err)
	}
	if _, err := q.Get(ctx, pending.ID); err != nil {
		t.Fatalf("pending job: %v", err)
	}
}
