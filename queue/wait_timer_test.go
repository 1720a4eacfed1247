package queue

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// armClock is a mock clock that reports every timer armed through it.
type armClock struct {
	*clock.Mock
	armed chan time.Duration
}

// Timer arms a mock timer and reports it.
func (c *armClock) Timer(d time.Duration) *clock.Timer {
	t := c.Mock.Timer(d)
	c.armed <- d
	return t
}

// TestWaitMemoryConstantOverExtensions waits on a job whose lease is
// extended 1,000 times, each time just before the deadline Wait sleeps
// until, and checks that Wait's memory does not grow with the extensions
// it outlives (it used to keep every timer until it returned: about 400
// bytes each). Not parallel: it reads the process's heap size.
func TestWaitMemoryConstantOverExtensions(t *testing.T) {
	mc := startClock()
	c := &armClock{Mock: mc, armed: make(chan time.Duration, 1)}
	const lease = time.Minute
	q := openTest(t, noBackgroundDir(t), &Options{Clock: c, Durability: None, LeaseDuration: lease, SegmentSize: 16 << 10})
	ctx := context.Background()
	id := enqueueT(t, q, NewJob{Payload: []byte("x")})
	l := leaseT(t, q, DefaultQueue)
	done := make(chan error, 1)
	go func() {
		_, err := q.Wait(ctx, id)
		done <- err
	}()
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const n, warm = 1000, 200
	var base uint64
	for i := range n {
		if i == warm {
			base = heap()
		}
		d := <-c.armed // Wait sleeps until the deadline, d from now
		if d <= 0 || d > lease {
			t.Fatalf("extension %d: Wait armed a timer for %v, want up to %v", i, d, lease)
		}
		if _, err := q.Extend(ctx, l.Token, d+time.Second); err != nil {
			t.Fatal(err)
		}
		mc.Add(d) // the old deadline: Wait wakes, and sleeps again
	}
	<-c.armed
	grown := int64(heap()) - int64(base)
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	t.Logf("the heap grew by %d bytes over %d extensions", grown, n-warm)
	if grown > 128<<10 {
		t.Errorf("the heap grew by %d bytes over %d extensions outlived by Wait, want under 128 KiB", grown, n-warm)
	}
}
