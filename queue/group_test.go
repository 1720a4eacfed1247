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

// leaseIDs leases up to n jobs of the named queue and returns their IDs in
// ascending order.
func leaseIDs(t testing.TB, q *Queue, name string, n int) ([]uint64, map[uint64]Token) {
	t.Helper()
	ls := leaseN(t, q, name, n)
	ids := make([]uint64, len(ls))
	toks := map[uint64]Token{}
	for i, l := range ls {
		ids[i] = l.Job.ID
		toks[l.Job.ID] = l.Token
	}
	slices.Sort(ids)
	return ids, toks
}

func TestGroupOneAtATimeInOrder(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	ctx := context.Background()
	a1 := enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	a2 := enqueueT(t, q, NewJob{Queue: "q", Group: "a", Priority: 9}) // priority does not jump the group
	b1 := enqueueT(t, q, NewJob{Queue: "q", Group: "b"})
	free := enqueueT(t, q, NewJob{Queue: "q"})
	a3 := enqueueT(t, q, NewJob{Queue: "other", Group: "a"}) // a group spans named queues
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if qs := st.Queues["q"]; qs.Ready != 4 {
		t.Fatalf("Stats counts %d ready, want 4 (waiting group members included)", qs.Ready)
	}
	ids, toks := leaseIDs(t, q, "q", 10)
	if want := []uint64{a1, b1, free}; !slices.Equal(ids, want) {
		t.Fatalf("leased %v, want %v: one job per group", ids, want)
	}
	noLease(t, q, "other")
	if got := getT(t, q, a2).Group; got != "a" {
		t.Fatalf("Get: group %q", got)
	}
	if err := q.Complete(ctx, toks[a1], nil); err != nil {
		t.Fatal(err)
	}
	noLease(t, q, "other") // a2 is next, not a3
	l := leaseT(t, q, "q")
	if l.Job.ID != a2 {
		t.Fatalf("leased %d, want %d", l.Job.ID, a2)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if l := leaseT(t, q, "other"); l.Job.ID != a3 {
		t.Fatalf("leased %d, want %d", l.Job.ID, a3)
	}
}

// TestGroupRetryHoldsTurn: a failed job holds its group through its backoff
// and its retries; once it is dead the group moves on; a requeued dead job
// runs next (it keeps its place), after the job running meanwhile.
func TestGroupRetryHoldsTurn(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	ctx := context.Background()
	a1 := enqueueT(t, q, NewJob{Queue: "q", Group: "a", MaxAttempts: 2})
	a2 := enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	a3 := enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	l := leaseT(t, q, "q")
	if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	noLease(t, q, "q") // a1 backs off 1s; a2 waits
	mc.Add(time.Second)
	l = leaseT(t, q, "q")
	if l.Job.ID != a1 {
		t.Fatalf("leased %d after the backoff, want %d", l.Job.ID, a1)
	}
	if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil { // dead: the group moves on
		t.Fatal(err)
	}
	l = leaseT(t, q, "q")
	if l.Job.ID != a2 {
		t.Fatalf("leased %d after a dead job, want %d", l.Job.ID, a2)
	}
	if err := q.Requeue(ctx, []uint64{a1}, RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	noLease(t, q, "q") // a2 still holds the turn
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{a1, a3} {
		l := leaseT(t, q, "q")
		if l.Job.ID != want {
			t.Fatalf("leased %d, want %d", l.Job.ID, want)
		}
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupDelayAndCancel: a delayed first job holds the group until its
// run-at; cancelling it hands the turn on.
func TestGroupDelayAndCancel(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	a1 := enqueueT(t, q, NewJob{Queue: "q", Group: "a", Delay: time.Hour})
	a2 := enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	a3 := enqueueT(t, q, NewJob{Queue: "q", Group: "a", Delay: time.Hour})
	noLease(t, q, "q")
	mc.Add(time.Hour)
	if l := leaseT(t, q, "q"); l.Job.ID != a1 {
		t.Fatalf("leased %d, want %d", l.Job.ID, a1)
	}
	q2 := openTest(t, t.TempDir(), nil)
	b1 := enqueueT(t, q2, NewJob{Queue: "q", Group: "b", Delay: time.Hour})
	b2 := enqueueT(t, q2, NewJob{Queue: "q", Group: "b"})
	if err := q2.Cancel(context.Background(), b1); err != nil {
		t.Fatal(err)
	}
	if l := leaseT(t, q2, "q"); l.Job.ID != b2 {
		t.Fatalf("leased %d after cancelling the first, want %d", l.Job.ID, b2)
	}
	_, _ = a2, a3
}

// TestGroupReopenAndCompact leaves a group mid-way (one job leased, one
// failed and backing off in another group, members parked), compacts so
// that their records are carried, and reopens a crash image and the closed
// directory: the voided lease keeps the turn and the order holds.
func TestGroupReopenAndCompact(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 4096, CompactRatio: -1}
	q := openTest(t, dir, opts)
	ctx := context.Background()
	var a, b []uint64
	for range 4 {
		a = append(a, enqueueT(t, q, NewJob{Queue: "q", Group: "a", Payload: make([]byte, 300)}))
		b = append(b, enqueueT(t, q, NewJob{Queue: "q", Group: "b", Payload: make([]byte, 300)}))
	}
	ids, toks := leaseIDs(t, q, "q", 10)
	if !slices.Equal(ids, []uint64{a[0], b[0]}) {
		t.Fatalf("leased %v", ids)
	}
	if err := q.Complete(ctx, toks[a[0]], nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, toks[b[0]], errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	l := leaseT(t, q, "q")
	if l.Job.ID != a[1] {
		t.Fatalf("leased %d, want %d", l.Job.ID, a[1])
	}
	for range 30 { // push the group's records into old segments
		enqueueT(t, q, NewJob{Queue: "filler", Payload: make([]byte, 300)})
	}
	if st, err := q.Compact(ctx); err != nil || st.Carried == 0 || st.SegmentsRemoved == 0 {
		t.Fatalf("Compact: %+v, %v", st, err)
	}
	crash := crashImage(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{crash, dir} {
		mc := startClock()
		o := *opts
		o.Clock = mc
		q := openTest(t, d, &o)
		// a[1]'s voided lease keeps a's turn: it runs again at once, before
		// a[2]; b[0] still backs off.
		if j := getT(t, q, a[2]); j.Group != "a" || j.State != StateReady {
			t.Fatalf("a[2] after reopen: %+v", j)
		}
		if ids, _ := leaseIDs(t, q, "q", 10); !slices.Equal(ids, []uint64{a[1]}) {
			t.Fatalf("after reopen leased %v, want %v", ids, []uint64{a[1]})
		}
		mc.Add(time.Second)
		if ids, _ := leaseIDs(t, q, "q", 10); !slices.Equal(ids, []uint64{b[0]}) {
			t.Fatalf("after the backoff leased %v, want %v", ids, []uint64{b[0]})
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGroupConcurrent runs producers enqueueing into a few groups (alone,
// in batches, and as follow-ups of completions) and workers leasing,
// completing, failing and releasing, with the background compactor on
// small segments and the clock advancing: no two jobs of a group are ever
// leased at once, and each group's jobs finish in enqueue (ID) order. A
// reopen finds the same unfinished jobs.
func TestGroupConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, KeyRetention: time.Second, MaxAttempts: 3,
		Backoff: Backoff{Base: time.Millisecond, Cap: time.Millisecond}}
	q := openTest(t, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	groups := []string{"g0", "g1", "g2"}
	var mu sync.Mutex
	running := map[string]uint64{}    // group → job leased now
	finished := map[string][]uint64{} // group → jobs in the order they finished
	group := map[uint64]string{}
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40 && ctx.Err() == nil; i++ {
				g := groups[(p+i)%len(groups)]
				jobs := []NewJob{{Queue: "q", Group: g, Payload: make([]byte, 100)}}
				if i%4 == 0 {
					jobs = append(jobs, NewJob{Queue: "q", Group: groups[(p+i+1)%len(groups)]})
				}
				if _, err := q.EnqueueBatch(ctx, jobs); err != nil && ctx.Err() == nil {
					t.Error(err)
				}
			}
		}()
	}
	var workers sync.WaitGroup
	for w := range 3 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ls, err := q.TryLeaseN(ctx, "q", 1+w)
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				for _, l := range ls {
					if r, ok := running[l.Job.Group]; ok {
						t.Errorf("group %s: job %d leased while job %d runs", l.Job.Group, l.Job.ID, r)
					}
					running[l.Job.Group] = l.Job.ID
					group[l.Job.ID] = l.Job.Group
				}
				mu.Unlock()
				for k, l := range ls {
					// Clear the mark and note the finish first: the group's
					// next job can be leased only once this call's entry is
					// applied.
					op := (i + k) % 4
					mu.Lock()
					delete(running, l.Job.Group)
					if op >= 2 || op == 1 && l.Token.Attempt == 3 {
						finished[l.Job.Group] = append(finished[l.Job.Group], l.Job.ID)
					}
					mu.Unlock()
					var err error
					switch op {
					case 0:
						err = q.Release(context.Background(), l.Token)
					case 1:
						err = q.Fail(context.Background(), l.Token, errors.New("boom"))
					case 2:
						_, err = q.CompleteAndEnqueue(context.Background(), l.Token, nil,
							[]NewJob{{Queue: "q", Group: l.Job.Group}})
					default:
						err = q.Complete(context.Background(), l.Token, nil)
					}
					if err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for range 200 {
		mc.Add(time.Millisecond)
	}
	cancel()
	workers.Wait()
	for g, ids := range finished {
		if !slices.IsSorted(ids) {
			t.Errorf("group %s finished out of enqueue order: %v", g, ids)
		}
	}
	if len(finished) != len(groups) {
		t.Errorf("only groups %v finished jobs", finished)
	}
	want := fmt.Sprint(unfinished(t, q))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	if got := fmt.Sprint(unfinished(t, q)); got != want {
		t.Fatalf("unfinished jobs after reopen:\n%s\nwant\n%s", got, want)
	}
}

// unfinished lists the pending and leased jobs with their groups.
func unfinished(t testing.TB, q *Queue) []string {
	js, err := q.Jobs(context.Background(), JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range js {
		if j.State != StateCompleted && j.State != StateDead && j.State != StateCancelled {
			out = append(out, fmt.Sprintf("%d:%s", j.ID, j.Group))
		}
	}
	return out
}

// TestGroupWakesLease checks that a Lease blocked behind a group's running
// job returns the group's next job once the running one completes.
func TestGroupWakesLease(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	a2 := enqueueT(t, q, NewJob{Queue: "q", Group: "a"})
	l := leaseT(t, q, "q")
	got := make(chan *Lease, 1)
	go func() {
		l, err := q.Lease(context.Background(), "q")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	if err := q.Complete(context.Background(), l.Token, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-got:
		if l == nil || l.Job.ID != a2 {
			t.Fatalf("Lease returned %+v, want job %d", l, a2)
		}
	case <-time.After(10 * time.Second): // a failure deadline, not synchronisation
		t.Fatal("Lease still blocked 10s after the group's running job completed")
	}
}
