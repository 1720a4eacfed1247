package queue

import (
	"context"
	"runtime"
	"testing"
)

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestJobsPageCostIndependentOfTotal checks that a page of Jobs costs what
// it returns: with 50,000 jobs, a page of 10 allocates a few KiB (it used
// to copy a pointer to every job first: 400 KiB). Not parallel: it reads
// the process's allocation counter.
func TestJobsPageCostIndependentOfTotal(t *testing.T) {
	q := openTest(t, t.TempDir(), &Options{Clock: startClock(), Durability: None, CompactRatio: -1})
	ctx := context.Background()
	const n = 50_000
	batch := make([]NewJob, 1000)
	for range n / len(batch) {
		if _, err := q.EnqueueBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []uint64{0, n / 2, n - 10} {
		var js []*Job
		var err error
		b := allocated(func() { js, err = q.Jobs(ctx, JobFilter{AfterID: after, Limit: 10}) })
		if err != nil {
			t.Fatal(err)
		}
		if len(js) != 10 || js[0].ID != after+1 || js[9].ID != after+10 {
			t.Fatalf("Jobs(AfterID %d, Limit 10): %d jobs from %d, want 10 from %d", after, len(js), js[0].ID, after+1)
		}
		if b > 32<<10 {
			t.Errorf("Jobs(AfterID %d, Limit 10) of %d jobs allocated %d bytes, want under 32 KiB", after, n, b)
		}
	}
}
