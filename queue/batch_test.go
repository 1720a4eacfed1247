package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// callbacks returns the batch callback jobs q holds, by batch ID.
func callbacks(t testing.TB, q *Queue) map[uint64]*Job {
	t.Helper()
	js, err := q.Jobs(context.Background(), JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*Job{}
	for _, j := range js {
		if rest, ok := strings.CutPrefix(j.Key, batchPrefix); ok {
			var id uint64
			fmt.Sscan(rest, &id)
			if out[id] != nil {
				t.Fatalf("batch %d has two callbacks", id)
			}
			out[id] = getT(t, q, j.ID)
		}
	}
	return out
}

// batchResultOf decodes a callback's payload.
func batchResultOf(t testing.TB, j *Job) BatchResult {
	t.Helper()
	var r BatchResult
	if err := json.Unmarshal(j.Payload, &r); err != nil {
		t.Fatalf("callback payload %q: %v", j.Payload, err)
	}
	return r
}

func TestBatchCallback(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	ctx := context.Background()
	b, err := q.EnqueueBatchThen(ctx, []NewJob{{Queue: "w"}, {Queue: "w"}, {Queue: "w", Delay: time.Hour}},
		NewJob{Queue: "cb", Payload: []byte("ignored"), Priority: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Jobs) != 3 || b.ID != b.Jobs[0] {
		t.Fatalf("EnqueueBatchThen = %+v", b)
	}
	if p := getT(t, q, b.Jobs[1]).Batch; p == nil || p.ID != b.ID || p.Total != 3 || p.Finished != 0 {
		t.Fatalf("Get of a member: batch %+v", p)
	}
	l := leaseT(t, q, "w")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	l = leaseT(t, q, "w")
	if err := q.Fail(ctx, l.Token, Permanent(errors.New("no such user"))); err != nil {
		t.Fatal(err)
	}
	if bi, err := q.Batch(ctx, b.ID); err != nil || bi.Finished != 2 || bi.Completed != 1 || bi.Dead != 1 || bi.Done {
		t.Fatalf("Batch = %+v, %v", bi, err)
	}
	if len(callbacks(t, q)) != 0 {
		t.Fatal("callback before the last member finished")
	}
	last := q.log.LastIndex()
	if err := q.Cancel(ctx, b.Jobs[2]); err != nil {
		t.Fatal(err)
	}
	if n := q.log.LastIndex() - last; n != 1 {
		t.Fatalf("the last transition and the callback took %d entries, want 1", n)
	}
	cb := callbacks(t, q)[b.ID]
	if cb == nil || cb.Queue != "cb" || cb.Priority != 2 {
		t.Fatalf("callback %+v", cb)
	}
	want := BatchResult{Batch: b.ID, Jobs: []BatchJobResult{{ID: b.Jobs[0], Outcome: "completed"},
		{ID: b.Jobs[1], Outcome: "dead", Error: "no such user"}, {ID: b.Jobs[2], Outcome: "cancelled"}}}
	if got := batchResultOf(t, cb); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("callback payload %+v, want %+v", got, want)
	}
	if bi, err := q.Batch(ctx, b.ID); err != nil || !bi.Done || bi.Callback != cb.ID || bi.Total != 3 {
		t.Fatalf("Batch after the end = %+v, %v", bi, err)
	}
	if _, err := q.EnqueueBatchThen(ctx, []NewJob{{Key: "k"}}, NewJob{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a member with a key: %v", err)
	}
	if _, err := q.EnqueueBatchThen(ctx, []NewJob{{}}, NewJob{Key: "k"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a callback with a key: %v", err)
	}
}

// TestBatchCrash reopens crash images taken before and after the last
// member's transition, and one taken while the last member's last attempt
// ran (the lease voided at Open kills it): the callback exists exactly once
// in each, and once more never.
func TestBatchCrash(t *testing.T) {
	t.Parallel()
	mc := startClock()
	opts := &Options{Clock: mc, MaxAttempts: 1}
	q := openTest(t, t.TempDir(), opts)
	ctx := context.Background()
	b, err := q.EnqueueBatchThen(ctx, []NewJob{{Queue: "w"}, {Queue: "w"}}, NewJob{Queue: "cb"})
	if err != nil {
		t.Fatal(err)
	}
	l := leaseT(t, q, "w")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	l = leaseT(t, q, "w")
	running := crashImage(t, q)
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	done := crashImage(t, q)
	for _, tc := range []struct {
		name, dir string
		outcome   string
	}{{"while the last ran", running, "dead"}, {"after the last", done, "completed"}} {
		for range 2 { // the second reopen adds nothing
			q := openTest(t, tc.dir, opts)
			cbs := callbacks(t, q)
			if len(cbs) != 1 || cbs[b.ID] == nil {
				t.Fatalf("%s: callbacks %v", tc.name, cbs)
			}
			if r := batchResultOf(t, cbs[b.ID]); r.Jobs[1].Outcome != tc.outcome {
				t.Fatalf("%s: result %+v", tc.name, r)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBatchCompactReopen: a batch half done is carried through compaction
// (its members and the batch itself), a finished member is purged by
// retention meanwhile, and after a reopen the callback still comes, once,
// listing the purged member.
func TestBatchCompactReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 4096, CompactRatio: -1, KeyRetention: time.Minute}
	q := openTest(t, dir, opts)
	ctx := context.Background()
	b, err := q.EnqueueBatchThen(ctx, []NewJob{{Queue: "w"}, {Queue: "w"}, {Queue: "w"}}, NewJob{Queue: "cb", Payload: make([]byte, 100)})
	if err != nil {
		t.Fatal(err)
	}
	l := leaseT(t, q, "w")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	for range 40 {
		enqueueT(t, q, NewJob{Queue: "filler", Payload: make([]byte, 300)})
	}
	mc.Add(time.Hour)
	if st, err := q.Compact(ctx); err != nil || st.SegmentsRemoved == 0 || st.Purged == 0 {
		t.Fatalf("Compact = %+v, %v", st, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	if bi, err := q.Batch(ctx, b.ID); err != nil || bi.Total != 3 || bi.Finished != 1 {
		t.Fatalf("after compaction and reopen: %+v, %v", bi, err)
	}
	for range 2 {
		l := leaseT(t, q, "w")
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	r := batchResultOf(t, callbacks(t, q)[b.ID])
	if r.Jobs[0].Outcome != "purged" || r.Jobs[1].Outcome != "completed" || r.Jobs[2].Outcome != "completed" {
		t.Fatalf("result %+v", r)
	}
}

// TestBatchConcurrent runs producers enqueueing batches and workers
// leasing, completing (in batches), failing and requeueing dead members,
// with the background compactor on small segments and retention purging:
// every batch gets exactly one callback, whose result names each member's
// outcome as it ended, and a reopen finds the same callbacks.
func TestBatchConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if d := os.Getenv("WALQ_DEBUG_DIR"); d != "" {
		dir = d
	}
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, KeyRetention: time.Hour, MaxAttempts: 2,
		Backoff: Backoff{Base: time.Millisecond, Cap: time.Millisecond}}
	q := openTest(t, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	batches := map[uint64][]uint64{}
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				jobs := make([]NewJob, 1+(p+i)%4)
				for k := range jobs {
					jobs[k] = NewJob{Queue: "w", Payload: make([]byte, 50)}
				}
				b, err := q.EnqueueBatchThen(ctx, jobs, NewJob{Queue: "cb"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				batches[b.ID] = b.Jobs
				mu.Unlock()
			}
		}()
	}
	var workers sync.WaitGroup
	workers.Add(1)
	go func() { // compactions besides the background ones, which this little traffic seldom starts
		defer workers.Done()
		for ctx.Err() == nil {
			if _, err := q.Compact(ctx); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		}
	}()
	for w := range 3 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ls, err := q.TryLeaseN(ctx, "w", 1+w)
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				var cs []Completion
				for k, l := range ls {
					if (i+k)%3 == 0 {
						if err := q.Fail(context.Background(), l.Token, errors.New("boom")); err != nil {
							t.Error(err)
						}
						continue
					}
					cs = append(cs, Completion{Token: l.Token})
				}
				if len(cs) > 0 {
					if _, err := q.CompleteBatch(context.Background(), cs); err != nil {
						t.Error(err)
					}
				}
				if i%7 == 0 {
					// Listed, then requeued: another worker may have
					// requeued the same job in between.
					if _, err := q.RequeueDead(context.Background(), DeadFilter{Limit: 1}, RequeueOptions{}); err != nil && !errors.Is(err, ErrState) {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for range 100 {
		mc.Add(time.Millisecond)
	}
	cancel()
	workers.Wait()
	// Finish what is left (requeued jobs, backoffs). The background
	// compactor may hold some members reserved for a moment: Lease waits
	// for them (the deadline is for failure only).
	mc.Add(time.Second)
	for {
		st, err := q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if qs := st.Queues["w"]; qs.Ready+qs.Scheduled+qs.Leased == 0 {
			break
		}
		lctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := q.Lease(lctx, "w")
		stop()
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Complete(context.Background(), l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(q *Queue) {
		t.Helper()
		cbs := callbacks(t, q)
		if len(cbs) != len(batches) {
			for id, members := range batches {
				if cbs[id] == nil {
					bi, err := q.Batch(context.Background(), id)
					var states []string
					for _, m := range members {
						j, _ := q.Get(context.Background(), m)
						if j != nil {
							states = append(states, string(j.State))
						}
					}
					q.mu.Lock()
					run := q.batches[id]
					q.mu.Unlock()
					t.Logf("batch %d without callback: %+v %v; members %v; run %+v", id, bi, err, states, run)
				}
			}
			t.Fatalf("%d callbacks for %d batches", len(cbs), len(batches))
		}
		for id, members := range batches {
			r := batchResultOf(t, cbs[id])
			if len(r.Jobs) != len(members) {
				t.Fatalf("batch %d: result %+v for members %v", id, r, members)
			}
			for k, m := range r.Jobs {
				// A member requeued from the dead-letter queue after the
				// batch ended ran again; the result keeps its outcome at
				// the end.
				j := getT(t, q, members[k])
				requeued := slices.ContainsFunc(j.History, func(a Attempt) bool { return a.Outcome == "requeued" })
				if m.ID != members[k] || m.Outcome != string(j.State) && !(requeued && m.Outcome == "dead") {
					t.Fatalf("batch %d: member %d is %s, result says %+v", id, members[k], j.State, m)
				}
			}
		}
	}
	check(q)
	if st, err := q.Stats(context.Background()); err != nil || st.Log.FirstIndex <= 1 {
		t.Fatalf("no background compaction removed a segment: %+v, %v", st.Log, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, dir, opts))
}
