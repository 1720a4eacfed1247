package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 4096, CompactRatio: -1}
	q := openTest(t, dir, opts)
	ctx := context.Background()
	sub := q.Subscribe(100)
	id := enqueueT(t, q, NewJob{Queue: "p"})
	l := leaseT(t, q, "p")
	last := q.log.LastIndex()
	if err := q.Progress(ctx, l.Token, 40, "resized 40 of 100"); err != nil {
		t.Fatal(err)
	}
	if n := q.log.LastIndex() - last; n != 1 {
		t.Fatalf("a report took %d entries", n)
	}
	if j := getT(t, q, id); j.Progress != 40 || j.ProgressNote != "resized 40 of 100" {
		t.Fatalf("Get: progress %d %q", j.Progress, j.ProgressNote)
	}
	found := false
	for len(sub.C) > 0 {
		if ev := <-sub.C; ev.Kind == EventProgress && ev.Job == id && ev.Progress == 40 && ev.Note == "resized 40 of 100" {
			found = true
		}
	}
	if !found {
		t.Fatal("no progress event")
	}
	if err := q.Progress(ctx, l.Token, 1, strings.Repeat("x", 257)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a long message: %v", err)
	}
	if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	if err := q.Progress(ctx, l.Token, 50, ""); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("a report after the attempt ended: %v", err)
	}
	if j := getT(t, q, id); j.Progress != 40 {
		t.Fatalf("the report did not outlive the attempt: %d", j.Progress)
	}
	crash := crashImage(t, q)
	for range 30 { // push the report into old segments, then compact
		enqueueT(t, q, NewJob{Queue: "filler", Payload: make([]byte, 300)})
	}
	if st, err := q.Compact(ctx); err != nil || st.SegmentsRemoved == 0 {
		t.Fatalf("Compact = %+v, %v", st, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{crash, dir} {
		q := openTest(t, d, opts)
		if j := getT(t, q, id); j.Progress != 40 || j.ProgressNote != "resized 40 of 100" {
			t.Fatalf("%s after reopen: progress %d %q", d, j.Progress, j.ProgressNote)
		}
	}
}

// TestProgressConcurrent has workers report progress on their leases,
// complete and fail them, while the background compactor runs on small
// segments: each job ends with the last report its handler made, before
// and after a reopen.
func TestProgressConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, MaxAttempts: 1000}
	q := openTest(t, dir, opts)
	for range 60 {
		enqueueT(t, q, NewJob{Queue: "p", Payload: make([]byte, 100)})
	}
	var mu sync.Mutex
	want := map[uint64]string{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	compacted := make(chan int)
	go func() { // compactions besides the background ones
		n := 0
		for {
			select {
			case <-stop:
				compacted <- n
				return
			default:
			}
			st, err := q.Compact(context.Background())
			if err != nil {
				t.Error(err)
			}
			n += st.Carried
		}
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				l, err := q.TryLease(context.Background(), "p")
				if errors.Is(err, ErrNoJob) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				for k := range 1 + (w+i)%4 {
					note := fmt.Sprintf("worker %d step %d attempt %d", w, k, l.Token.Attempt)
					if err := q.Progress(context.Background(), l.Token, int64(k), note); err != nil {
						t.Error(err)
					}
					mu.Lock()
					want[l.Job.ID] = note
					mu.Unlock()
				}
				if (w+i)%3 == 0 {
					err = q.Fail(context.Background(), l.Token, RetryAfter(0, errors.New("again")))
				} else {
					err = q.Complete(context.Background(), l.Token, nil)
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-compacted; n == 0 {
		t.Fatal("no compaction carried a job")
	}
	check := func(q *Queue) {
		t.Helper()
		for id, note := range want {
			if j := getT(t, q, id); j.ProgressNote != note {
				t.Fatalf("job %d: progress %q, want the last report %q", id, j.ProgressNote, note)
			}
		}
	}
	check(q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(time.Second)
	check(openTest(t, dir, opts))
}
