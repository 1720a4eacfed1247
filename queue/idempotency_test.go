package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestKeyHeldInEveryState enqueues a key twice with the first job in each
// state: the second enqueue is a duplicate of the first job and adds nothing.
func TestKeyHeldInEveryState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		state JobState
		setup func(t *testing.T, q *Queue, id uint64)
	}{
		{StateReady, func(t *testing.T, q *Queue, id uint64) {}},
		{StateScheduled, func(t *testing.T, q *Queue, id uint64) {
			l := leaseT(t, q, "")
			if err := q.Fail(t.Context(), l.Token, errors.New("retry")); err != nil {
				t.Fatal(err)
			}
		}},
		{StateLeased, func(t *testing.T, q *Queue, id uint64) { leaseT(t, q, "") }},
		{StateCompleted, func(t *testing.T, q *Queue, id uint64) {
			if err := q.Complete(t.Context(), leaseT(t, q, "").Token, []byte("r")); err != nil {
				t.Fatal(err)
			}
		}},
		{StateDead, func(t *testing.T, q *Queue, id uint64) {
			if err := q.Fail(t.Context(), leaseT(t, q, "").Token, Permanent(errors.New("no"))); err != nil {
				t.Fatal(err)
			}
		}},
		{StateCancelled, func(t *testing.T, q *Queue, id uint64) {
			if err := q.Cancel(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			t.Parallel()
			q := openTest(t, t.TempDir(), nil)
			id := enqueueT(t, q, NewJob{Key: "k", Payload: []byte("first")})
			tc.setup(t, q, id)
			if j := getT(t, q, id); j.State != tc.state {
				t.Fatalf("setup left the job %s", j.State)
			}
			r, err := q.Enqueue(t.Context(), NewJob{Key: "k", Payload: []byte("second"), Queue: "elsewhere"})
			if err != nil || r != (Enqueued{ID: id, Duplicate: true}) {
				t.Fatalf("second Enqueue = %+v, %v; want duplicate of %d", r, err, id)
			}
			all, err := q.Jobs(t.Context(), JobFilter{})
			if err != nil || len(all) != 1 {
				t.Fatalf("Jobs = %d jobs, %v; want 1", len(all), err)
			}
			if j := getT(t, q, id); string(j.Payload) != "first" || j.State != tc.state || j.Key != "k" {
				t.Fatalf("the duplicate changed the job: %+v", j)
			}
		})
	}
}

func TestKeyConcurrentEnqueue(t *testing.T) {
	t.Parallel()
	const n = 50
	q := openTest(t, t.TempDir(), nil)
	res := make([]Enqueued, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := q.Enqueue(t.Context(), NewJob{Key: "same", Payload: fmt.Appendf(nil, "%d", i)})
			if err != nil {
				t.Error(err)
			}
			res[i] = r
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i, r := range res {
		if r.ID != res[0].ID {
			t.Errorf("enqueue %d got job %d, enqueue 0 got %d", i, r.ID, res[0].ID)
		}
		if !r.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d enqueues made a job, want exactly 1", fresh)
	}
	all, err := q.Jobs(t.Context(), JobFilter{})
	if err != nil || len(all) != 1 {
		t.Fatalf("Jobs = %d jobs, %v; want 1", len(all), err)
	}
}

func TestKeyInBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	held := enqueueT(t, q, NewJob{Key: "held"})
	res, err := q.EnqueueBatch(ctx, []NewJob{
		{Key: "a", Payload: []byte("a1")},
		{Key: "b"},
		{Key: "a", Payload: []byte("a2")},
		{},
		{Key: "held"},
		{},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Enqueued{{ID: 2}, {ID: 3}, {ID: 2, Duplicate: true}, {ID: 4}, {ID: held, Duplicate: true}, {ID: 5}}
	if !slices.Equal(res, want) {
		t.Fatalf("EnqueueBatch = %+v, want %+v", res, want)
	}
	if j := getT(t, q, 2); string(j.Payload) != "a1" {
		t.Fatalf("the key's job has payload %q, want the first occurrence's", j.Payload)
	}
	if all, _ := q.Jobs(ctx, JobFilter{}); len(all) != 5 {
		t.Fatalf("%d jobs, want 5", len(all))
	}
}

// TestKeyRetention: a finished job keeps its key, and Get its result, for
// KeyRetention after it finished; then the key makes a new job.
func TestKeyRetention(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		finish func(t *testing.T, q *Queue, id uint64)
	}{
		{"completed", func(t *testing.T, q *Queue, id uint64) {
			if err := q.Complete(t.Context(), leaseT(t, q, "").Token, []byte("receipt-1")); err != nil {
				t.Fatal(err)
			}
		}},
		{"cancelled", func(t *testing.T, q *Queue, id uint64) {
			if err := q.Cancel(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), nil) // KeyRetention defaults to 24h
			mc := mockOf(t, q)
			id := enqueueT(t, q, NewJob{Key: "order-1"})
			mc.Add(time.Second)
			tc.finish(t, q, id)
			finished := mc.Now()

			mc.Add(24*time.Hour - time.Nanosecond)
			r, err := q.Enqueue(ctx, NewJob{Key: "order-1"})
			if err != nil || r != (Enqueued{ID: id, Duplicate: true}) {
				t.Fatalf("1ns before retention ends: Enqueue = %+v, %v; want duplicate of %d", r, err, id)
			}
			j := getT(t, q, id)
			if !j.FinishedAt.Equal(finished) || (tc.name == "completed" && string(j.Result) != "receipt-1") {
				t.Fatalf("retained job: %+v", j)
			}

			mc.Add(time.Nanosecond)
			r, err = q.Enqueue(ctx, NewJob{Key: "order-1"})
			if err != nil || r.Duplicate || r.ID == id {
				t.Fatalf("when retention ends: Enqueue = %+v, %v; want a new job", r, err)
			}
			if _, err := q.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(old job) = %v, want ErrNotFound: its key went to a new job", err)
			}
			if j := getT(t, q, r.ID); j.State != StateReady || j.Key != "order-1" {
				t.Fatalf("new job: %+v", j)
			}
		})
	}
}

// TestRetentionForgetsJobs: a finished job is forgotten once KeyRetention
// has passed (by maintenance; Compact runs it on demand), key or not.
func TestRetentionForgetsJobs(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{KeyRetention: time.Hour})
	mc := mockOf(t, q)
	done := enqueueT(t, q, NewJob{Key: "k"})
	if err := q.Complete(ctx, leaseT(t, q, "").Token, nil); err != nil {
		t.Fatal(err)
	}
	kept := enqueueT(t, q, NewJob{Delay: 48 * time.Hour})
	mc.Add(time.Hour)
	if _, err := q.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, done); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(completed job past retention) = %v, want ErrNotFound", err)
	}
	getT(t, q, kept)
	if r, err := q.Enqueue(ctx, NewJob{Key: "k"}); err != nil || r.Duplicate {
		t.Fatalf("Enqueue(key of a forgotten job) = %+v, %v; want a new job", r, err)
	}
}

// TestDeadKeyHeldUntilPurged: retention does not apply to dead jobs; their
// key is held until they are purged.
func TestDeadKeyHeldUntilPurged(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Key: "k"})
	if err := q.Fail(ctx, leaseT(t, q, "").Token, Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	mc.Add(48 * time.Hour)
	if r, err := q.Enqueue(ctx, NewJob{Key: "k"}); err != nil || r != (Enqueued{ID: id, Duplicate: true}) {
		t.Fatalf("Enqueue after 48h = %+v, %v; want duplicate of dead job %d", r, err, id)
	}
	if n, err := q.PurgeDead(ctx, DeadFilter{}); err != nil || n != 1 {
		t.Fatalf("PurgeDead = %d, %v", n, err)
	}
	if r, err := q.Enqueue(ctx, NewJob{Key: "k"}); err != nil || r.Duplicate {
		t.Fatalf("Enqueue after purge = %+v, %v; want a new job", r, err)
	}
}

func TestFollowUpKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	existing := enqueueT(t, q, NewJob{Queue: "other", Key: "existing"})
	id := enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	res, err := q.CompleteAndEnqueue(ctx, l.Token, []byte("r"), []NewJob{
		{Queue: "next", Key: "n"}, {Queue: "next", Key: "n"}, {Queue: "next", Key: "existing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Enqueued{{ID: 3}, {ID: 3, Duplicate: true}, {ID: existing, Duplicate: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("CompleteAndEnqueue = %+v, want %+v", res, want)
	}
	if j := getT(t, q, id); j.State != StateCompleted {
		t.Fatalf("job %s", j.State)
	}
	// A retried completion (stale token) neither completes nor enqueues.
	if _, err := q.CompleteAndEnqueue(ctx, l.Token, nil, []NewJob{{Queue: "next"}}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second CompleteAndEnqueue = %v, want ErrLeaseLost", err)
	}
	if all, _ := q.Jobs(ctx, JobFilter{Queue: "next"}); len(all) != 1 {
		t.Fatalf("%d follow-up jobs, want 1", len(all))
	}
}

// TestStaleLeaseCannotComplete: after a lease expired and the job was leased
// again, the first worker's token changes nothing, before or after the
// second worker completes.
func TestStaleLeaseCannotComplete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{LeaseDuration: time.Minute})
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Key: "k"})
	stale := leaseT(t, q, "")
	mc.Add(time.Minute)
	fresh := leaseT(t, q, "")
	if err := q.Complete(ctx, stale.Token, []byte("stale")); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale Complete = %v, want ErrLeaseLost", err)
	}
	if err := q.Complete(ctx, fresh.Token, []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []Token{stale.Token, fresh.Token} {
		if err := q.Complete(ctx, tok, []byte("again")); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Complete(%+v) after completion = %v, want ErrLeaseLost", tok, err)
		}
		if err := q.Fail(ctx, tok, errors.New("x")); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Fail(%+v) after completion = %v, want ErrLeaseLost", tok, err)
		}
	}
	j := getT(t, q, id)
	if j.State != StateCompleted || string(j.Result) != "fresh" || !slices.Equal(outcomes(j), []string{"expired", "completed"}) {
		t.Fatalf("job %+v", j)
	}
}

// TestKeyCompletesOnceAcrossReopen: a completed key stays completed after a
// restart: enqueueing it again is a duplicate, nothing can lease it, the old
// token is refused.
func TestKeyCompletesOnceAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	mc := startClock()
	q := openTest(t, dir, &Options{Clock: mc})
	id := enqueueT(t, q, NewJob{Key: "charge-42", Payload: []byte("$10")})
	l := leaseT(t, q, "")
	if err := q.Complete(ctx, l.Token, []byte("charged")); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	mc.Add(time.Hour)
	q = openTest(t, dir, &Options{Clock: mc})
	r, err := q.Enqueue(ctx, NewJob{Key: "charge-42", Payload: []byte("$10")})
	if err != nil || r != (Enqueued{ID: id, Duplicate: true}) {
		t.Fatalf("Enqueue after reopen = %+v, %v; want duplicate of %d", r, err, id)
	}
	noLease(t, q, "")
	if err := q.Complete(ctx, l.Token, []byte("again")); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Complete with the old token after reopen = %v, want ErrLeaseLost", err)
	}
	if res, err := q.Wait(ctx, id); err != nil || string(res) != "charged" {
		t.Fatalf("Wait = %q, %v", res, err)
	}
	j := getT(t, q, id)
	if j.State != StateCompleted || !slices.Equal(outcomes(j), []string{"completed"}) {
		t.Fatalf("job %+v", j)
	}
}

// GetByKey finds a key's job without creating one, also past retention.
func TestGetByKey(t *testing.T) {
	ctx := context.Background()
	q := openTest(t, t.TempDir(), &Options{KeyRetention: time.Hour, CompactRatio: -1})
	if _, err := q.GetByKey(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByKey of an unknown key = %v, want ErrNotFound", err)
	}
	if _, err := q.GetByKey(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("GetByKey(\"\") = %v, want ErrInvalid", err)
	}
	id := enqueueT(t, q, NewJob{Key: "k", Payload: []byte("p")})
	l := leaseT(t, q, "")
	if err := q.Complete(ctx, l.Token, []byte("r")); err != nil {
		t.Fatal(err)
	}
	mockOf(t, q).Add(2 * time.Hour)
	j, err := q.GetByKey(ctx, "k")
	if err != nil || j.ID != id || string(j.Payload) != "p" || string(j.Result) != "r" {
		t.Fatalf("GetByKey past retention = %+v, %v; want job %d with payload and result", j, err, id)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Queues[DefaultQueue].Completed; n != 1 {
		t.Fatalf("after GetByKey: %d completed jobs, want 1 (no job created)", n)
	}
}
