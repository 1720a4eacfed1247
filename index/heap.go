package index

// jobHeap is a binary min-heap of jobs that keeps each job's position in
// Job.pos[slot] so that a job can be removed or re-sifted in O(log n). A
// job is in at most one heap per slot: slot 0 is the heap its state calls
// for (ready, scheduled, leased or finished), slot 1 its queue's ages heap
// while it is ready.
type jobHeap struct {
	jobs []*Job
	less func(a, b *Job) bool
	slot int
}

func readyLess(a, b *Job) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.RunAt != b.RunAt {
		return a.RunAt < b.RunAt
	}
	return a.ID < b.ID
}

func runAtLess(a, b *Job) bool {
	if a.RunAt != b.RunAt {
		return a.RunAt < b.RunAt
	}
	return a.ID < b.ID
}

// readyTime is when a pending job became (or becomes) ready.
func readyTime(j *Job) int64 { return max(j.RunAt, j.Created) }

func ageLess(a, b *Job) bool {
	if ta, tb := readyTime(a), readyTime(b); ta != tb {
		return ta < tb
	}
	return a.ID < b.ID
}

func finishedLess(a, b *Job) bool {
	if fa, fb := a.Finished(), b.Finished(); fa != fb {
		return fa < fb
	}
	return a.ID < b.ID
}

func deadlineLess(a, b *Job) bool {
	if da, db := a.Deadline(), b.Deadline(); da != db {
		return da < db
	}
	return a.ID < b.ID
}

// minShrink is the capacity below which a heap keeps its array however
// empty it gets.
const minShrink = 1024

func (h *jobHeap) Len() int { return len(h.jobs) }

func (h *jobHeap) peek() *Job {
	if len(h.jobs) == 0 {
		return nil
	}
	return h.jobs[0]
}

func (h *jobHeap) push(j *Job) {
	j.pos[h.slot] = int32(len(h.jobs))
	h.jobs = append(h.jobs, j)
	h.up(len(h.jobs) - 1)
}

func (h *jobHeap) remove(j *Job) {
	i := int(j.pos[h.slot])
	n := len(h.jobs) - 1
	if i != n {
		h.swap(i, n)
	}
	h.jobs[n] = nil
	h.jobs = h.jobs[:n]
	if c := cap(h.jobs); c > minShrink && n < c/4 {
		// A heap that emptied gives back most of its array, so that a
		// burst of scheduled jobs, once promoted, costs nothing.
		h.jobs = append(make([]*Job, 0, 2*n), h.jobs...)
	}
	j.pos[h.slot] = -1
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h *jobHeap) swap(i, k int) {
	h.jobs[i], h.jobs[k] = h.jobs[k], h.jobs[i]
	h.jobs[i].pos[h.slot] = int32(i)
	h.jobs[k].pos[h.slot] = int32(k)
}

func (h *jobHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.jobs[i], h.jobs[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *jobHeap) down(i0 int) bool {
	i, n := i0, len(h.jobs)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && h.less(h.jobs[r], h.jobs[l]) {
			c = r
		}
		if !h.less(h.jobs[c], h.jobs[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > i0
}

// queueHeap is a binary min-heap of the queues that have scheduled jobs,
// ordered by their earliest scheduled RunAt, so that Promote finds due jobs
// without looking at queues that have none. Each queue keeps its position
// in Queue.due (-1 when it is not in the heap).
type queueHeap struct {
	qs []*Queue
}

func dueLess(a, b *Queue) bool {
	ja, jb := a.scheduled.peek(), b.scheduled.peek()
	if ja.RunAt != jb.RunAt {
		return ja.RunAt < jb.RunAt
	}
	return ja.ID < jb.ID
}

func (h *queueHeap) peek() *Queue {
	if len(h.qs) == 0 {
		return nil
	}
	return h.qs[0]
}

// update puts q where its earliest scheduled job says: in the heap at its
// place, or out of it if it has no scheduled job.
func (h *queueHeap) update(q *Queue) {
	switch {
	case q.scheduled.Len() == 0 && q.due >= 0:
		h.remove(q)
	case q.scheduled.Len() == 0:
	case q.due < 0:
		q.due = int32(len(h.qs))
		h.qs = append(h.qs, q)
		h.up(len(h.qs) - 1)
	default:
		if i := int(q.due); !h.down(i) {
			h.up(i)
		}
	}
}

func (h *queueHeap) remove(q *Queue) {
	i := int(q.due)
	n := len(h.qs) - 1
	if i != n {
		h.swap(i, n)
	}
	h.qs[n] = nil
	h.qs = h.qs[:n]
	q.due = -1
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h *queueHeap) swap(i, k int) {
	h.qs[i], h.qs[k] = h.qs[k], h.qs[i]
	h.qs[i].due = int32(i)
	h.qs[k].due = int32(k)
}

func (h *queueHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !dueLess(h.qs[i], h.qs[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *queueHeap) down(i0 int) bool {
	i, n := i0, len(h.qs)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && dueLess(h.qs[r], h.qs[l]) {
			c = r
		}
		if !dueLess(h.qs[c], h.qs[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > i0
}
