package index

import (
	"math/rand/v2"
	"slices"
	"testing"

	wlog "github.com/walq/walq/log"
)

// TestJobsFrom checks that JobsFrom visits exactly the jobs with an ID at
// or above its start, in ID order, across page boundaries, purged pages and
// a range that starts above the first page.
func TestJobsFrom(t *testing.T) {
	t.Parallel()
	x := New()
	var pos Pos
	apply := func(r wlog.Record) {
		t.Helper()
		pos.Index++
		if err := x.Apply(&r, pos); err != nil {
			t.Fatal(err)
		}
	}
	const page = 1 << pageBits
	var ids []uint64
	for _, id := range []uint64{3 * page, 3*page + 1, 4*page - 1, 4 * page, 6*page + 5, 9 * page} {
		apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: 1, RunAt: 1, Queue: "q", MaxAttempts: 1})
		ids = append(ids, id)
	}
	// Purge a page's only job, so that the page is freed.
	apply(wlog.Record{Kind: wlog.KindCancelled, Job: 6*page + 5, At: 1})
	apply(wlog.Record{Kind: wlog.KindPurged, Job: 6*page + 5, At: 1})
	ids = slices.DeleteFunc(ids, func(id uint64) bool { return id == 6*page+5 })

	for _, from := range []uint64{0, 1, 3 * page, 3*page + 1, 3*page + 2, 4*page - 1, 4 * page, 5 * page, 6*page + 5, 9 * page, 9*page + 1, 20 * page} {
		var want []uint64
		for _, id := range ids {
			if id >= from {
				want = append(want, id)
			}
		}
		var got []uint64
		x.JobsFrom(from, func(j *Job) bool { got = append(got, j.ID); return true })
		if !slices.Equal(got, want) {
			t.Errorf("JobsFrom(%d) = %v, want %v", from, got, want)
		}
		// Stopping early stops.
		got = got[:0]
		x.JobsFrom(from, func(j *Job) bool { got = append(got, j.ID); return false })
		if len(want) > 0 && !slices.Equal(got, want[:1]) {
			t.Errorf("JobsFrom(%d) stopped at once = %v, want %v", from, got, want[:1])
		}
	}
}

// TestOldestReadyMatchesScan drives random enqueues, leases, failures,
// completions and clock moves (forward and back) and checks after each
// step that every queue's OldestReady equals a scan of its ready jobs.
func TestOldestReadyMatchesScan(t *testing.T) {
	t.Parallel()
	const t0 = int64(1_000_000)
	rng := rand.New(rand.NewPCG(1, 2))
	x := New()
	now := t0
	x.Promote(now)
	var pos Pos
	apply := func(r wlog.Record) {
		t.Helper()
		pos.Index++
		if err := x.Apply(&r, pos); err != nil {
			t.Fatal(err)
		}
	}
	var id uint64
	for step := range 5000 {
		switch op := rng.IntN(10); {
		case op < 4:
			id++
			runAt := now + rng.Int64N(200) - 100
			apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: now, RunAt: runAt, Priority: rng.Int64N(3),
				Queue: []string{"a", "b"}[rng.IntN(2)], MaxAttempts: 3})
		case op < 7:
			q := x.Queue([]string{"a", "b"}[rng.IntN(2)])
			if q == nil || q.Next() == nil {
				continue
			}
			j := q.Next()
			apply(wlog.Record{Kind: wlog.KindLeased, Job: j.ID, At: now, Attempt: int64(j.Attempt) + 1, Deadline: now + 1000})
			end := wlog.Record{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt)}
			if rng.IntN(2) == 0 && j.Attempt < j.MaxAttempts {
				end.Kind, end.RunAt, end.Error = wlog.KindFailed, now+rng.Int64N(50), "boom"
			}
			apply(end)
		default:
			now += rng.Int64N(60) - 20 // mostly forward, sometimes back
			x.Promote(now)
		}
		for _, q := range x.Queues() {
			var want int64
			found := false
			for _, j := range slices.Concat(q.ready.jobs, q.side.jobs) {
				if t := max(j.RunAt, j.Created); !found || t < want {
					want, found = t, true
				}
			}
			got, ok := q.OldestReady()
			if ok != found || got != want {
				t.Fatalf("step %d, queue %q: OldestReady = %d, %v; a scan says %d, %v", step, q.Name, got, ok, want, found)
			}
		}
		if step%100 == 0 {
			if err := x.Check(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
}
