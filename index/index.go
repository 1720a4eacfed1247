package index

import (
	"cmp"
	"math"
	"slices"
	"sort"

	wlog "github.com/walq/walq/log"
)

// Index is the folded state of a log. The zero value is not usable; call
// New. It is not safe for concurrent use.
type Index struct {
	jobs   jobTable
	keys   map[string]*Job
	queues map[string]*Queue
	leased jobHeap
	// finished holds completed and cancelled jobs by finish time, for
	// retention.
	finished jobHeap
	nextID   uint64
	// now is the latest time passed to Promote: not the largest, since a
	// clock may step back (see Promote).
	now int64
	// due holds the queues with scheduled jobs, earliest run-at first.
	due queueHeap
	// readyMax bounds the RunAt of every job in a ready heap from above,
	// so that Promote knows when a step back of the clock has nothing to
	// undo.
	readyMax int64
	// reserved lists the busy jobs (Reserve to Unreserve); each knows
	// its place in Job.pos[slotReserved].
	reserved []*Job
	// work counts the queues and jobs Promote looked at, so that tests
	// can bound its cost without timing it.
	work    int
	records int
	// created lists jobs in the order they were created (or restated by a
	// carry record) while hasCreated (see Created); entries whose job is
	// gone or was replaced are stale.
	created    []*Job
	hasCreated bool
	liveBytes  int64
	// orphans tracks, during a lenient replay, jobs that records refer to
	// but that are unknown: jobs created before the log's first index.
	lenient bool
	orphans map[uint64]orphan
	// unresolved counts the orphans whose last record is not a purge:
	// those EndReplay would reject.
	unresolved int
	// schedules holds the periodic schedules by name; nil until one is
	// registered.
	schedules map[string]*Schedule
	// groups holds the ordered groups with unfinished jobs by name (see
	// group.go).
	groups map[string]*group
	// batches holds the batches not yet ended by first job, and
	// batchFirsts their first jobs in order (nil when stale).
	batches     map[uint64]*Batch
	batchFirsts []uint64
}

// orphan is the last record seen for an unknown job during a lenient replay.
type orphan struct {
	kind wlog.Kind
	pos  Pos
}

// jobOverhead approximates the log bytes a job's carry record takes beyond
// its payload, result and key; LiveBytes uses it.
const jobOverhead = 64

func (j *Job) bytes() int64 {
	n := int64(jobOverhead) + int64(j.Payload.Len) + int64(len(j.Key()))
	if j.X != nil {
		n += int64(j.X.Result.Len)
		if j.X.F != nil {
			n += int64(len(j.X.F.ReleasedKey)) // a carry restates it
		}
	}
	return n
}

// LiveBytes estimates the log bytes needed to restate every job the index
// holds: payloads, results, keys and a fixed overhead per job.
func (x *Index) LiveBytes() int64 { return x.liveBytes }

// Created returns the number of positions in the creation order: jobs
// created later get positions at or after it.
//
// The creation order is materialised only while someone uses it (from
// Created or CreatedAt until TidyCreated), so that an index at rest does
// not pay a pointer per job for it: the first call lists every job by
// origin, that is by the log position of the record that created or last
// restated it (Payload.Index, then Payload.Off, then ID), in O(n log n);
// while it is materialised, jobs created or restated are appended.
func (x *Index) Created() int {
	x.materializeCreated()
	return len(x.created)
}

// CreatedAt returns the job at position i of the creation order, or nil if
// that job is gone or was since restated (and so sits at a later position),
// or if there is no position i (the order listed only the jobs alive when it
// was materialised).
func (x *Index) CreatedAt(i int) *Job {
	x.materializeCreated()
	if i < 0 || i >= len(x.created) {
		return nil
	}
	j := x.created[i]
	if x.jobs.get(j.ID) != j {
		return nil
	}
	return j
}

// TidyCreated drops the creation order. Positions returned by Created and
// used with CreatedAt are invalid afterwards; the next Created lists the
// live jobs afresh.
func (x *Index) TidyCreated() {
	x.created, x.hasCreated = nil, false
}

// materializeCreated lists every job in origin order, unless the list is
// already kept.
func (x *Index) materializeCreated() {
	if x.hasCreated {
		return
	}
	js := make([]*Job, 0, x.jobs.len())
	x.jobs.each(func(j *Job) bool {
		js = append(js, j)
		return true
	})
	slices.SortFunc(js, originCmp)
	x.created, x.hasCreated = js, true
}

// originCmp orders jobs by the log position of the record that created or
// last restated them; the records of one entry lay out their payloads in
// record order.
func originCmp(a, b *Job) int {
	if c := cmp.Compare(a.Payload.Index, b.Payload.Index); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Payload.Off, b.Payload.Off); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// SetLenient makes Apply accept records for unknown jobs, as a replay of a
// log whose front was truncated by compaction must: such a job was created
// before the log's first index and is restated by a later carry record (or
// was purged). EndReplay checks that every such job was accounted for.
func (x *Index) SetLenient() {
	x.lenient = true
	x.orphans = make(map[uint64]orphan)
}

// EndReplay ends a lenient replay. It fails if a record referred to an
// unknown job that no later carry record restated and that was not purged:
// the log lost the job's beginning. The error names the earliest such
// record (the last one seen for its job).
func (x *Index) EndReplay() error {
	x.lenient = false
	var bad *ApplyError
	for id, o := range x.orphans {
		if o.kind != wlog.KindPurged && (bad == nil || o.pos.Index < bad.Pos.Index ||
			o.pos.Index == bad.Pos.Index && o.pos.Slot < bad.Pos.Slot) {
			bad = &ApplyError{Pos: o.pos, Kind: o.kind, Job: id,
				Reason: "record for a job whose creation is not in the log and that no carry record restates"}
		}
	}
	x.orphans, x.unresolved = nil, 0
	if bad != nil {
		return bad
	}
	return nil
}

// Unresolved returns, during a lenient replay, how many unknown jobs the
// records applied so far refer to without a later carry record or a purge:
// EndReplay, called now, succeeds exactly when it is zero. It is zero
// outside a lenient replay.
func (x *Index) Unresolved() int { return x.unresolved }

// setOrphan records o as the last record seen for the unknown job id.
func (x *Index) setOrphan(id uint64, o orphan) {
	if old, ok := x.orphans[id]; ok && old.kind != wlog.KindPurged {
		x.unresolved--
	}
	if o.kind != wlog.KindPurged {
		x.unresolved++
	}
	x.orphans[id] = o
}

// dropOrphan forgets the unknown job id: a carry record restated it.
func (x *Index) dropOrphan(id uint64) {
	if old, ok := x.orphans[id]; ok {
		if old.kind != wlog.KindPurged {
			x.unresolved--
		}
		delete(x.orphans, id)
	}
}

// New returns an empty index.
func New() *Index { return NewSized(0) }

// NewSized returns an empty index with room for about n jobs in its job
// table's page list, for a replay that knows roughly how many to expect.
// (What grows with the jobs themselves is sized exactly by Trim after the
// replay instead: an estimate that is too high would be kept.)
func NewSized(n int) *Index {
	return &Index{
		jobs:     jobTable{pages: make([]*jobPage, 0, max(n, 0)>>pageBits+1)},
		keys:     make(map[string]*Job),
		queues:   make(map[string]*Queue),
		leased:   jobHeap{less: deadlineLess},
		finished: jobHeap{less: finishedLess},
		nextID:   1,
		readyMax: math.MinInt64,
	}
}

// Trim gives back the spare capacity that growing left in the index's
// slices (the heaps, the reserved list, the job table's page list), so that
// an index just replayed holds what its jobs need: appending grows a slice
// by up to a quarter (doubling when small), which for the heaps of a
// million pending jobs is megabytes. Recovery calls it after a replay. It
// costs O(n), changes nothing observable, and the next push into a trimmed
// heap grows it again as usual.
func (x *Index) Trim() {
	for _, q := range x.queues {
		q.ready.jobs = clip(q.ready.jobs)
		q.side.jobs = clip(q.side.jobs)
		q.ages.jobs = clip(q.ages.jobs)
		q.scheduled.jobs = clip(q.scheduled.jobs)
	}
	x.leased.jobs = clip(x.leased.jobs)
	x.finished.jobs = clip(x.finished.jobs)
	x.reserved = clip(x.reserved)
	x.due.qs = clip(x.due.qs)
	x.jobs.trim()
}

// clip returns s in an array of its own length, or s itself when its spare
// capacity is too small to be worth a copy.
func clip[T any](s []T) []T {
	if cap(s)-len(s) <= max(len(s)/32, 64) {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}

// NextID returns the smallest job ID no record has used.
func (x *Index) NextID() uint64 { return x.nextID }

// Records returns how many records have been applied.
func (x *Index) Records() int { return x.records }

// Len returns the number of jobs known (in any state).
func (x *Index) Len() int { return x.jobs.len() }

// Job returns the job with the given ID, or nil.
func (x *Index) Job(id uint64) *Job { return x.jobs.get(id) }

// Key returns the job holding idempotency key k, or nil.
func (x *Index) Key(k string) *Job { return x.keys[k] }

// Queue returns the named queue, or nil if no record has named it.
func (x *Index) Queue(name string) *Queue { return x.queues[name] }

// Queues returns every named queue, sorted by name.
func (x *Index) Queues() []*Queue {
	qs := make([]*Queue, 0, len(x.queues))
	for _, q := range x.queues {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Name < qs[j].Name })
	return qs
}

// JobsFrom calls fn with every job whose ID is at least id, in ID order,
// until fn returns false. Its cost is proportional to the IDs it passes,
// not to the number of jobs.
func (x *Index) JobsFrom(id uint64, fn func(*Job) bool) { x.jobs.eachFrom(id, fn) }

// Jobs returns every job sorted by ID.
func (x *Index) Jobs() []*Job {
	js := make([]*Job, 0, x.jobs.len())
	x.jobs.each(func(j *Job) bool {
		js = append(js, j)
		return true
	})
	return js
}

func (x *Index) queue(name string) *Queue {
	q := x.queues[name]
	if q == nil {
		q = &Queue{
			Name:      name,
			ready:     jobHeap{less: readyLess},
			side:      jobHeap{less: readyLess},
			ages:      jobHeap{less: ageLess, slot: 1},
			scheduled: jobHeap{less: runAtLess},
			dead:      make(map[uint64]*Job),
			due:       -1,
		}
		x.queues[name] = q
	}
	return q
}

// Promote makes the index's idea of the time now: every pending job whose
// RunAt is at or before now is ready (in its queue's ready heap), every
// other pending job is scheduled. It changes no job's state, only which
// heap holds it, and costs O(log n) per job it moves, whatever the number
// of queues.
//
// now may be earlier than the last call's (a wall clock stepped back): a
// job is leasable only when its RunAt has come by the clock reading of the
// lease itself, so ready jobs whose RunAt is now in the future go back to
// the scheduled heap. That is what a replay, which knows only the records
// and the clock at open, would decide too. Undoing a step back costs
// O(queues + ready jobs), once per step.
func (x *Index) Promote(now int64) {
	if now < x.readyMax {
		x.demote(now)
	}
	x.now = now
	for {
		q := x.due.peek()
		x.work++
		if q == nil || q.scheduled.peek().RunAt > now {
			return
		}
		for {
			j := q.scheduled.peek()
			if j == nil || j.RunAt > now {
				break
			}
			x.work++
			q.scheduled.remove(j)
			x.toReady(j)
		}
		x.due.update(q)
	}
}

// demote moves ready jobs whose RunAt is after now back to the scheduled
// heaps, and makes readyMax exact again.
func (x *Index) demote(now int64) {
	x.readyMax = math.MinInt64
	var late []*Job
	for _, q := range x.queues {
		for _, h := range []*jobHeap{&q.ready, &q.side} {
			for _, j := range h.jobs {
				if j.RunAt > now {
					late = append(late, j)
				} else {
					x.readyMax = max(x.readyMax, j.RunAt)
				}
			}
		}
	}
	for _, j := range late {
		x.fromReady(j)
		x.toScheduled(j)
	}
}

// toReady puts a pending job into its queue's ready heaps: the ready heap
// if it is plain, else the side and ages heaps (see Queue).
func (x *Index) toReady(j *Job) {
	q := j.Queue
	if q.plainFor(j) {
		j.where = inReady
		q.ready.push(j)
	} else {
		j.where = inReadySide
		q.side.push(j)
		q.ages.push(j)
	}
	x.readyMax = max(x.readyMax, j.RunAt)
}

// fromReady takes a job out of its queue's ready heaps.
func (x *Index) fromReady(j *Job) {
	q := j.Queue
	if j.where == inReady {
		q.ready.remove(j)
	} else {
		q.side.remove(j)
		q.ages.remove(j)
	}
}

// toScheduled puts a pending job into its queue's scheduled heap, keeping
// the queue's place in the due heap.
func (x *Index) toScheduled(j *Job) {
	q := j.Queue
	j.where = inScheduled
	q.scheduled.push(j)
	if j.pos[0] == 0 {
		x.due.update(q)
	}
}

// fromScheduled takes a job out of its queue's scheduled heap, keeping the
// queue's place in the due heap.
func (x *Index) fromScheduled(j *Job) {
	q := j.Queue
	first := j.pos[0] == 0
	q.scheduled.remove(j)
	if first {
		x.due.update(q)
	}
}

// Expired calls fn with each leased job whose deadline is at or before now,
// earliest first, until fn returns false. fn must not change the index.
func (x *Index) Expired(now int64, fn func(*Job) bool) {
	// Walk a copy in deadline order: the heap itself is only partially
	// ordered.
	var due []*Job
	for _, j := range x.leased.jobs {
		if j.Deadline() <= now {
			due = append(due, j)
		}
	}
	sort.Slice(due, func(a, b int) bool { return deadlineLess(due[a], due[b]) })
	for _, j := range due {
		if !fn(j) {
			return
		}
	}
}

// NextDeadline returns the earliest lease deadline.
func (x *Index) NextDeadline() (int64, bool) {
	j := x.leased.peek()
	if j == nil {
		return 0, false
	}
	return j.Deadline(), true
}

// Leased calls fn with every leased job, in no particular order.
func (x *Index) Leased(fn func(*Job)) {
	for _, j := range x.leased.jobs {
		fn(j)
	}
}

// Finished calls fn with completed and cancelled jobs in the order they
// finished, oldest first, until fn returns false. It costs O(k log k) for
// the k jobs it visits.
func (x *Index) Finished(fn func(*Job) bool) {
	h := x.finished.jobs
	if len(h) == 0 {
		return
	}
	// Walk the heap in order with a frontier heap of positions.
	front := []int{0}
	less := func(a, b int) bool { return finishedLess(h[front[a]], h[front[b]]) }
	for len(front) > 0 {
		// Pop the frontier's minimum.
		top := front[0]
		n := len(front) - 1
		front[0] = front[n]
		front = front[:n]
		for i := 0; ; {
			l, m := 2*i+1, i
			if l < n && less(l, m) {
				m = l
			}
			if r := l + 1; r < n && less(r, m) {
				m = r
			}
			if m == i {
				break
			}
			front[i], front[m] = front[m], front[i]
			i = m
		}
		if !fn(h[top]) {
			return
		}
		for _, c := range []int{2*top + 1, 2*top + 2} {
			if c < len(h) {
				front = append(front, c)
				for i := len(front) - 1; i > 0; {
					p := (i - 1) / 2
					if !less(i, p) {
						break
					}
					front[i], front[p] = front[p], front[i]
					i = p
				}
			}
		}
	}
}

// Reserve marks j busy while an operation on it is made durable and takes
// it out of scheduling: a pending job so that no one else leases it, a
// leased job so that the lease reaper leaves it to the operation in flight.
func (x *Index) Reserve(j *Job) {
	j.Busy = true
	x.unschedule(j)
	if j.pos[slotReserved] < 0 {
		j.pos[slotReserved] = int32(len(x.reserved))
		x.reserved = append(x.reserved, j)
	}
}

// Unreserve clears j's busy mark and puts a pending job back into
// scheduling (after a failed append, or once its record is applied).
func (x *Index) Unreserve(j *Job) {
	// Only a busy job has its place in the reserved list in
	// pos[slotReserved]; any other job may have its ages position there.
	if i := int(j.pos[slotReserved]); j.Busy && i >= 0 {
		last := len(x.reserved) - 1
		x.reserved[i] = x.reserved[last]
		x.reserved[i].pos[slotReserved] = int32(i)
		x.reserved[last] = nil
		x.reserved = x.reserved[:last]
		j.pos[slotReserved] = -1
	}
	j.Busy = false
	if x.jobs.get(j.ID) == j {
		x.schedule(j)
	}
}

// Reserved calls fn with every job reserved and not yet unreserved, in no
// particular order. A reserved job is in no heap: a pending one counts in
// neither Queue.Ready nor Queue.Scheduled.
func (x *Index) Reserved(fn func(*Job)) {
	for _, j := range x.reserved {
		fn(j)
	}
}

// unschedule takes j out of whichever heap holds it.
func (x *Index) unschedule(j *Job) {
	switch j.where {
	case inReady, inReadySide:
		x.fromReady(j)
	case inScheduled:
		x.fromScheduled(j)
	case inLeased:
		x.leased.remove(j)
	case inFinished:
		x.finished.remove(j)
	}
	j.where = inNone
}

// schedule puts j into the heap its state calls for, unless it is busy.
func (x *Index) schedule(j *Job) {
	if j.where != inNone || j.Busy {
		return // a busy job is scheduled by Unreserve
	}
	switch j.State {
	case Pending:
		if x.parked(j) {
			return // waits for its group's turn; regroup schedules it
		}
		if j.RunAt <= x.now {
			x.toReady(j)
		} else {
			x.toScheduled(j)
		}
	case Leased:
		j.where = inLeased
		x.leased.push(j)
	case Completed, Cancelled:
		j.where = inFinished
		x.finished.push(j)
	}
}

// setState moves j to state s, keeping counts, heaps and the dead-letter
// set in step.
func (x *Index) setState(j *Job, s State) {
	x.unschedule(j)
	q := j.Queue
	if j.State.Valid() {
		q.counts[j.State]--
	}
	if j.State == Dead {
		delete(q.dead, j.ID)
	}
	old := j.State
	j.State = s
	q.counts[s]++
	if s == Dead {
		q.dead[j.ID] = j
	}
	if j.grouped() {
		x.groupMove(j, old)
	}
	x.schedule(j)
}

// remove forgets j entirely.
func (x *Index) remove(j *Job) {
	x.unschedule(j)
	j.Queue.counts[j.State]--
	delete(j.Queue.dead, j.ID)
	x.jobs.delete(j.ID)
	x.liveBytes -= j.bytes()
	if k := j.Key(); k != "" && x.keys[k] == j {
		delete(x.keys, k)
	}
	if j.Queue.keyed != nil {
		delete(j.Queue.keyed, j)
	}
	if j.grouped() {
		x.groupRemove(j)
	}
}
