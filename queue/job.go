package queue

import (
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// JobState is where a job is in its life; see DESIGN.md for the diagram.
type JobState string

const (
	// StateReady jobs wait to be leased now. → Leased, Cancelled.
	StateReady JobState = "ready"
	// StateScheduled jobs wait for their run-at time (a delay or a retry's
	// backoff). → Ready when the clock reaches it, Cancelled.
	StateScheduled JobState = "scheduled"
	// StateLeased jobs run under a lease. → Completed; Scheduled or Ready
	// (failure with attempts left, lease expiry, release); Dead.
	StateLeased JobState = "leased"
	// StateCompleted jobs succeeded. Kept with their result and key for
	// Options.KeyRetention, then forgotten.
	StateCompleted JobState = "completed"
	// StateDead jobs failed permanently or used up their attempts: the
	// dead-letter queue. → Ready (Requeue), or forgotten (Purge).
	StateDead JobState = "dead"
	// StateCancelled jobs were cancelled before they ran. Kept like
	// completed jobs, then forgotten.
	StateCancelled JobState = "cancelled"
)

// JobStates returns every job state.
func JobStates() []JobState {
	return []JobState{StateReady, StateScheduled, StateLeased, StateCompleted, StateDead, StateCancelled}
}

// NewJob describes a job to enqueue. Only Payload is commonly set; every
// other field has a default.
type NewJob struct {
	// Queue is the named queue. A name is 1 to 255 bytes of ASCII
	// letters, digits and the characters - _ . : / (for example
	// "emails", "billing/invoices", "v2:resize"); every call that takes
	// a queue name (Lease, TryLease, LeaseN, TryLeaseN, Pause, Resume,
	// RequeueOptions.Queue) rejects any other with ErrInvalid. The
	// filters of Jobs and Dead accept any string. Defaults to
	// DefaultQueue ("default").
	Queue string
	// Payload is the job's data, up to Options.MaxPayload bytes; empty is
	// valid.
	Payload []byte
	// Key is an idempotency key: enqueueing a key the queue already holds
	// returns the existing job instead of a new one. Keys are global to
	// the directory, across named queues. Keys beginning with "walq:" are
	// reserved for walq's own helpers (such as worker.Callback). Defaults
	// to none.
	Key string
	// RunAt delays the job until then. Defaults to now.
	RunAt time.Time
	// Delay delays the job by this much from now (ignored if RunAt is set).
	// Defaults to 0.
	Delay time.Duration
	// Priority orders ready jobs of a queue: higher runs first. Defaults
	// to 0.
	Priority int32
	// MaxAttempts overrides Options.MaxAttempts for this job. Defaults to 0
	// (the queue's).
	MaxAttempts int
	// Backoff overrides Options.Backoff for this job (Base and Cap; Factor
	// and Jitter stay the queue's). Defaults to nil (the queue's).
	Backoff *Backoff
	// Timeout is the per-attempt time limit the worker runtime applies.
	// Defaults to 0 (the runtime's default).
	Timeout time.Duration
	// Meta is string metadata (headers) stored with the job and returned
	// with it by Lease and Get: trace context, a tenant, a request ID. At
	// most MaxMetaEntries entries and MaxMetaBytes bytes of keys and
	// values; keys are 1 to 255 bytes, keys and values valid UTF-8 (see
	// MetaError). The map is not kept: the queue stores a copy. Defaults
	// to none.
	Meta map[string]string
	// Group names an ordered group (a customer ID, say), up to 255 bytes:
	// at most one job of a group is leased at a time, and a group's jobs
	// run in enqueue order, whatever their priorities; a job waiting for
	// its run-at (a delay, a retry's backoff) holds the group's turn.
	// Groups are global to the directory, across named queues. See
	// DESIGN.md, "Ordered groups". Defaults to none.
	Group string
	// ReleaseKeyOnDeath makes the job give up its idempotency key when it
	// dies (moves to the dead-letter queue): from then on GetByKey does
	// not find it and an Enqueue of the key creates a new job, for
	// producers that want a fresh attempt after a dead letter. The dead
	// job stays in the dead-letter queue with Job.KeyReleased set; if it
	// is requeued it runs without the key. No effect on a job without a
	// key. See DESIGN.md, "Keys of dead jobs". Defaults to false (or
	// Options.ReleaseKeysOnDeath).
	ReleaseKeyOnDeath bool
}

// Enqueued is the outcome of enqueueing one job.
type Enqueued struct {
	// ID is the job's ID: new, or the existing job's for a duplicate key.
	ID uint64
	// Duplicate reports that the key was already held, so no job was made.
	Duplicate bool
}

// Attempt is one run of a job, for its timeline. A requeue from the
// dead-letter queue appears as an entry with Outcome "requeued", Number 0
// and Lease 0, after which the count restarts.
type Attempt struct {
	// Number is the attempt's number as counted toward MaxAttempts; a
	// released attempt does not count and shares its number with the next.
	Number int
	// Lease is the number of the lease the attempt ran under: the
	// Token.Lease of that lease, unique among the job's attempts.
	Lease int
	// Started is when the lease was taken.
	Started time.Time
	// Ended is when the attempt ended; zero while it runs.
	Ended time.Time
	// Outcome is "completed", "failed", "dead", "expired", "released",
	// "requeued", or "" while running.
	Outcome string
	// Error is the failure's text.
	Error string
}

// Job is a snapshot of a job.
type Job struct {
	ID    uint64
	Queue string
	// Key is the job's idempotency key: the key it holds, or the key it
	// gave up when it died if KeyReleased is set.
	Key string
	// KeyReleased reports that the job gave up Key when it died (see
	// NewJob.ReleaseKeyOnDeath): the key names no job, or a newer one.
	KeyReleased bool
	// ReleaseKeyOnDeath reports that the job gives up its key if it dies
	// (NewJob.ReleaseKeyOnDeath or Options.ReleaseKeysOnDeath).
	ReleaseKeyOnDeath bool
	// Payload is the job's data (nil in listings, which leave it out).
	Payload []byte
	State   JobState
	// Attempt is the number of attempts counted so far; during a lease,
	// the running attempt's number (1 for the first run).
	Attempt     int
	MaxAttempts int
	Priority    int32
	// RunAt is when a ready or scheduled job may run.
	RunAt time.Time
	// EnqueuedAt is when the job was created.
	EnqueuedAt time.Time
	// FinishedAt is when it completed, died or was cancelled; zero for a
	// job that is not finished (also one requeued after it died).
	FinishedAt time.Time
	// LeaseDeadline is when the current lease expires (leased jobs only).
	LeaseDeadline time.Time
	// LastError is the text of the last failure.
	LastError string
	// Result is a completed job's result (nil in listings).
	Result []byte
	// HasResult tells an empty result from none.
	HasResult bool
	// Timeout is the job's per-attempt time limit, 0 for the default.
	Timeout time.Duration
	// Group is the job's ordered group, empty if none.
	Group string
	// Progress and ProgressNote are the job's latest progress report (see
	// Queue.Progress); zero and empty if none.
	Progress     int64
	ProgressNote string
	// Batch is the progress of the batch the job belongs to (see
	// EnqueueBatchThen), from Get only, while the batch has not ended; nil
	// otherwise.
	Batch *BatchInfo
	// History lists the job's attempts, oldest first: every one while
	// there are at most HistoryFirst+HistoryLast, then the first
	// HistoryFirst and the last HistoryLast.
	History []Attempt
	// HistoryDropped counts the attempts left out of History, between
	// its first HistoryFirst entries and the rest.
	HistoryDropped int
	// Meta is the job's metadata (NewJob.Meta), nil if it has none; nil in
	// listings, which leave it out with the payload. Each Job has its own
	// map.
	Meta map[string]string
}

// A job's history is bounded so that a job retried or snoozed without end
// costs what any job costs to lease, read and compact: History keeps the
// first HistoryFirst and the last HistoryLast entries, and HistoryDropped
// counts the attempts between (Attempt.Lease numbers show where the gap
// is).
const (
	// HistoryFirst is how many of a job's oldest history entries Job
	// keeps.
	HistoryFirst = 16
	// HistoryLast is how many of a job's newest history entries Job
	// keeps.
	HistoryLast = 48
)

// The index keeps what Job promises: these fail to compile unless the
// bounds are equal.
var (
	_ [HistoryFirst - index.HistoryFirst]struct{}
	_ [index.HistoryFirst - HistoryFirst]struct{}
	_ [HistoryLast - index.HistoryLast]struct{}
	_ [index.HistoryLast - HistoryLast]struct{}
)

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// jobState maps an index state to the public one at time now.
func jobState(j *index.Job, now int64) JobState {
	switch j.State {
	case index.Pending:
		if j.RunAt > now {
			return StateScheduled
		}
		return StateReady
	case index.Leased:
		return StateLeased
	case index.Completed:
		return StateCompleted
	case index.Dead:
		return StateDead
	default:
		return StateCancelled
	}
}

// snapshot copies an index job into a Job, without payload or result.
func snapshot(j *index.Job, now int64) *Job {
	out := &Job{
		ID:                j.ID,
		Queue:             j.Queue.Name,
		Key:               j.Key(),
		State:             jobState(j, now),
		Attempt:           int(j.Attempt),
		MaxAttempts:       int(j.MaxAttempts),
		Priority:          j.Priority,
		RunAt:             unixTime(j.RunAt),
		EnqueuedAt:        unixTime(j.Created),
		LeaseDeadline:     unixTime(j.Deadline()),
		ReleaseKeyOnDeath: j.Flags&index.FlagReleaseKeyOnDeath != 0,
	}
	if k := j.ReleasedKey(); k != "" {
		out.Key, out.KeyReleased = k, true
	}
	if x := j.X; x != nil {
		if j.State.Terminal() {
			out.FinishedAt = unixTime(x.Finished) // not the end of an earlier life before a requeue
		}
		out.LastError = x.Error
		out.HasResult = x.HasResult
		out.Timeout = time.Duration(x.Timeout)
		f := j.Feat()
		out.Group, out.Progress, out.ProgressNote = f.Group, f.Progress, f.Note
		out.HistoryDropped = int(x.Dropped)
		if len(x.History) > 0 {
			out.History = make([]Attempt, len(x.History))
		}
		for i, a := range x.History {
			out.History[i] = Attempt{Number: int(a.Number), Lease: int(a.Lease),
				Started: unixTime(a.Started), Ended: unixTime(a.Ended), Outcome: outcome(a.Outcome), Error: a.Error}
		}
	}
	return out
}

func outcome(k wlog.Kind) string {
	if k == 0 {
		return ""
	}
	return k.String()
}
