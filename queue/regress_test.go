package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	wlog "github.com/walq/walq/log"
)

// Regression tests for bugs that the proof suite (TestModel, the crash and
// fault tests) found, each reduced to the shortest sequence that shows it.

// TestStaleTokenAfterRelease: a Token is a job ID and an attempt number, and
// a released (or snoozed) attempt gives its number back, so the token of
// the released lease names the next lease too. A worker that released its
// lease (graceful shutdown while the handler still runs, or a snooze) and
// then completes with its old token completes someone else's lease. The
// docs promise that only the current lease's token is accepted and that a
// stale token gets ErrLeaseLost.
func TestStaleTokenAfterRelease(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"release", "snooze"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			q := openTest(t, t.TempDir(), nil)
			id := enqueueT(t, q, NewJob{Payload: []byte("x")})
			first := leaseT(t, q, "")
			var err error
			if how == "release" {
				err = q.Release(ctx, first.Token)
			} else {
				err = q.Fail(ctx, first.Token, Snooze(0))
			}
			if err != nil {
				t.Fatal(err)
			}
			second := leaseT(t, q, "")
			err = q.Complete(ctx, first.Token, []byte("from the released lease"))
			if !errors.Is(err, ErrLeaseLost) {
				t.Errorf("BUG: Complete with the token of the %sd lease (%+v) = %v, want ErrLeaseLost; "+
					"the current lease's token is %+v, the same value, and the job is now %s with result %q",
					how, first.Token, err, second.Token, getT(t, q, id).State, getT(t, q, id).Result)
			}
		})
	}
}

// TestStaleTokenAfterRequeue: a requeue resets the attempt count, so the
// token of an attempt that ended before the job died is valid again once
// the requeued job is leased: a worker whose lease expired (the job died of
// it) completes the lease of the worker that runs the requeued job.
func TestStaleTokenAfterRequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Payload: []byte("x"), MaxAttempts: 1})
	slow := leaseT(t, q, "")
	mc.Add(q.opts.LeaseDuration) // the slow worker's lease expires: dead
	if j := getT(t, q, id); j.State != StateDead {
		t.Fatalf("job is %s, want dead", j.State)
	}
	if err := q.Requeue(ctx, []uint64{id}, RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := leaseT(t, q, "")
	err := q.Complete(ctx, slow.Token, []byte("late result of the expired attempt"))
	if !errors.Is(err, ErrLeaseLost) {
		t.Errorf("BUG: Complete with the token of the attempt that expired before the requeue (%+v) = %v, "+
			"want ErrLeaseLost; the new lease's token is %+v, the same value", slow.Token, err, fresh.Token)
	}
}

// TestCompactRetentionAfterCarry: Compact's sweep walks finished jobs in the
// order they finished and stops at the first one still inside its
// retention. A compaction restates carried jobs in creation order, which
// re-lists them in that order, so the next sweep stops early and keeps
// jobs whose retention is over (until every job listed before them
// expires too).
func TestCompactRetentionAfterCarry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc, SegmentSize: 4 << 10, CompactRatio: -1,
		KeyRetention: 10 * time.Minute, LeaseDuration: time.Hour})
	a := enqueueT(t, q, NewJob{Payload: []byte("created first, finishes last")})
	b := enqueueT(t, q, NewJob{Payload: []byte("created second, finishes first")})
	leaseA, leaseB := leaseT(t, q, ""), leaseT(t, q, "")
	if leaseA.Job.ID != a || leaseB.Job.ID != b {
		t.Fatalf("leased %d then %d, want %d then %d", leaseA.Job.ID, leaseB.Job.ID, a, b)
	}
	if err := q.Complete(ctx, leaseB.Token, nil); err != nil { // b finishes first
		t.Fatal(err)
	}
	mc.Add(5 * time.Minute)
	if err := q.Complete(ctx, leaseA.Token, nil); err != nil { // a finishes 5 minutes later
		t.Fatal(err)
	}
	// Fill the tail segment so that a and b sit in an old segment, and
	// compact: both are carried, a first.
	for i := 0; i < 20; i++ {
		enqueueT(t, q, NewJob{Payload: make([]byte, 400)})
	}
	if st, err := q.Compact(ctx); err != nil || st.Carried == 0 {
		t.Fatalf("Compact = %+v, %v; want jobs carried", st, err)
	}
	mc.Add(6 * time.Minute) // b's retention is over, a's is not
	st, err := q.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, b); !errors.Is(err, ErrNotFound) {
		t.Errorf("BUG: job %d finished %v ago with a retention of 10m, yet Compact (purged %d) kept it: "+
			"its sweep stopped at job %d, listed first since the previous compaction carried both",
			b, 11*time.Minute, st.Purged, a)
	}
}

// TestReopenWhileForking: the directory lock is an flock(2) on LOCK, and
// flock locks belong to the open file description, which a forked child
// shares until it execs (Go opens files close-on-exec, but the descriptor
// exists in the child between fork and exec). Close only closes the
// descriptor, so while another goroutine starts a subprocess (a worker
// running a command, say), the lock outlives Close and an immediate Open in
// the same process fails with ErrLocked. Unlocking (flock LOCK_UN) before
// closing releases it for every sharer. Not parallel: it forks.
func TestReopenWhileForking(t *testing.T) {
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("skipping: no true(1) to run")
	}
	dir := t.TempDir()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			exec.Command(bin).Run()
		}
	}()
	defer func() { stop.Store(true); <-done }()
	const rounds = 100
	locked := 0
	for range rounds {
		q, err := Open(dir, &Options{Logger: openTestLogger()})
		if errors.Is(err, ErrLocked) {
			locked++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if locked > 0 {
		t.Errorf("BUG: %d of %d Opens right after Close got ErrLocked while subprocesses were being started: "+
			"the closed lock file's flock lived on in a forked child", locked, rounds)
	}
}

// TestOverlappingSegments: two segment files that claim the same log
// indexes (an older segment holding entries past the first index of the
// next one, as FuzzOpenDir built) cannot both be right, so Open refuses the
// directory with a corruption error that names the older segment, and
// Salvage keeps the contiguous prefix (the older segment) and moves the
// newer one aside. Before the fix, Open ignored the older segment's extra
// entries (acknowledged jobs vanished) and a later reopen replayed them in
// place of the newer segment's.
func TestOverlappingSegments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{Clock: newMock(), CompactRatio: -1, Logger: openTestLogger()}
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c"} { // entries 1, 2, 3 in segment 1
		enqueueT(t, q, NewJob{Payload: []byte(p)})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// A stray segment file that claims to start at index 2.
	stray := filepath.Join(dir, fmt.Sprintf("%020d", 2))
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{true, false} {
		o := *opts
		o.ReadOnly = ro
		_, err = Open(dir, &o)
		var ce *wlog.CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open (read-only %v) of overlapping segments: got %v, want a *log.CorruptError", ro, err)
		}
		if filepath.Base(ce.Segment) != fmt.Sprintf("%020d", 1) || ce.Index != 2 {
			t.Errorf("corruption reported at segment %s index %d, want segment %020d index 2", ce.Segment, ce.Index, 1)
		}
	}
	rep, err := wlog.Salvage(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.DroppedSegments) != 1 || rep.DroppedSegments[0] != stray || rep.KeptLast != 3 {
		t.Errorf("Salvage dropped %v and kept up to %d, want the stray segment dropped and index 3 kept", rep.DroppedSegments, rep.KeptLast)
	}
	q, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("Open after Salvage: %v", err)
	}
	defer q.Close()
	jobs, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Errorf("after Salvage the queue shows %d jobs, want the 3 acknowledged ones", len(jobs))
	}
}
