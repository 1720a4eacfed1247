package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// The quick start: a producer enqueues a job, a worker leases and completes
// it, and the producer waits for the result. Its body is README.md's Quick
// start, as it is (TestREADMEBlocksAreExamples checks that).
func Example() {
	dir, err := os.MkdirTemp("", "walq-quickstart") // an app keeps one directory
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	q, err := queue.Open(dir, nil) // nil options: the defaults
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	// Producer: the key makes a retried enqueue harmless.
	job, err := q.Enqueue(ctx, queue.NewJob{
		Queue:   "email",
		Payload: []byte("welcome ada@example.com"),
		Key:     "welcome/ada",
	})
	if err != nil {
		panic(err)
	}

	// Worker.
	lease, err := q.Lease(ctx, "email") // blocks until a job is ready
	if err != nil {
		panic(err)
	}
	fmt.Printf("sending %q (attempt %d)\n", lease.Job.Payload, lease.Token.Attempt)
	if err := q.Complete(ctx, lease.Token, []byte("250 OK")); err != nil {
		panic(err)
	}

	// Producer again: wait for the outcome.
	result, err := q.Wait(ctx, job.ID)
	if err != nil {
		panic(err)
	}
	fmt.Printf("job %d: %s\n", job.ID, result)
	// Output:
	// sending "welcome ada@example.com" (attempt 1)
	// job 1: 250 OK
}

// A failed attempt is retried after the backoff delay: 1s after the first
// failure by default. A mock clock makes the example deterministic.
func Example_retry() {
	dir, err := os.MkdirTemp("", "walq-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	clk := clock.NewMock()
	clk.Set(time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC))
	q, err := queue.Open(dir, &queue.Options{Clock: clk})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	job, _ := q.Enqueue(ctx, queue.NewJob{Payload: []byte("charge order 42")})
	lease, _ := q.TryLease(ctx, "")
	q.Fail(ctx, lease.Token, errors.New("payment gateway timeout"))

	j, _ := q.Get(ctx, job.ID)
	fmt.Printf("attempt 1 failed: %s; next in %v\n", j.LastError, j.RunAt.Sub(clk.Now()))
	_, err = q.TryLease(ctx, "")
	fmt.Println("now:", err)

	clk.Add(time.Second)
	lease, _ = q.TryLease(ctx, "")
	q.Complete(ctx, lease.Token, nil)
	j, _ = q.Get(ctx, job.ID)
	fmt.Printf("attempt %d: %s\n", lease.Token.Attempt, j.State)
	// Output:
	// attempt 1 failed: payment gateway timeout; next in 1s
	// now: walq: no job ready
	// attempt 2: completed
}

// A permanent failure sends a job straight to the dead-letter queue, where
// an operator can inspect it and, once the cause is fixed, requeue it.
func Example_deadLetter() {
	dir, err := os.MkdirTemp("", "walq-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	job, _ := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte("to: nobody@")})
	lease, _ := q.Lease(ctx, "email")
	q.Fail(ctx, lease.Token, queue.Permanent(errors.New("invalid address")))

	_, err = q.Wait(ctx, job.ID)
	fmt.Println(errors.Is(err, queue.ErrDead), err)

	dead, _ := q.Dead(ctx, queue.DeadFilter{Queue: "email"})
	for _, j := range dead {
		fmt.Printf("dead: job %d in %s: %s\n", j.ID, j.Queue, j.LastError)
	}

	q.Requeue(ctx, []uint64{job.ID}, queue.RequeueOptions{Queue: "email-fixed"})
	lease, _ = q.Lease(ctx, "email-fixed")
	fmt.Printf("requeued: job %d, attempt %d\n", lease.Job.ID, lease.Token.Attempt)
	// Output:
	// true walq: job 1 is dead after 1 attempt(s): invalid address
	// dead: job 1 in email: invalid address
	// requeued: job 1, attempt 1
}

// A batch is atomic: after a crash either every job exists or none does. A
// key repeated in the batch, or already held, yields no new job.
func ExampleQueue_EnqueueBatch() {
	dir, err := os.MkdirTemp("", "walq-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	res, err := q.EnqueueBatch(ctx, []queue.NewJob{
		{Queue: "thumbs", Payload: []byte("a.jpg"), Key: "thumb/a.jpg"},
		{Queue: "thumbs", Payload: []byte("b.jpg"), Key: "thumb/b.jpg"},
		{Queue: "thumbs", Payload: []byte("a.jpg"), Key: "thumb/a.jpg"},
	})
	if err != nil {
		panic(err)
	}
	for _, r := range res {
		fmt.Printf("job %d duplicate=%v\n", r.ID, r.Duplicate)
	}
	// Output:
	// job 1 duplicate=false
	// job 2 duplicate=false
	// job 1 duplicate=true
}
