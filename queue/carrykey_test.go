package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestCarryReadsKeysUnderLock runs compaction, which restates keyed jobs,
// while other goroutines enqueue keyed jobs into the same named queue. A
// job's key lives in a map of its queue that enqueues change, so the carry
// must read it under the queue's lock; under -race a read outside it is
// reported here.
func TestCarryReadsKeysUnderLock(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), &Options{SegmentSize: 4 << 10})
	ctx := context.Background()
	for i := range 200 {
		enqueueT(t, q, NewJob{Queue: "q", Key: fmt.Sprintf("old-%d", i), Payload: make([]byte, 64)})
	}
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 150 {
				if _, err := q.Enqueue(ctx, NewJob{Queue: "q", Key: fmt.Sprintf("new-%d-%d", p, i), Payload: make([]byte, 64)}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		}()
	}
	for range 10 {
		if _, err := q.Compact(ctx); err != nil {
			t.Fatalf("Compact: %v", err)
		}
	}
	wg.Wait()
	for i := range 200 {
		j, err := q.GetByKey(ctx, fmt.Sprintf("old-%d", i))
		if err != nil || j.Key != fmt.Sprintf("old-%d", i) {
			t.Fatalf("GetByKey(old-%d) = %v, %v after compactions", i, j, err)
		}
	}
}
