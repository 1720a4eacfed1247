package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestRateLimitedQueue checks that the runtime obeys a queue's rate limit:
// it runs N jobs, then waits (on a timer at the end of the window) with
// jobs ready and handlers free, and runs the next N when the window passes.
func TestRateLimitedQueue(t *testing.T) {
	t.Parallel()
	q, clk := openQueue(t, &queue.Options{RateLimits: map[string]queue.RateLimit{"api": {N: 2, Per: time.Minute}}})
	for range 5 {
		enqueue(t, q, queue.NewJob{Queue: "api"})
	}
	started := make(chan uint64, 5)
	startRuntime(t, q, &Options{Concurrency: 4}, map[string]Handler{
		"api": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			started <- job.ID
			return nil, nil
		},
	})
	for i := range 2 {
		if _, err := waitResult(t, q, receive(t, started, "job of the first window")); err != nil {
			t.Fatal(i, err)
		}
	}
	// The fetcher sleeps until the earliest of the lease deadlines it saw
	// (30s) and the end of the window (1m); at 30s it finds the window
	// still full and sleeps until 1m.
	clk.waitFor(t, "fetcher asleep", func() bool {
		return slices.ContainsFunc(clk.timers, func(at time.Time) bool {
			return at.Equal(epoch.Add(30*time.Second)) || at.Equal(epoch.Add(time.Minute))
		})
	})
	clk.Add(30 * time.Second)
	clk.waitTimer(t, epoch.Add(time.Minute))
	select {
	case id := <-started:
		t.Fatalf("job %d started within the window", id)
	default:
	}
	clk.Add(30 * time.Second)
	receive(t, started, "third job")
	receive(t, started, "fourth job")
}
