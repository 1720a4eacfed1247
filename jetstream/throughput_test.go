package jetstream

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// TestThroughput measures the workloads of BENCHMARKS.md on one server (R1)
// and on a 3-node cluster (R3), in one run. It runs only with
// WALQ_JS_THROUGHPUT=1 (without -race: go test -run TestThroughput -v).
func TestThroughput(t *testing.T) {
	if os.Getenv("WALQ_JS_THROUGHPUT") == "" {
		t.Skip("set WALQ_JS_THROUGHPUT=1 to measure")
	}
	for _, r := range []int{1, 3} {
		var url string
		if r == 1 {
			url = startServer(t).ClientURL()
		} else {
			url = startCluster(t).urls()
		}
		q, err := Open(context.Background(), connect(t, url), &Options{Replicas: r, Name: fmt.Sprint("TP", r)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rate := func(n int, d time.Duration) string { return fmt.Sprintf("%.0f jobs/s", float64(n)/d.Seconds()) }
		enqueue := func(producers, n int, queueName string) time.Duration {
			var wg sync.WaitGroup
			var next atomic.Int64
			start := time.Now()
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(n) {
						if _, err := q.Enqueue(ctx, queue.NewJob{Queue: queueName, Payload: make([]byte, 128)}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			return time.Since(start)
		}
		t.Logf("R%d W1 enqueue, 1 producer: %s", r, rate(1000, enqueue(1, 1000, "w1")))
		t.Logf("R%d W2 enqueue, 64 producers: %s", r, rate(10000, enqueue(64, 10000, "w2")))
		batch := make([]queue.NewJob, 1000)
		for i := range batch {
			batch[i] = queue.NewJob{Queue: "w3", Payload: make([]byte, 128)}
		}
		start := time.Now()
		for i := 0; i < 20; i++ {
			if _, err := q.EnqueueBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("R%d W3 batch enqueue (1,000 per batch): %s", r, rate(20000, time.Since(start)))

		const n = 5000
		enqueue(64, n, "w4")
		rt, err := worker.New(q, &worker.Options{Concurrency: 8})
		if err != nil {
			t.Fatal(err)
		}
		var done atomic.Int64
		all := make(chan struct{})
		rt.Handle("w4", func(ctx context.Context, j *queue.Job) ([]byte, error) {
			if done.Add(1) == n {
				close(all)
			}
			return nil, nil
		}, nil)
		start = time.Now()
		if err := rt.Start(ctx); err != nil {
			t.Fatal(err)
		}
		<-all
		t.Logf("R%d W4 lease + complete, 8 workers (worker runtime): %s", r, rate(n, time.Since(start)))
		rt.Stop(ctx)
	}
}
