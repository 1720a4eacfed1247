package queue_test

import (
	"sync"
	"testing"

	"github.com/walq/walq/queue"
)

// TestBroadcaster checks the event fan-out another engine builds Subscribe
// on: every subscription gets every event in order, a full buffer drops
// and counts instead of blocking, Close closes every C (and later
// subscriptions at once), and publishing races with subscribing and
// closing without trouble.
func TestBroadcaster(t *testing.T) {
	t.Parallel()
	var b queue.Broadcaster
	fast, slow := b.Subscribe(8), b.Subscribe(1)
	for i := range 3 {
		b.Publish(queue.Event{Kind: queue.EventEnqueued, Job: uint64(i + 1)})
	}
	for i := range 3 {
		if ev := <-fast.C; ev.Job != uint64(i+1) {
			t.Fatalf("fast subscriber got job %d, want %d", ev.Job, i+1)
		}
	}
	if ev := <-slow.C; ev.Job != 1 || slow.Dropped() != 2 {
		t.Fatalf("slow subscriber got job %d, dropped %d; want job 1, 2 dropped", ev.Job, slow.Dropped())
	}
	slow.Close()
	slow.Close()
	if _, ok := <-slow.C; ok {
		t.Fatal("closed subscription still delivers")
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Publish(queue.Event{Kind: queue.EventLeased})
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				b.Subscribe(1).Close()
			}
		}()
	}
	wg.Wait()

	b.Close()
	b.Close()
	for range fast.C {
	}
	if _, ok := <-b.Subscribe(1).C; ok {
		t.Fatal("subscription after Close is open")
	}
	b.Publish(queue.Event{Kind: queue.EventEnqueued}) // no subscriber left: nothing happens
}
