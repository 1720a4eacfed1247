package index

import (
	"slices"
	"testing"

	wlog "github.com/walq/walq/log"
	"pgregory.net/rapid"
)

// TestJobTableModel checks the paged job table against a map: IDs close
// together and far apart, IDs below the table's range (a carry of an old
// job), deletes that empty pages and move the range, and IDs set again
// after their delete.
func TestJobTableModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		var tb jobTable
		model := map[uint64]*Job{}
		var ids []uint64 // IDs ever set, to pick deletes and re-sets from
		// IDs a few pages apart, and a band 1<<20 above: the table keeps
		// a page pointer per 1024 IDs across its range, so that is as far
		// apart as dense IDs with a long-lived job between get.
		genID := rapid.OneOf(
			rapid.Uint64Range(1, 3000),
			rapid.Uint64Range(1<<20, 1<<20+5000),
		)
		pick := func(name string) uint64 {
			if len(ids) > 0 && rapid.Bool().Draw(rt, name+"-old") {
				return ids[rapid.IntRange(0, len(ids)-1).Draw(rt, name+"-i")]
			}
			return genID.Draw(rt, name)
		}
		steps := rapid.IntRange(1, 200).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 2).Draw(rt, "op") {
			case 0, 1:
				id := pick("set")
				j := &Job{ID: id}
				tb.set(j)
				model[id] = j
				ids = append(ids, id)
			case 2:
				id := pick("delete")
				tb.delete(id)
				delete(model, id)
			}
			if tb.len() != len(model) {
				rt.Fatalf("len %d, model %d", tb.len(), len(model))
			}
			for _, id := range ids {
				if got := tb.get(id); got != model[id] {
					rt.Fatalf("get(%d) = %v, model %v", id, got, model[id])
				}
			}
			want := make([]uint64, 0, len(model))
			for id := range model {
				want = append(want, id)
			}
			slices.Sort(want)
			var got []uint64
			tb.each(func(j *Job) bool { got = append(got, j.ID); return true })
			if !slices.Equal(got, want) {
				rt.Fatalf("each = %v, model %v", got, want)
			}
			if len(want) > 0 {
				from := want[rapid.IntRange(0, len(want)-1).Draw(rt, "from")]
				got = got[:0]
				tb.eachFrom(from, func(j *Job) bool { got = append(got, j.ID); return true })
				k, _ := slices.BinarySearch(want, from)
				if !slices.Equal(got, want[k:]) {
					rt.Fatalf("eachFrom(%d) = %v, model %v", from, got, want[k:])
				}
			}
			// Pages hold only live jobs' pages: an empty table holds none.
			if len(model) == 0 && len(tb.pages) != 0 {
				rt.Fatalf("empty table keeps %d pages", len(tb.pages))
			}
		}
	})
}

// TestHeapShrinks checks that a heap that empties gives its array back
// and stays a heap.
func TestHeapShrinks(t *testing.T) {
	t.Parallel()
	h := jobHeap{less: runAtLess}
	jobs := make([]*Job, 10000)
	for i := range jobs {
		jobs[i] = &Job{ID: uint64(i + 1), RunAt: int64((i * 7919) % 10000), pos: [2]int32{-1, -1}}
		h.push(jobs[i])
	}
	peak := cap(h.jobs)
	for _, j := range jobs[:9990] {
		h.remove(j)
		if err := h.check(); err != nil {
			t.Fatal(err)
		}
	}
	if h.Len() != 10 || cap(h.jobs) >= peak/4 || cap(h.jobs) > minShrink {
		t.Fatalf("after removing all but 10 of 10000: len %d cap %d (peak %d)", h.Len(), cap(h.jobs), peak)
	}
	var got []int64
	for h.Len() > 0 {
		j := h.peek()
		got = append(got, j.RunAt)
		h.remove(j)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("popped out of order: %v", got)
	}
}

// layoutIndex folds a mixed history: two queues, ready and scheduled jobs,
// priorities, keys, leases, completions, a purge and a carry.
func layoutIndex(t *testing.T, n int) *Index {
	t.Helper()
	x := New()
	x.Promote(1000)
	idx := uint64(0)
	apply := func(r wlog.Record) {
		t.Helper()
		idx++
		if err := x.Apply(&r, Pos{Index: idx}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= n; i++ {
		r := wlog.Record{Kind: wlog.KindEnqueued, Job: uint64(i), At: int64(i % 900), Queue: []string{"a", "b"}[i%2],
			Payload: []byte("p"), RunAt: int64(i % 1500), Priority: int64(i % 3), MaxAttempts: 3}
		if i%5 == 0 {
			r.Key = "k" + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune(i))
		}
		apply(r)
	}
	for i := 1; i <= n/4; i++ {
		j := x.Job(uint64(i))
		if j.State != Pending || j.RunAt > 1000 {
			continue
		}
		apply(wlog.Record{Kind: wlog.KindLeased, Job: j.ID, At: 1000, Attempt: 1, Deadline: 2000 + int64(i)})
		if i%2 == 0 {
			apply(wlog.Record{Kind: wlog.KindCompleted, Job: j.ID, At: 1001, Attempt: 1})
		}
		if i%8 == 0 {
			apply(wlog.Record{Kind: wlog.KindPurged, Job: j.ID, At: 1002})
		}
	}
	// A carry restates job n/2 at a later origin.
	if j := x.Job(uint64(n / 2)); j != nil {
		apply(wlog.Record{Kind: wlog.KindCarry, Job: j.ID, State: uint8(j.State), At: 1003, Created: j.Created,
			Queue: j.Queue.Name, Key: j.Key(), Payload: []byte("p"), RunAt: j.RunAt, Attempt: int64(j.Attempt),
			MaxAttempts: int64(j.MaxAttempts), Priority: int64(j.Priority), Deadline: j.Deadline(), History: j.History()})
	}
	return x
}

// TestTrim checks that Trim leaves every slice at its length and changes
// nothing observable: the invariants hold and leases come out in the same
// order as from an untrimmed twin.
func TestTrim(t *testing.T) {
	t.Parallel()
	x, twin := layoutIndex(t, 5000), layoutIndex(t, 5000)
	x.Trim()
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
	for _, q := range x.queues {
		for _, h := range []*jobHeap{&q.ready, &q.side, &q.ages, &q.scheduled} {
			if spare := cap(h.jobs) - len(h.jobs); spare > max(len(h.jobs)/32, 64) {
				t.Errorf("queue %s: heap of %d keeps %d spare slots", q.Name, len(h.jobs), spare)
			}
		}
	}
	for _, name := range []string{"a", "b"} {
		for _, ix := range []*Index{x, twin} {
			ix.Promote(2000)
		}
		q, tq := x.Queue(name), twin.Queue(name)
		for q.Next() != nil || tq.Next() != nil {
			j, tj := q.Next(), tq.Next()
			if j == nil || tj == nil || j.ID != tj.ID {
				t.Fatalf("queue %s: trimmed index leases %v, untrimmed %v", name, j, tj)
			}
			ot, ok := q.OldestReady()
			tt, tok := tq.OldestReady()
			if ot != tt || ok != tok {
				t.Fatalf("OldestReady %d %v, untrimmed %d %v", ot, ok, tt, tok)
			}
			x.Reserve(j)
			twin.Reserve(tj)
		}
	}
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCreatedOnDemand checks that the creation order exists only between
// Created and TidyCreated, and that when it is listed afresh it is the
// order the live jobs were created or restated in: the same positions a
// list kept from the start would give, stale entries left out.
func TestCreatedOnDemand(t *testing.T) {
	t.Parallel()
	x := layoutIndex(t, 2000)
	if x.hasCreated || x.created != nil {
		t.Fatalf("an index at rest keeps a creation order of %d", len(x.created))
	}
	n := x.Created()
	if n != x.Len() {
		t.Fatalf("Created = %d, want the %d live jobs", n, x.Len())
	}
	var prev *Job
	for i := 0; i < n; i++ {
		j := x.CreatedAt(i)
		if j == nil {
			t.Fatalf("position %d: nil in a fresh list", i)
		}
		if prev != nil && originCmp(prev, j) >= 0 {
			t.Fatalf("job %d (origin %v) listed after job %d (origin %v)", j.ID, j.Payload, prev.ID, prev.Payload)
		}
		prev = j
	}
	if last := x.CreatedAt(n - 1); last.ID != 1000 {
		t.Errorf("last in creation order is job %d, want the carried job 1000", last.ID)
	}
	// While listed, new jobs are appended.
	r := wlog.Record{Kind: wlog.KindEnqueued, Job: 5000, At: 1, Queue: "a", Payload: []byte("p"), MaxAttempts: 1}
	if err := x.Apply(&r, Pos{Index: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if x.Created() != n+1 || x.CreatedAt(n).ID != 5000 {
		t.Fatalf("job created while listed: Created %d, want %d", x.Created(), n+1)
	}
	if x.CreatedAt(n+1) != nil || x.CreatedAt(-1) != nil {
		t.Errorf("a position out of range returns a job")
	}
	x.TidyCreated()
	if x.hasCreated || x.created != nil {
		t.Fatalf("TidyCreated keeps the list")
	}
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadySplitModel checks the split ready heaps (plain jobs in one heap,
// the others in the side and ages heaps) against a model that scans every
// pending job: after each step of random enqueues (mixed priorities, run-at
// before or after creation), leases, failures, cancels, purges, reserves
// and clock moves both ways, Next must be the best ready job by priority,
// run-at and ID, OldestReady the earliest time a ready job became ready,
// and Ready the number of ready jobs.
func TestReadySplitModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(rt *rapid.T) {
		x := New()
		now := int64(1000)
		x.Promote(now)
		var pos Pos
		apply := func(r wlog.Record) {
			pos.Index++
			if err := x.Apply(&r, pos); err != nil {
				rt.Fatalf("apply %v: %v", r.Kind, err)
			}
		}
		var id uint64
		var live []uint64 // jobs not purged
		busy := map[uint64]bool{}
		pickLive := func(label string) *Job {
			if len(live) == 0 {
				return nil
			}
			return x.Job(live[rapid.IntRange(0, len(live)-1).Draw(rt, label)])
		}
		steps := rapid.IntRange(1, 150).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 7).Draw(rt, "op") {
			case 0, 1: // enqueue
				id++
				prio := int64(0)
				if rapid.IntRange(0, 3).Draw(rt, "mixed") == 0 {
					prio = rapid.Int64Range(-2, 2).Draw(rt, "prio")
				}
				at := now + rapid.Int64Range(-30, 30).Draw(rt, "at")
				runAt := at + rapid.Int64Range(-20, 40).Draw(rt, "delay")
				apply(wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: at, RunAt: runAt, Priority: prio,
					Queue: "q", MaxAttempts: 3})
				live = append(live, id)
			case 2: // lease the next job, then complete or fail it
				q := x.Queue("q")
				if q == nil || q.Next() == nil {
					continue
				}
				j := q.Next()
				apply(wlog.Record{Kind: wlog.KindLeased, Job: j.ID, At: now, Attempt: int64(j.Attempt) + 1, Deadline: now + 100})
				if rapid.Bool().Draw(rt, "fail") && j.Attempt < j.MaxAttempts {
					apply(wlog.Record{Kind: wlog.KindFailed, Job: j.ID, At: now, Attempt: int64(j.Attempt),
						RunAt: now + rapid.Int64Range(-5, 30).Draw(rt, "backoff")})
				} else {
					apply(wlog.Record{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt)})
				}
			case 3: // cancel a pending job, maybe purge it
				j := pickLive("cancel")
				if j == nil || j.State != Pending || busy[j.ID] {
					continue
				}
				apply(wlog.Record{Kind: wlog.KindCancelled, Job: j.ID, At: now})
				if rapid.Bool().Draw(rt, "purge") {
					apply(wlog.Record{Kind: wlog.KindPurged, Job: j.ID, At: now})
					live = slices.DeleteFunc(live, func(v uint64) bool { return v == j.ID })
				}
			case 4: // reserve or unreserve
				j := pickLive("reserve")
				if j == nil {
					continue
				}
				if busy[j.ID] {
					x.Unreserve(j)
					delete(busy, j.ID)
				} else {
					x.Reserve(j)
					busy[j.ID] = true
				}
			default: // move the clock, mostly forward
				now += rapid.Int64Range(-25, 40).Draw(rt, "tick")
				x.Promote(now)
			}
			// The model: scan every job.
			var best *Job
			var oldest int64
			ready := 0
			x.jobs.each(func(j *Job) bool {
				if j.State != Pending || busy[j.ID] || j.RunAt > now {
					return true
				}
				if best == nil || readyLess(j, best) {
					best = j
				}
				if t := max(j.RunAt, j.Created); ready == 0 || t < oldest {
					oldest = t
				}
				ready++
				return true
			})
			q := x.Queue("q")
			if q == nil {
				continue
			}
			if got := q.Next(); got != best {
				rt.Fatalf("step %d: Next = %v, model %v", s, got, best)
			}
			if got, ok := q.OldestReady(); ok != (ready > 0) || got != oldest {
				rt.Fatalf("step %d: OldestReady = %d %v, model %d %v", s, got, ok, oldest, ready > 0)
			}
			if q.Ready() != ready {
				rt.Fatalf("step %d: Ready = %d, model %d", s, q.Ready(), ready)
			}
			if err := x.Check(); err != nil {
				rt.Fatalf("step %d: %v", s, err)
			}
		}
	})
}

// TestKeyFollowsJob checks that a job's key, kept by its queue, moves with
// the job when a requeue names another queue, is restated by a carry, and
// goes when the job is purged.
func TestKeyFollowsJob(t *testing.T) {
	t.Parallel()
	x := New()
	x.Promote(100)
	var pos Pos
	apply := func(r wlog.Record) {
		t.Helper()
		pos.Index++
		if err := x.Apply(&r, pos); err != nil {
			t.Fatal(err)
		}
		if err := x.Check(); err != nil {
			t.Fatal(err)
		}
	}
	apply(wlog.Record{Kind: wlog.KindEnqueued, Job: 1, At: 1, RunAt: 1, Queue: "a", Key: "k1", MaxAttempts: 1})
	apply(wlog.Record{Kind: wlog.KindEnqueued, Job: 2, At: 1, RunAt: 1, Queue: "a", MaxAttempts: 1})
	j := x.Job(1)
	if j.Key() != "k1" || x.Job(2).Key() != "" || j.X != nil {
		t.Fatalf("keys %q %q, extra %v: want k1, none, no extra", j.Key(), x.Job(2).Key(), j.X)
	}
	apply(wlog.Record{Kind: wlog.KindLeased, Job: 1, At: 2, Attempt: 1, Deadline: 50})
	apply(wlog.Record{Kind: wlog.KindDead, Job: 1, At: 3, Attempt: 1})
	apply(wlog.Record{Kind: wlog.KindRequeued, Job: 1, At: 4, RunAt: 4, Queue: "b"})
	if j.Key() != "k1" || x.Key("k1") != j || len(x.Queue("a").keyed) != 0 || len(x.Queue("b").keyed) != 1 {
		t.Fatalf("after requeue to b: key %q, holder %v, keyed a %d b %d", j.Key(), x.Key("k1"), len(x.Queue("a").keyed), len(x.Queue("b").keyed))
	}
	apply(wlog.Record{Kind: wlog.KindCarry, Job: 1, State: uint8(Pending), At: 5, Created: 1, Queue: "a", Key: "k1",
		RunAt: 4, MaxAttempts: 1})
	c := x.Job(1)
	if c == j || c.Key() != "k1" || j.Key() != "" || x.Key("k1") != c || len(x.Queue("b").keyed) != 0 {
		t.Fatalf("after carry to a: key %q (replaced job %q), holder %v", c.Key(), j.Key(), x.Key("k1"))
	}
	apply(wlog.Record{Kind: wlog.KindCancelled, Job: 1, At: 6})
	apply(wlog.Record{Kind: wlog.KindPurged, Job: 1, At: 7})
	if c.Key() != "" || x.Key("k1") != nil || len(x.Queue("a").keyed) != 0 {
		t.Fatalf("after purge: key %q, holder %v, keyed %d", c.Key(), x.Key("k1"), len(x.Queue("a").keyed))
	}
}
