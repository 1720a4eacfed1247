package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// Regression tests for histories TestLinearizable found not linearizable
// that are the engine's doing, each reduced to the shortest deterministic
// sequence: the apply hook holds an entry after it is durable and before
// it is applied.

// TestDuplicateOutlivesPurge: an enqueue whose key is held by a finished
// job answers Duplicate from that job's state without reserving the job; a
// purge of the job that starts while the enqueue's entry is in flight (a
// Purge call, or the retention sweep once the clock has moved past the
// job's retention) finds the job free, reserves it, and its entry, later in
// the log, may be applied first. Readers then see the job purged and the
// enqueue's other job not there yet, and then the enqueue reports the
// purged job as the holder of its key: no order of the two gives what
// everyone saw (the duplicate needs the enqueue before the purge, the
// readers need it after). TestLinearizable found it as seeds 377944667,
// 377944831, 553700831, 949495826 and 949496176 (Purge) and 553700566 and
// 553701242 (the sweep of the background compactor or of Compact).
//
// The test accepts a purge that waits for the enqueue (reported through
// hooks.wait, as waits for a busy key are), one that passes over the job
// (the sweep), or one that returns with the enqueue's jobs already visible.
func TestDuplicateOutlivesPurge(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"purge", "sweep"} {
		t.Run("by="+by, func(t *testing.T) {
			t.Parallel()
			testDuplicateOutlivesPurge(t, by)
		})
	}
}

func testDuplicateOutlivesPurge(t *testing.T, by string) {
	ctx := context.Background()
	g := newApplyGate()
	waited := make(chan struct{}, 1)
	dir := t.TempDir()
	inject(t, dir, &hooks{noBackground: true, apply: g.hook, wait: func() {
		select {
		case waited <- struct{}{}:
		default:
		}
	}})
	q := openTest(t, dir, &Options{CompactRatio: -1, KeyRetention: time.Minute})
	a := enqueueT(t, q, NewJob{Key: "k", Payload: []byte("a")})
	if err := q.Cancel(ctx, a); err != nil {
		t.Fatal(err)
	}

	g.arm()
	var res []Enqueued
	enq := async(func() (err error) {
		res, err = q.EnqueueBatch(ctx, []NewJob{{Key: "k", Payload: []byte("dup")}, {Payload: []byte("x")}})
		return err
	})
	<-g.held // the enqueue's entry is durable and not applied
	purge := async(func() error { return q.Purge(ctx, []uint64{a}) })
	if by == "sweep" {
		mockOf(t, q).Add(time.Minute) // job a's retention is over
		purge = async(func() error {
			_, err := q.Compact(ctx)
			return err
		})
	}

	select {
	case err := <-purge:
		if err != nil {
			t.Fatalf("%s of job %d: %v", by, a, err)
		}
		_, getErr := q.Get(ctx, a)
		seen, err := q.Jobs(ctx, JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		close(g.release)
		if err := <-enq; err != nil {
			t.Fatalf("EnqueueBatch: %v", err)
		}
		if res[0] == (Enqueued{ID: a, Duplicate: true}) && errors.Is(getErr, ErrNotFound) && len(seen) == 0 {
			t.Errorf("BUG: the %s of job %d returned and readers saw job %d gone and no job %d, while the "+
				"enqueue in flight then reported job %d as the holder of key %q: %+v. The enqueue read "+
				"job %d before the %s reserved it, and the %s's later entry was applied first",
				by, a, a, res[1].ID, a, "k", res, a, by, by)
		}
	case <-waited:
		close(g.release)
		if err := <-enq; err != nil {
			t.Fatalf("EnqueueBatch: %v", err)
		}
		if err := <-purge; err != nil {
			t.Fatalf("%s of job %d: %v", by, a, err)
		}
	case <-time.After(time.Minute): // a watchdog, not a synchronisation
		close(g.release)
		t.Fatalf("the %s of job %d neither returned nor reported a wait (hooks.wait) while the enqueue was held", by, a)
	}
}

// A ready job reserved only to answer a duplicate (a follow-up whose key
// it holds, in an entry that enqueues nothing new) is ready again when the
// entry is applied: a leaser that found nothing meanwhile must be woken.
func TestDuplicateHolderWakesLeaser(t *testing.T) {
	ctx := context.Background()
	g := newApplyGate()
	dir := t.TempDir()
	inject(t, dir, &hooks{noBackground: true, apply: g.hook})
	q := openTest(t, dir, &Options{CompactRatio: -1})
	holder := enqueueT(t, q, NewJob{Queue: "h", Key: "k"})
	enqueueT(t, q, NewJob{Queue: "w"})
	l := leaseT(t, q, "w")
	g.arm()
	done := async(func() error {
		res, err := q.CompleteAndEnqueue(ctx, l.Token, nil, []NewJob{{Queue: "h", Key: "k"}})
		if err == nil && res[0] != (Enqueued{ID: holder, Duplicate: true}) {
			err = fmt.Errorf("follow-up = %+v, want a duplicate of job %d", res[0], holder)
		}
		return err
	})
	<-g.held
	ls, wake, _, err := q.tryLease(ctx, "h", 1)
	if err != nil || len(ls) != 0 {
		t.Fatalf("tryLease while the holder is reserved = %d leases, %v", len(ls), err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	receive(t, wake, "the wake-up of a leaser after the duplicate's holder was given back")
	if got := leaseT(t, q, "h"); got.Job.ID != holder {
		t.Fatalf("leased job %d, want %d", got.Job.ID, holder)
	}
}

// A batch completing job A with a follow-up whose key job B holds, and
// completing job B too: B is the batch's own, so its token is not "lost"
// because the follow-up's duplicate answer reserved it first.
func TestBatchFollowUpKeyHeldByBatchJob(t *testing.T) {
	ctx := context.Background()
	q := openTest(t, noBackgroundDir(t), &Options{CompactRatio: -1})
	a := enqueueT(t, q, NewJob{})
	b := enqueueT(t, q, NewJob{Key: "k"})
	la, lb := leaseT(t, q, ""), leaseT(t, q, "")
	if la.Job.ID != a || lb.Job.ID != b {
		t.Fatalf("leased %d, %d; want %d, %d", la.Job.ID, lb.Job.ID, a, b)
	}
	errs, err := q.CompleteBatch(ctx, []Completion{
		{Token: la.Token, Then: []NewJob{{Key: "k"}}},
		{Token: lb.Token},
	})
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("CompleteBatch = %v, %v; want both completed", errs, err)
	}
	for _, id := range []uint64{a, b} {
		if j := getT(t, q, id); j.State != StateCompleted {
			t.Fatalf("job %d is %s, want completed", id, j.State)
		}
	}
}

// A CompleteBatch split over two entries by size: a follow-up of the
// second completion is answered as a duplicate of a job the first entry
// creates. If the first entry is not written (a failed fsync, or an entry
// over the size limit), the second must not be either: its follow-up would
// name a job that never existed (found by review).
func TestSplitBatchCommitsAPrefix(t *testing.T) {
	for _, how := range []string{"fsync", "too-large"} {
		t.Run("first-entry="+how, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var arm atomic.Bool
			inject(t, dir, &hooks{noBackground: true, sync: func(first, last uint64) error {
				if arm.CompareAndSwap(true, false) {
					return errors.New("injected fsync failure")
				}
				return nil
			}})
			q := openTest(t, dir, &Options{CompactRatio: -1})
			for range 2 {
				enqueueT(t, q, NewJob{Payload: []byte("x")})
			}
			ls, err := q.TryLeaseN(ctx, "", 2)
			if err != nil || len(ls) != 2 {
				t.Fatal(ls, err)
			}
			var thenA []NewJob
			switch how {
			case "fsync":
				thenA = []NewJob{{Key: "k", Payload: bytes.Repeat([]byte("p"), 10<<20)}}
				arm.Store(true)
			case "too-large":
				for range 5 {
					thenA = append(thenA, NewJob{Payload: bytes.Repeat([]byte("p"), 14<<20)})
				}
				thenA[0].Key = "k"
			}
			errs, err := q.CompleteBatch(ctx, []Completion{
				{Token: ls[0].Token, Then: thenA},
				{Token: ls[1].Token, Then: []NewJob{{Key: "k", Payload: bytes.Repeat([]byte("b"), 10<<20)}}},
			})
			if err == nil && errs[1] == nil {
				if _, gerr := q.GetByKey(ctx, "k"); gerr != nil {
					t.Fatalf("completion 2 succeeded (errs %v) but its follow-up with key k does not exist: %v", errs, gerr)
				}
			}
			enqueueT(t, q, NewJob{}) // the log recovers from the injected failure
		})
	}
}
