package index

import (
	"fmt"
	"testing"

	wlog "github.com/walq/walq/log"
)

// promoteWork returns how many queues and jobs one Promote(now) looks at.
func promoteWork(x *Index, now int64) int {
	before := x.work
	x.Promote(now)
	return x.work - before
}

// TestPromoteWorkIgnoresIdleQueues checks that Promote's cost follows the
// jobs that come due, not the number of queue names ever used: with many
// queues whose jobs are all finished or far in the future, a Promote looks
// at one queue; with k jobs due, at about k jobs and their queues.
func TestPromoteWorkIgnoresIdleQueues(t *testing.T) {
	t.Parallel()
	const t0 = int64(1_700_000_000_000_000_000)
	for _, names := range []int{1, 1_000, 100_000} {
		t.Run(fmt.Sprintf("names=%d", names), func(t *testing.T) {
			t.Parallel()
			x := New()
			x.Promote(t0)
			var pos Pos
			apply := func(r wlog.Record) {
				t.Helper()
				pos.Index++
				if err := x.Apply(&r, pos); err != nil {
					t.Fatal(err)
				}
			}
			id := uint64(0)
			for i := range names {
				// A finished job in every queue, and a job an hour
				// away in every tenth.
				id++
				apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: t0, RunAt: t0, Queue: fmt.Sprint("q", i), MaxAttempts: 1})
				apply(wlog.Record{Kind: wlog.KindCancelled, Job: id, At: t0})
				if i%10 == 0 {
					id++
					apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: t0, RunAt: t0 + 3600e9, Queue: fmt.Sprint("q", i), MaxAttempts: 1})
				}
			}
			for i := range 5 {
				id++
				apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: t0, RunAt: t0 + 10 + int64(i), Queue: fmt.Sprint("q", i%names), MaxAttempts: 1})
			}
			if w := promoteWork(x, t0+1); w > 1 {
				t.Errorf("Promote with nothing due looked at %d queues or jobs, want 1", w)
			}
			// 5 jobs due, in at most 5 queues: each job, each queue
			// once, and the first queue not due.
			if w := promoteWork(x, t0+20); w > 5+5+1 {
				t.Errorf("Promote with 5 jobs due looked at %d queues or jobs, want at most 11", w)
			}
			if w := promoteWork(x, t0+30); w > 1 {
				t.Errorf("Promote with nothing more due looked at %d queues or jobs, want 1", w)
			}
			if err := x.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
