package queue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// leaseN leases up to n jobs of the named queue without waiting.
func leaseN(t testing.TB, q *Queue, name string, n int) []*Lease {
	t.Helper()
	ls, err := q.TryLeaseN(context.Background(), name, n)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestRateLimitSlidingWindow(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), &Options{RateLimits: map[string]RateLimit{"api": {N: 3, Per: time.Minute}}})
	mc := mockOf(t, q)
	for range 10 {
		enqueueT(t, q, NewJob{Queue: "api"})
		enqueueT(t, q, NewJob{Queue: "free"})
	}
	if ls := leaseN(t, q, "api", 2); len(ls) != 2 { // two at 0s
		t.Fatalf("leased %d at 0s, want 2", len(ls))
	}
	mc.Add(30 * time.Second)
	if ls := leaseN(t, q, "api", 10); len(ls) != 1 { // one at 30s: the window is full
		t.Fatalf("leased %d at 30s, want 1", len(ls))
	}
	noLease(t, q, "api")
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if qs := st.Queues["api"]; qs.RateLimit != (RateLimit{N: 3, Per: time.Minute}) || qs.WindowStarts != 3 {
		t.Fatalf("Stats of the limited queue: limit %+v, %d starts in the window", qs.RateLimit, qs.WindowStarts)
	}
	if ls := leaseN(t, q, "free", 10); len(ls) != 10 {
		t.Fatalf("an unlimited queue leased %d of 10", len(ls))
	}
	mc.Add(30*time.Second - 1)
	noLease(t, q, "api")
	mc.Add(1) // 60s: the two starts at 0s leave the window
	if ls := leaseN(t, q, "api", 10); len(ls) != 2 {
		t.Fatalf("leased %d at 60s, want 2", len(ls))
	}
	mc.Add(30 * time.Second) // 90s: the start at 30s leaves
	if ls := leaseN(t, q, "api", 10); len(ls) != 1 {
		t.Fatalf("leased %d at 90s, want 1", len(ls))
	}
}

// TestRateLimitAcrossRestart leases up to the limit, then reopens a crash
// image and a cleanly closed copy: the window holds across both.
func TestRateLimitAcrossRestart(t *testing.T) {
	t.Parallel()
	mc := startClock()
	opts := &Options{Clock: mc, RateLimits: map[string]RateLimit{"api": {N: 2, Per: time.Minute}}}
	q := openTest(t, t.TempDir(), opts)
	ctx := context.Background()
	for range 6 {
		enqueueT(t, q, NewJob{Queue: "api"})
	}
	ls := leaseN(t, q, "api", 2)
	if err := q.Complete(ctx, ls[0].Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Release(ctx, ls[1].Token); err != nil { // a released lease still counted
		t.Fatal(err)
	}
	crash := crashImage(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(10 * time.Second)
	for _, dir := range []string{crash, q.Dir()} {
		q2 := openTest(t, dir, opts)
		noLease(t, q2, "api")
		if err := q2.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mc.Add(50 * time.Second)
	q2 := openTest(t, q.Dir(), opts)
	if ls := leaseN(t, q2, "api", 10); len(ls) != 2 {
		t.Fatalf("leased %d after the window, want 2", len(ls))
	}
}

// TestRateLimitLeaseWaits checks that a blocked Lease returns when a slot
// frees.
func TestRateLimitLeaseWaits(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), &Options{RateLimits: map[string]RateLimit{"api": {N: 1, Per: time.Second}}})
	mc := mockOf(t, q)
	enqueueT(t, q, NewJob{Queue: "api"})
	enqueueT(t, q, NewJob{Queue: "api"})
	leaseT(t, q, "api")
	got := make(chan *Lease, 1)
	go func() {
		l, err := q.Lease(context.Background(), "api")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case l := <-got:
		t.Fatalf("leased job %d within the window", l.Job.ID)
	default:
	}
	for l := (*Lease)(nil); l == nil; {
		mc.Add(100 * time.Millisecond) // the waiter's timer may be armed late: step until it fires
		select {
		case l = <-got:
			if at := mc.Now().Sub(epoch); at < time.Second {
				t.Fatalf("leased at %v, before the window passed", at)
			}
		default:
		}
	}
}

func TestRateLimitValidation(t *testing.T) {
	t.Parallel()
	for _, lims := range []map[string]RateLimit{
		{"api": {N: 0, Per: time.Second}},
		{"api": {N: 1}},
		{"api": {N: 1, Per: -time.Second}},
		{"bad name": {N: 1, Per: time.Second}},
	} {
		if _, err := Open(t.TempDir(), &Options{RateLimits: lims}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open with RateLimits %v = %v, want ErrInvalid", lims, err)
		}
	}
	lims := map[string]RateLimit{"": {N: 1, Per: time.Second}}
	q := openTest(t, t.TempDir(), &Options{RateLimits: lims})
	lims["x"] = RateLimit{N: 5, Per: time.Second}
	if _, ok := q.Options().RateLimits["x"]; ok {
		t.Fatal("Open kept the caller's map")
	}
	enqueueT(t, q, NewJob{})
	enqueueT(t, q, NewJob{})
	leaseT(t, q, "")
	noLease(t, q, DefaultQueue) // "" names the default queue
}

// TestRateLimitConcurrent has goroutines lease (one at a time and in
// batches), complete, release and fail jobs of a limited queue while the
// clock advances and the background compactor runs on small segments; at
// the end the lease times of every job (from the histories, which replay
// restores) never put more than N starts in any window, and some window
// held N.
func TestRateLimitConcurrent(t *testing.T) {
	t.Parallel()
	const n, per = 4, 10 * time.Second
	mc := startClock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, KeyRetention: time.Hour,
		RateLimits: map[string]RateLimit{"api": {N: n, Per: per}}})
	ctx, cancel := context.WithCancel(context.Background())
	for range 300 {
		enqueueT(t, q, NewJob{Queue: "api", Payload: make([]byte, 100)})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ls, err := q.TryLeaseN(ctx, "api", 1+g)
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				for _, l := range ls {
					var err error
					switch i % 3 {
					case 0:
						err = q.Complete(context.Background(), l.Token, nil)
					case 1:
						err = q.Release(context.Background(), l.Token)
					default:
						err = q.Fail(context.Background(), l.Token, errors.New("boom"))
					}
					if err != nil && !errors.Is(err, ErrLeaseLost) {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 120 {
		mc.Add(time.Second)
	}
	cancel()
	wg.Wait()
	var starts []int64
	js, err := q.Jobs(context.Background(), JobFilter{Queue: "api"})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range js {
		full := getT(t, q, j.ID)
		for _, a := range full.History {
			if a.Outcome != "requeued" {
				starts = append(starts, a.Started.UnixNano())
			}
		}
	}
	slices.Sort(starts)
	for i := n; i < len(starts); i++ {
		if d := time.Duration(starts[i] - starts[i-n]); d < per {
			t.Fatalf("%d starts within %v (start %d at %v)", n+1, d, i, time.Unix(0, starts[i]).Sub(epoch))
		}
	}
	full := false
	for i := n - 1; i < len(starts); i++ {
		full = full || time.Duration(starts[i]-starts[i-n+1]) < per
	}
	if !full {
		t.Fatalf("no window held %d starts (%d starts in all): the limit was never reached", n, len(starts))
	}
}
