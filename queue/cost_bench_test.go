package queue

import (
	"context"
	"fmt"
	"testing"
)

// Benchmarks of costs that must not grow with what a call does not touch:
// queue names ever used, jobs a listing does not return, a job's attempts.
// They run in Durability None so that they measure the engine, not fsync.
// Run: go test -run '^$' -bench Cost ./queue/

// openCost opens a queue for a cost benchmark; it lives as long as b, so
// that sub-benchmarks can share what took long to set up.
func openCost(b *testing.B) *Queue {
	b.Helper()
	q, err := Open(b.TempDir(), &Options{Durability: None, CompactRatio: -1,
		Logger: openTestLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { q.Close() })
	return q
}

// useNames makes the queue know n queue names, none of which keeps a
// pending job: each gets a job that is then cancelled.
func useNames(b *testing.B, q *Queue, n int) {
	b.Helper()
	ctx := context.Background()
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		jobs := make([]NewJob, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			jobs = append(jobs, NewJob{Queue: fmt.Sprint("name-", i)})
		}
		res, err := q.EnqueueBatch(ctx, jobs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if err := q.Cancel(ctx, r.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCostLeaseNames measures one enqueue, lease and completion on
// one queue while the queue knows names other queue names, all idle.
// names=1 is the baseline.
func BenchmarkCostLeaseNames(b *testing.B) {
	ctx := context.Background()
	for _, names := range []int{1, 10_000, 100_000} {
		var q *Queue
		parent := b
		b.Run(fmt.Sprintf("names=%d", names), func(b *testing.B) {
			if q == nil { // once, for every b.N
				q = openCost(parent)
				useNames(b, q, names-1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := q.Enqueue(ctx, NewJob{Queue: "work"}); err != nil {
					b.Fatal(err)
				}
				l, err := q.TryLease(ctx, "work")
				if err != nil {
					b.Fatal(err)
				}
				if err := q.Complete(ctx, l.Token, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillReady enqueues n ready jobs in queue "work".
func fillReady(b *testing.B, q *Queue, n int) {
	b.Helper()
	ctx := context.Background()
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		jobs := make([]NewJob, min(batch, n-lo))
		for i := range jobs {
			jobs[i] = NewJob{Queue: "work", Payload: []byte("p")}
		}
		if _, err := q.EnqueueBatch(ctx, jobs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCostInspect measures a page of Jobs (10 jobs from the middle of
// the ID range) and Stats (whose OldestReady needs the oldest ready job)
// with jobs ready jobs in one queue. jobs=1000 is the baseline.
func BenchmarkCostInspect(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1_000, 200_000} {
		var q *Queue
		parent := b
		setup := func(b *testing.B) {
			if q == nil {
				q = openCost(parent)
				fillReady(b, q, n)
			}
			b.ReportAllocs()
			b.ResetTimer()
		}
		b.Run(fmt.Sprintf("op=jobs-page/jobs=%d", n), func(b *testing.B) {
			setup(b)
			for range b.N {
				js, err := q.Jobs(ctx, JobFilter{AfterID: uint64(n / 2), Limit: 10})
				if err != nil || len(js) != 10 {
					b.Fatal(len(js), err)
				}
			}
		})
		b.Run(fmt.Sprintf("op=stats/jobs=%d", n), func(b *testing.B) {
			setup(b)
			for range b.N {
				st, err := q.Stats(ctx)
				if err != nil || st.Queues["work"].Ready != n {
					b.Fatal(st.Queues["work"].Ready, err)
				}
			}
		})
	}
}

// snooze leases the only job of queue "snooze" and releases it.
func snooze(b *testing.B, q *Queue) {
	ctx := context.Background()
	l, err := q.TryLease(ctx, "snooze")
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Release(ctx, l.Token); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCostSnooze measures a lease and a release (a snooze) of a job
// that was snoozed snoozes times before, and a Get of it. snoozes=0 is the
// baseline.
func BenchmarkCostSnooze(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{0, 10_000, 50_000} {
		var q *Queue
		var id uint64
		parent := b
		setup := func(b *testing.B) {
			if q == nil {
				q = openCost(parent)
				r, err := q.Enqueue(ctx, NewJob{Queue: "snooze"})
				if err != nil {
					b.Fatal(err)
				}
				id = r.ID
				for range n {
					snooze(b, q)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
		}
		b.Run(fmt.Sprintf("op=get/snoozes=%d", n), func(b *testing.B) {
			setup(b)
			for range b.N {
				if _, err := q.Get(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("op=lease-release/snoozes=%d", n), func(b *testing.B) {
			setup(b)
			for range b.N {
				snooze(b, q)
			}
		})
	}
}
