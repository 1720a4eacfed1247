package index

import "fmt"

// Check verifies the index's internal invariants: counts agree with job
// states, every job sits in the heap its state calls for, heap order holds,
// and keys point at their jobs. It is for tests and `walq check`; it is
// O(jobs).
func (x *Index) Check() error {
	counts := map[*Queue]*[numStates]int{}
	for _, q := range x.queues {
		counts[q] = new([numStates]int)
		if q.ages.Len() != q.side.Len() {
			return fmt.Errorf("queue %q: %d jobs by age, %d on the side", q.Name, q.ages.Len(), q.side.Len())
		}
		for _, h := range []*jobHeap{&q.ready, &q.side, &q.ages, &q.scheduled} {
			if err := h.check(); err != nil {
				return fmt.Errorf("queue %q: %w", q.Name, err)
			}
		}
	}
	if err := x.checkDue(); err != nil {
		return err
	}
	if err := x.leased.check(); err != nil {
		return fmt.Errorf("leased: %w", err)
	}
	if err := x.finished.check(); err != nil {
		return fmt.Errorf("finished: %w", err)
	}
	var err error
	grouped := 0
	x.jobs.each(func(j *Job) bool {
		if j.grouped() && member(j.State) {
			grouped++
		}
		err = x.checkJob(j, counts)
		return err == nil
	})
	if err != nil {
		return err
	}
	for i, j := range x.reserved {
		if int(j.pos[slotReserved]) != i || !j.Busy {
			return fmt.Errorf("reserved job %d at %d: position %d, busy %v", j.ID, i, j.pos[slotReserved], j.Busy)
		}
	}
	for _, q := range x.queues {
		for j, k := range q.keyed {
			if x.jobs.get(j.ID) != j || j.Queue != q || x.keys[k] != j {
				return fmt.Errorf("queue %q: key %q of job %d that is gone, elsewhere or not its holder", q.Name, k, j.ID)
			}
		}
	}
	for k, j := range x.keys {
		if x.jobs.get(j.ID) != j || j.Key() != k {
			return fmt.Errorf("key %q points at a stale job %d", k, j.ID)
		}
	}
	for q, c := range counts {
		if *c != q.counts {
			return fmt.Errorf("queue %q: counts %v, jobs say %v", q.Name, q.counts, *c)
		}
	}
	return x.checkGroups(grouped)
}

// checkDue checks that the due heap holds exactly the queues with scheduled
// jobs, in order, and that readyMax bounds every ready job's RunAt.
func (x *Index) checkDue() error {
	for i, q := range x.due.qs {
		if int(q.due) != i {
			return fmt.Errorf("due heap: queue %q at %d thinks it is at %d", q.Name, i, q.due)
		}
		if i > 0 && dueLess(q, x.due.qs[(i-1)/2]) {
			return fmt.Errorf("due heap: order broken at %d (queue %q)", i, q.Name)
		}
	}
	for _, q := range x.queues {
		if in := q.due >= 0; in != (q.scheduled.Len() > 0) || (in && x.due.qs[q.due] != q) {
			return fmt.Errorf("queue %q with %d scheduled jobs: due heap position %d", q.Name, q.scheduled.Len(), q.due)
		}
		for _, j := range q.side.jobs {
			if i := j.pos[1]; i < 0 || int(i) >= q.ages.Len() || q.ages.jobs[i] != j {
				return fmt.Errorf("job %d: on the side but not in its queue's ages heap", j.ID)
			}
			if j.where != inReadySide {
				return fmt.Errorf("job %d: on the side, marked %d", j.ID, j.where)
			}
		}
		for _, j := range q.ready.jobs {
			if j.Priority != q.plain || j.Created > j.RunAt {
				return fmt.Errorf("job %d (priority %d, created %d, run-at %d): in the ready heap of plain priority %d",
					j.ID, j.Priority, j.Created, j.RunAt, q.plain)
			}
			if j.pos[1] != -1 || j.where != inReady {
				return fmt.Errorf("job %d: in the ready heap, ages position %d, marked %d", j.ID, j.pos[1], j.where)
			}
		}
		for _, h := range []*jobHeap{&q.ready, &q.side} {
			for _, j := range h.jobs {
				if j.RunAt > x.readyMax {
					return fmt.Errorf("job %d: ready with run-at %d above the bound %d", j.ID, j.RunAt, x.readyMax)
				}
			}
		}
	}
	return nil
}

func (h *jobHeap) check() error {
	for i, j := range h.jobs {
		if int(j.pos[h.slot]) != i {
			return fmt.Errorf("job %d at %d thinks it is at %d", j.ID, i, j.pos[h.slot])
		}
		if i > 0 && h.less(j, h.jobs[(i-1)/2]) {
			return fmt.Errorf("heap order broken at %d (job %d)", i, j.ID)
		}
	}
	return nil
}

// checkJob checks one job and counts it.
func (x *Index) checkJob(j *Job, counts map[*Queue]*[numStates]int) error {
	id := j.ID
	if !j.State.Valid() {
		return fmt.Errorf("job %d: invalid state %d", id, j.State)
	}
	if x.queues[j.Queue.Name] != j.Queue {
		return fmt.Errorf("job %d: unknown queue %q", id, j.Queue.Name)
	}
	counts[j.Queue][j.State]++
	if id >= x.nextID {
		return fmt.Errorf("job %d not below next ID %d", id, x.nextID)
	}
	if k := j.Key(); k != "" && x.keys[k] != j {
		return fmt.Errorf("job %d: key %q points elsewhere", id, k)
	}
	if j.Key() != "" && j.ReleasedKey() != "" {
		return fmt.Errorf("job %d: holds key %q and released key %q", id, j.Key(), j.ReleasedKey())
	}
	want := inNone
	switch {
	case j.State == Leased && !j.Busy:
		want = inLeased
	case (j.State == Completed || j.State == Cancelled) && !j.Busy:
		want = inFinished
	case j.State == Pending && !j.Busy && x.parked(j):
		want = inNone // waits for its group's turn
	case j.State == Pending && !j.Busy && j.RunAt <= x.now:
		want = inReady
	case j.State == Pending && !j.Busy:
		want = inScheduled
	}
	if want == inReady && j.where == inReadySide {
		want = inReadySide
	}
	if want != j.where {
		return fmt.Errorf("job %d (%s, busy=%v): in heap %d, want %d", id, j.State, j.Busy, j.where, want)
	}
	if j.Busy && (j.pos[slotReserved] < 0 || x.reserved[j.pos[slotReserved]] != j) {
		return fmt.Errorf("job %d: busy but not in the reserved list", id)
	}
	if (j.State == Dead) != (j.Queue.dead[id] == j) {
		return fmt.Errorf("job %d (%s): dead set disagrees", id, j.State)
	}
	if j.Attempt < 0 {
		return fmt.Errorf("job %d: negative attempt %d", id, j.Attempt)
	}
	return nil
}
