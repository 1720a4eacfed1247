package jetstream

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// TestClusterLeaderFailover runs producers and workers against an R3 stream
// on three in-process servers, shuts a follower and then the stream leader
// down in the middle and brings each back, and checks against a ledger of
// acknowledged calls that no acknowledged enqueue is lost, every job
// completes, and no job or key completes twice; then restarts the whole
// cluster and checks that every completion and key is still there.
func TestClusterLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func() *Queue {
		q, err := Open(ctx, connect(t, c.urls()), &Options{Replicas: 3, LeaseDuration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	prod, work := open(), open()

	const producers, perProducer, workers = 4, 150, 4
	var mu sync.Mutex
	acked := map[uint64]string{}  // enqueues acknowledged: job -> key
	completed := map[uint64]int{} // completions acknowledged per job
	var produced atomic.Int64
	var pwg sync.WaitGroup
	for p := 0; p < producers; p++ {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := 0; i < perProducer; i++ {
				key := fmt.Sprintf("p%d/%d", p, i)
				var e queue.Enqueued
				var err error
				for try := 0; try < 100; try++ { // retried through the failover, as a producer would
					if e, err = prod.Enqueue(ctx, queue.NewJob{Payload: []byte(key), Key: key}); err == nil {
						break
					}
					if try%20 == 0 {
						t.Logf("enqueue %s: try %d: %v", key, try, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
				if err != nil {
					t.Errorf("enqueue %s: %v", key, err)
					return
				}
				mu.Lock()
				if old, ok := acked[e.ID]; ok && old != key {
					t.Errorf("job %d acknowledged for keys %s and %s", e.ID, old, key)
				}
				acked[e.ID] = key
				mu.Unlock()
				produced.Add(1)
			}
		}()
	}
	wctx, wcancel := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for wctx.Err() == nil {
				ls, err := work.LeaseN(wctx, "", 16)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				for _, l := range ls {
					if err := work.Complete(ctx, l.Token, l.Job.Payload); err == nil {
						mu.Lock()
						completed[l.Job.ID]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	// Shut the stream leader down mid-load, then bring it back.
	waitProduced := func(n int64) {
		for produced.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d of %d enqueues acknowledged", produced.Load(), n)
			}
			time.Sleep(5 * time.Millisecond) // polling the producers' progress
		}
	}
	streamLeader := func() int {
		for i, s := range c.servers {
			if s != nil && s.Running() && s.JetStreamIsStreamLeader("$G", "WALQ") {
				return i
			}
		}
		t.Fatal("no stream leader")
		return -1
	}
	down := func(i int, what string) {
		c.servers[i].Shutdown()
		c.servers[i].WaitForShutdown()
		t.Logf("%s n%d shut down after %d enqueues", what, i, produced.Load())
	}
	total := int64(producers * perProducer)
	// A follower first, then the stream leader, each brought back.
	waitProduced(total / 6)
	follower := (streamLeader() + 1) % 3
	down(follower, "follower")
	waitProduced(2 * total / 6)
	c.start(t, follower)
	waitProduced(3 * total / 6)
	leader := streamLeader()
	down(leader, "stream leader")
	waitProduced(4 * total / 6)
	c.start(t, leader)
	t.Logf("n%d restarted", leader)
	pwg.Wait()

	// Every acknowledged job completes, once.
	for id, key := range acked {
		res, err := prod.Wait(ctx, id)
		if err != nil || string(res) != key {
			t.Fatalf("job %d (%s): Wait = %q, %v", id, key, res, err)
		}
	}
	wcancel()
	wwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != producers*perProducer {
		t.Fatalf("%d jobs acknowledged for %d keys", len(acked), producers*perProducer)
	}
	unacked := 0
	for id := range acked {
		switch completed[id] {
		case 0: // completed (Wait says so), but the Complete call failed: outcome unknown to its caller
			unacked++
		case 1:
		default:
			t.Errorf("job %d completed %d times", id, completed[id])
		}
	}
	t.Logf("%d completions whose call failed in the failover but landed", unacked)

	// Restart the whole cluster: every job is still complete, every key
	// still names its job.
	prod.Close()
	work.Close()
	for i := range c.servers {
		down(i, "whole cluster:")
	}
	for i := range c.servers {
		c.start(t, i)
	}
	c.waitLeader(t)
	var q *Queue
	for try := 0; q == nil; try++ { // the stream and buckets elect their leaders again
		octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
		q2, err := Open(octx, connect(t, c.urls()), &Options{Replicas: 3})
		ocancel()
		if err == nil {
			q = q2
			t.Cleanup(func() { q.Close() })
		} else if try == 10 {
			t.Fatalf("open after a whole-cluster restart: %v", err)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for id, key := range acked {
		var j *queue.Job
		var err error
		for try := 0; try < 100; try++ { // the cluster elects its leaders again
			if j, err = q.GetByKey(ctx, key); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || j.ID != id || j.State != queue.StateCompleted || string(j.Result) != key {
			t.Fatalf("after restart, key %s: %+v, %v; want job %d completed", key, j, err, id)
		}
	}
	for id, n := range completed {
		if _, ok := acked[id]; !ok {
			t.Errorf("job %d completed %d times but was never acknowledged", id, n)
		}
	}
}

// TestWorkerRuntime runs worker.New over the JetStream engine.
func TestWorkerRuntime(t *testing.T) {
	q := openR1(t, &Options{LeaseDuration: 2 * time.Second})
	ctx := ctxT(t)
	rt, err := worker.New(q, &worker.Options{Concurrency: 4, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int64
	rt.Handle("default", func(ctx context.Context, j *queue.Job) ([]byte, error) {
		if runs.Add(1)%5 == 0 && j.Attempt == 1 {
			return nil, queue.RetryAfter(10*time.Millisecond, fmt.Errorf("flaky"))
		}
		return append([]byte("done:"), j.Payload...), nil
	}, nil)
	if err := rt.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := 0; i < 50; i++ {
		e, err := q.Enqueue(ctx, queue.NewJob{Payload: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	for i, id := range ids {
		res, err := q.Wait(ctx, id)
		if err != nil || string(res) != fmt.Sprint("done:", i) {
			t.Fatalf("job %d: %q, %v", id, res, err)
		}
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
