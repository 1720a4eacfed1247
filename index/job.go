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
)

// Job is the index's view of one job: what scheduling, leasing and
// inspection need, without the payload. Fields are read by the queue package
// under its lock and changed only by Apply (and Reserve/Unreserve).
type Job struct {
	ID    uint64
	Queue *Queue
	// Key is the idempotency key, empty if none.
	Key string
	// Payload locates the payload in the log. Payload.Index is also the
	// job's origin: the entry that created (or last restated) it.
	Payload Loc
	// RunAt is when a pending job becomes ready (Unix ns).
	RunAt int64
	// Created is when the job was first enqueued (Unix ns).
	Created int64
	// Deadline is when the current lease expires (Unix ns); leased jobs only.
	Deadline int64
	// Attempt counts the runs started and counted so far; during a lease
	// it is the running attempt's number.
	Attempt     int32
	MaxAttempts int32
	Priority    int32
	// pos holds the job's positions: in heaps (see jobHeap) and, in
	// slot 2, in Index.reserved.
	pos   [3]int32
	State State
	where uint8
	// Busy is set by Reserve while an operation on the job is being made
	// durable; the queue uses it to serialise operations on one job.
	Busy bool
	// X holds what most pending jobs do not need; nil until needed.
	X *Extra
}

// Extra is the rarely needed part of a job: per-job policy overrides,
// history, outcome.
type Extra struct {
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
type Queue struct {
	Name string
	// Paused queues hand out no leases.
	Paused    bool
	ready     jobHeap
	ages      jobHeap // the ready jobs again, by when they became ready
	scheduled jobHeap
	counts    [numStates]int
	dead      map[uint64]*Job
	due       int32 // position in Index.due, -1 if not there
}

// Count returns how many jobs of the queue are in state s.
func (q *Queue) Count(s State) int { return q.counts[s] }

// Ready returns how many pending jobs were due at the last Promote and are
// not reserved (Index.Reserved lists those).
func (q *Queue) Ready() int { return q.ready.Len() }

// Scheduled returns how many pending jobs were not yet due at the last
// Promote.
func (q *Queue) Scheduled() int { return q.scheduled.Len() }

// Next returns the best ready job (highest priority, then earliest RunAt,
// then lowest ID) without removing it, or nil. Call Promote first.
func (q *Queue) Next() *Job { return q.ready.peek() }

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
	j := q.ages.peek()
	if j == nil {
		return 0, false
	}
	return readyTime(j), true
}

// Dead calls fn with each dead job of the queue, in no particular order.
func (q *Queue) Dead(fn func(*Job) bool) {
	for _, j := range q.dead {
		if !fn(j) {
			return
		}
	}
}
