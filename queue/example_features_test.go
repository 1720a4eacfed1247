package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// A periodic job: a schedule registered once (again at every start is
// harmless) enqueues one job per tick, exactly once even across restarts.
// A mock clock stands in for time passing.
func ExampleQueue_Schedule() {
	dir, err := os.MkdirTemp("", "walq-periodic")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	mc := clock.NewMock()
	mc.Set(time.Date(2030, 1, 1, 2, 59, 0, 0, time.UTC))
	q, err := queue.Open(dir, &queue.Options{Clock: mc})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	err = q.Schedule(ctx, queue.Schedule{
		Name: "nightly-report",
		Cron: "0 3 * * *", // 03:00 UTC every day; or Every: time.Hour
		Job:  queue.NewJob{Queue: "reports", Payload: []byte("daily")},
		// Missed: queue.MissedSkip drops ticks missed while the app was down;
		// the default runs the missed period once.
	})
	if err != nil {
		panic(err)
	}

	mc.Add(time.Minute) // 03:00: the tick enqueues one job
	lease, err := q.Lease(ctx, "reports")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %s\n", lease.Job.Key, lease.Job.Payload)
	if err := q.Complete(ctx, lease.Token, nil); err != nil {
		panic(err)
	}

	ss, err := q.Schedules(ctx) // also in q.Stats and `walq schedules DIR`
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: last run %s (job %d), next %s\n", ss[0].Name,
		ss[0].LastRun.Format(time.Kitchen), ss[0].LastJob, ss[0].Next.Format(time.DateTime))
	// Output:
	// walq:periodic:nightly-report:1893466800: daily
	// nightly-report: last run 3:00AM (job 1), next 2030-01-02 03:00:00
}

// A rate limit: at most 2 jobs of the "sms" queue start in any 1-second
// window, for Lease, LeaseN and the worker runtime alike, across restarts.
func ExampleRateLimit() {
	dir, err := os.MkdirTemp("", "walq-ratelimit")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	mc := clock.NewMock()
	q, err := queue.Open(dir, &queue.Options{
		Clock:      mc,
		RateLimits: map[string]queue.RateLimit{"sms": {N: 2, Per: time.Second}},
	})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	for range 3 {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "sms"}); err != nil {
			panic(err)
		}
	}
	leases, err := q.TryLeaseN(ctx, "sms", 3) // Lease and LeaseN wait instead
	if err != nil {
		panic(err)
	}
	fmt.Println("started now:", len(leases))
	mc.Add(time.Second) // the window has passed
	leases, err = q.TryLeaseN(ctx, "sms", 3)
	if err != nil {
		panic(err)
	}
	fmt.Println("started a second later:", len(leases))
	// Output:
	// started now: 2
	// started a second later: 1
}

// Ordered groups: one customer's jobs run one at a time, in the order they
// were enqueued, while different customers' jobs run in parallel.
func ExampleNewJob_group() {
	dir, err := os.MkdirTemp("", "walq-groups")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, &queue.Options{Clock: clock.NewMock()})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	_, err = q.EnqueueBatch(ctx, []queue.NewJob{
		{Queue: "orders", Group: "customer-42", Payload: []byte("create order")},
		{Queue: "orders", Group: "customer-42", Payload: []byte("charge order")},
		{Queue: "orders", Group: "customer-7", Payload: []byte("create order")},
	})
	if err != nil {
		panic(err)
	}
	leases, err := q.TryLeaseN(ctx, "orders", 10) // one job per group
	if err != nil {
		panic(err)
	}
	for _, l := range leases {
		fmt.Printf("%s: %s\n", l.Job.Group, l.Job.Payload)
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			panic(err)
		}
	}
	next, err := q.TryLease(ctx, "orders") // customer-42's turn again
	if err != nil {
		panic(err)
	}
	fmt.Printf("then %s: %s\n", next.Job.Group, next.Job.Payload)
	// Output:
	// customer-42: create order
	// customer-7: create order
	// then customer-42: charge order
}

// A circuit breaker: after 3 consecutive failures the "payments" queue
// stops handing out leases for a minute, then lets one probe job through;
// its success closes the breaker.
func ExampleBreaker() {
	dir, err := os.MkdirTemp("", "walq-breaker")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	mc := clock.NewMock()
	q, err := queue.Open(dir, &queue.Options{
		Clock:    mc,
		Breakers: map[string]queue.Breaker{"payments": {Failures: 3, Cooldown: time.Minute}},
	})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	for range 5 {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "payments"}); err != nil {
			panic(err)
		}
	}
	for range 3 { // the provider is down
		lease, err := q.TryLease(ctx, "payments")
		if err != nil {
			panic(err)
		}
		if err := q.Fail(ctx, lease.Token, errors.New("503 Service Unavailable")); err != nil {
			panic(err)
		}
	}
	st, err := q.Stats(ctx)
	if err != nil {
		panic(err)
	}
	_, err = q.TryLease(ctx, "payments")
	fmt.Println(st.Queues["payments"].Breaker.State, errors.Is(err, queue.ErrNoJob))

	mc.Add(time.Minute) // the cool-down is over: one probe
	probe, err := q.TryLease(ctx, "payments")
	if err != nil {
		panic(err)
	}
	if err := q.Complete(ctx, probe.Token, nil); err != nil {
		panic(err)
	}
	st, err = q.Stats(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Queues["payments"].Breaker.State)
	// Output:
	// open true
	// closed
}

// A batch with a completion callback: when every image is resized (or
// dead), one "notify" job is enqueued, listing each one's outcome.
func ExampleQueue_EnqueueBatchThen() {
	dir, err := os.MkdirTemp("", "walq-batch")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, &queue.Options{Clock: clock.NewMock()})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	batch, err := q.EnqueueBatchThen(ctx, []queue.NewJob{
		{Queue: "resize", Payload: []byte("a.png")},
		{Queue: "resize", Payload: []byte("b.png")},
	}, queue.NewJob{Queue: "notify"})
	if err != nil {
		panic(err)
	}
	for range batch.Jobs {
		lease, err := q.TryLease(ctx, "resize")
		if err != nil {
			panic(err)
		}
		if err := q.Complete(ctx, lease.Token, nil); err != nil {
			panic(err)
		}
	}
	cb, err := q.TryLease(ctx, "notify") // enqueued with the last completion
	if err != nil {
		panic(err)
	}
	var res queue.BatchResult
	if err := json.Unmarshal(cb.Job.Payload, &res); err != nil {
		panic(err)
	}
	fmt.Printf("batch %d: %+v\n", res.Batch, res.Jobs)
	// Output:
	// batch 1: [{ID:1 Outcome:completed Error:} {ID:2 Outcome:completed Error:}]
}

// Progress: a long job reports how far it is; the latest report is durable
// and shows in Get, in events and in `walq show`. (In a worker handler,
// worker.ReportProgress(ctx, n, msg) does the same.)
func ExampleQueue_Progress() {
	dir, err := os.MkdirTemp("", "walq-progress")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, &queue.Options{Clock: clock.NewMock()})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	job, err := q.Enqueue(ctx, queue.NewJob{Queue: "import"})
	if err != nil {
		panic(err)
	}
	lease, err := q.Lease(ctx, "import")
	if err != nil {
		panic(err)
	}
	// One log entry per report: every few seconds, not every row.
	if err := q.Progress(ctx, lease.Token, 40, "imported 400 of 1000 rows"); err != nil {
		panic(err)
	}
	j, err := q.Get(ctx, job.ID)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d%%: %s\n", j.Progress, j.ProgressNote)
	// Output:
	// 40%: imported 400 of 1000 rows
}
