package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// drainJobs is how many jobs each drain empties.
const drainJobs = 20000

// BenchmarkDrain measures how fast pre-enqueued 256-byte jobs are drained
// with no-op handlers, in Sync mode on the real clock: by the runtime
// (batched leases, grouped completions) against the baseline of workers
// that each Lease and Complete one job at a time (two fsync waits per job).
// Each iteration fills a fresh queue outside the timer, drains it, and
// checks that every job completed exactly once.
func BenchmarkDrain(b *testing.B) {
	for _, bc := range []struct {
		name  string
		drain func(b *testing.B, q *queue.Queue)
	}{
		{"mode=runtime/concurrency=8", drainRuntime(8, 0)},
		// The runtime's lease batches are bounded by Concurrency+Prefetch:
		// a deeper prefetch shows what larger batches buy.
		{"mode=runtime/concurrency=8/prefetch=248", drainRuntime(8, 248)},
		{"mode=plain-loop/workers=8", drainLoop(8)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				q := fillQueue(b)
				b.StartTimer()
				start := time.Now()
				bc.drain(b, q)
				elapsed += time.Since(start)
				b.StopTimer()
				checkDrained(b, q)
				if err := q.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(drainJobs*b.N)/elapsed.Seconds(), "jobs/s")
		})
	}
}

// fillQueue opens a queue in a fresh directory and enqueues drainJobs jobs.
func fillQueue(b *testing.B) *queue.Queue {
	q, err := queue.Open(b.TempDir(), &queue.Options{Durability: queue.Sync, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 256)
	const chunk = 1000
	for i := 0; i < drainJobs; i += chunk {
		batch := make([]queue.NewJob, min(chunk, drainJobs-i))
		for k := range batch {
			batch[k] = queue.NewJob{Queue: "bench", Payload: payload}
		}
		if _, err := q.EnqueueBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	return q
}

// checkDrained fails unless every job completed, each once.
func checkDrained(b *testing.B, q *queue.Queue) {
	st, err := q.Stats(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	qs := st.Queues["bench"]
	if qs.Completed != drainJobs || qs.Metrics.Completed != drainJobs || qs.Metrics.Failed != 0 {
		b.Fatalf("%d jobs completed (%d completions, %d failed attempts), want %d, each once",
			qs.Completed, qs.Metrics.Completed, qs.Metrics.Failed, drainJobs)
	}
}

// drainRuntime drains with the worker runtime (prefetch 0: the default);
// the drain ends when Stop has made the last completion durable.
func drainRuntime(concurrency, prefetch int) func(*testing.B, *queue.Queue) {
	return func(b *testing.B, q *queue.Queue) {
		rt, err := worker.New(q, &worker.Options{Concurrency: concurrency, Prefetch: prefetch, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		var handled atomic.Int64
		all := make(chan struct{})
		err = rt.Handle("bench", func(context.Context, *queue.Job) ([]byte, error) {
			if handled.Add(1) == drainJobs {
				close(all)
			}
			return nil, nil
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := rt.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		<-all
		if err := rt.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		if n := handled.Load(); n != drainJobs {
			b.Fatalf("handlers ran %d times for %d jobs", n, drainJobs)
		}
	}
}

// drainLoop drains with workers that each lease and complete one job at a
// time until none is ready.
func drainLoop(workers int) func(*testing.B, *queue.Queue) {
	return func(b *testing.B, q *queue.Queue) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					l, err := q.TryLease(ctx, "bench")
					if errors.Is(err, queue.ErrNoJob) {
						return
					}
					if err == nil {
						err = q.Complete(ctx, l.Token, nil)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
}
