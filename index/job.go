package index

import wlog "github.com/walq/walq/log"

// Pos is a record's position in the log: the entry's index and the record's
// slot within the entry.
type Pos struct {
	Index uint64
	Slot  int
}

// Loc locates bytes stored in the log (a payload or a result): Len bytes at
// offset Off of the entry at Index. A zero Index means no bytes.
type Loc struct {
	Index uint64
	Off   uint32
	Len   uint32
}

// where a job is scheduled.
const (
	inNone uint8 = iota
	inReady
	inScheduled
	inLeased
	inFinished
	inReadySide // ready, in the queue's side and ages heaps
)

// Job is the index's view of one job: what scheduling, leasing and
// inspection need, without the payload. Fields are read by the queue package
// under its lock and changed only by Apply (and Reserve/Unreserve).
//
// A Job is 80 bytes (a size class of its own): what a pending job needs and
// nothing else. The idempotency key, which most jobs do not have, is kept
// by the job's queue (see Key); the lease deadline, which only leased jobs
// have, lives in X (see Deadline). TestJobSize keeps the size from growing
// unnoticed.
type Job struct {
	ID    uint64
	Queue *Queue
	// Payload locates the payload in the log. Payload.Index is also the
	// job's origin: the entry that created (or last restated) it.
	Payload Loc
	// RunAt is when a pending job becomes ready (Unix ns).
	RunAt int64
	// Created is when the job was first enqueued (Unix ns).
	Created int64
	// Attempt counts the runs started and counted so far; during a lease
	// it is the running attempt's number.
	Attempt     int32
	MaxAttempts int32
	Priority    int32
	// pos holds the job's positions: slot 0 in the heap its state calls
	// for (see jobHeap), slot 1 in its queue's ages heap while it is
	// ready, or in Index.reserved while it is busy (a busy job is in no
	// heap, so the two never overlap).
	pos   [2]int32
	State State
	where uint8
	// Busy is set by Reserve while an operation on the job is being made
	// durable; the queue uses it to serialise operations on one job.
	Busy bool
	// Flags holds the job's policy bits, as the record that created it
	// set them: FlagReleaseKeyOnDeath or none. It fits in the padding
	// before X, so the Job stays 80 bytes.
	Flags uint8
	// X holds what most pending jobs do not need; nil until needed.
	X *Extra
}

// slotReserved is the pos slot that holds a busy job's place in
// Index.reserved: the ages slot, free while the job is in no heap.
const slotReserved = 1

// Key returns the job's idempotency key, empty if none (and empty once the
// job has left the index: purged, or replaced by a carry).
func (j *Job) Key() string { return j.Queue.keyed[j] }

// Deadline returns when the current lease expires (Unix ns); 0 unless the
// job is leased.
func (j *Job) Deadline() int64 {
	if j.X == nil {
		return 0
	}
	return j.X.Deadline
}

// setDeadline sets the lease deadline, making room for it only when it is
// not 0.
func (j *Job) setDeadline(d int64) {
	if d != 0 || j.X != nil {
		j.extra().Deadline = d
	}
}

// Extra is the rarely needed part of a job: per-job policy overrides,
// history, outcome.
type Extra struct {
	// Deadline is when the current lease expires (Unix ns); leased jobs
	// only (read it with Job.Deadline).
	Deadline    int64
	BackoffBase int64
	BackoffCap  int64
	Timeout     int64
	// History lists the job's attempts, oldest first, including released
	// ones and requeue markers: the first HistoryFirst and the last
	// HistoryLast of them.
	History []wlog.Attempt
	// Leases counts every lease ever taken on the job (released and
	// requeued ones too), so that it names a lease uniquely even when an
	// attempt number is reused.
	Leases int32
	// Dropped counts the attempts left out of History.
	Dropped int32
	// Error is the last failure's text.
	Error string
	// Finished is when the job completed, died or was cancelled (Unix ns).
	Finished int64
	// Result locates a completed job's result in the log.
	Result Loc
	// HasResult tells an empty result from none.
	HasResult bool
	// F holds the job's ordered group and latest progress report; nil
	// for jobs with neither (see group.go).
	F *Features
}

func (j *Job) extra() *Extra {
	if j.X == nil {
		j.X = &Extra{}
	}
	return j.X
}

// Leases returns how many leases were ever taken on the job; during a lease,
// the running lease's number.
func (j *Job) Leases() int32 {
	if j.X == nil {
		return 0
	}
	return j.X.Leases
}

// Finished returns when the job reached a terminal state, 0 if it has not.
func (j *Job) Finished() int64 {
	if j.X == nil {
		return 0
	}
	return j.X.Finished
}

// Error returns the job's last error text.
func (j *Job) Error() string {
	if j.X == nil {
		return ""
	}
	return j.X.Error
}

// History returns the job's attempts, oldest first: the first HistoryFirst
// and the last HistoryLast (Dropped counts the attempts between). The
// slice must not be modified.
func (j *Job) History() []wlog.Attempt {
	if j.X == nil {
		return nil
	}
	return j.X.History
}

// Queue is one named queue: its pending jobs in scheduling order and its
// counts per state.
//
// Its ready jobs are split in two heaps, both in scheduling order (readyLess),
// so that most of them need one heap slot and not two. A plain job has the
// queue's plain priority and was created at or before its RunAt: among such
// jobs scheduling order is age order (RunAt, then ID, and RunAt is when the
// job became ready), so the top of the ready heap is also its oldest. Every
// other ready job goes to the side heap and, by age, to the ages heap. Next
// is the better of the two tops, OldestReady the older of the ready top and
// the ages top: both O(1). The plain priority is set by the first job to
// become ready when the ready heap is empty.
type Queue struct {
	Name string
	// Paused queues hand out no leases.
	Paused bool
	ready  jobHeap // plain ready jobs
	side   jobHeap // the other ready jobs
	ages   jobHeap // side's jobs again, by when they became ready
	plain  int32   // the priority of the jobs in ready
	// keyed holds the idempotency keys of the queue's jobs that have
	// one: a map entry for those, not a field in every Job.
	keyed     map[*Job]string
	scheduled jobHeap
	counts    [numStates]int
	dead      map[uint64]*Job
	due       int32 // position in Index.due, -1 if not there
}

// Count returns how many jobs of the queue are in state s.
func (q *Queue) Count(s State) int { return q.counts[s] }

// Ready returns how many pending jobs were due at the last Promote and are
// not reserved (Index.Reserved lists those).
func (q *Queue) Ready() int { return q.ready.Len() + q.side.Len() }

// Scheduled returns how many pending jobs were not yet due at the last
// Promote.
func (q *Queue) Scheduled() int { return q.scheduled.Len() }

// Next returns the best ready job (highest priority, then earliest RunAt,
// then lowest ID) without removing it, or nil. Call Promote first.
func (q *Queue) Next() *Job {
	a, b := q.ready.peek(), q.side.peek()
	if a == nil || b != nil && readyLess(b, a) {
		return b
	}
	return a
}

// NextRunAt returns the earliest RunAt of a scheduled job.
func (q *Queue) NextRunAt() (int64, bool) {
	j := q.scheduled.peek()
	if j == nil {
		return 0, false
	}
	return j.RunAt, true
}

// OldestReady returns the earliest time (max of RunAt and Created) at which
// a currently ready job became ready, or false if none is ready. It costs
// O(1).
func (q *Queue) OldestReady() (int64, bool) {
	a, b := q.ready.peek(), q.ages.peek()
	switch {
	case a == nil && b == nil:
		return 0, false
	case a == nil:
		return readyTime(b), true
	case b == nil:
		return readyTime(a), true
	}
	return min(readyTime(a), readyTime(b)), true
}

// setKey records j's idempotency key k; an empty k records nothing.
func (q *Queue) setKey(j *Job, k string) {
	if k == "" {
		return
	}
	if q.keyed == nil {
		q.keyed = make(map[*Job]string)
	}
	q.keyed[j] = k
}

// plainFor reports whether j, becoming ready, goes to the ready heap (see
// Queue), setting the plain priority if that heap is empty.
func (q *Queue) plainFor(j *Job) bool {
	if q.ready.Len() == 0 {
		q.plain = j.Priority
	}
	return j.Priority == q.plain && j.Created <= j.RunAt
}

// Dead calls fn with each dead job of the queue, in no particular order.
func (q *Queue) Dead(fn func(*Job) bool) {
	for _, j := range q.dead {
		if !fn(j) {
			return
		}
	}
}
