package log

import "fmt"

// Kind identifies what a Record says happened to a job. Kinds are part of the
// on-disk format: their numeric values never change and are never reused.
type Kind uint8

// The record kinds. Each names one job transition (or one queue-level
// change); see DESIGN.md for the state machine they drive.
const (
	// KindEnqueued creates a job: Job, At, Queue, Key, Payload, Priority,
	// RunAt, MaxAttempts, BackoffBase, BackoffCap, Timeout, Group, Flags,
	// and Meta if the job has metadata.
	KindEnqueued Kind = 1
	// KindLeased starts attempt Attempt of Job at At, held until Deadline.
	KindLeased Kind = 2
	// KindCompleted ends attempt Attempt of Job successfully with Result.
	KindCompleted Kind = 3
	// KindFailed ends attempt Attempt of Job with Error and schedules the
	// next attempt at RunAt.
	KindFailed Kind = 4
	// KindDead ends attempt Attempt of Job with Error and moves the job to
	// the dead-letter queue; a job created with FlagReleaseKeyOnDeath gives
	// up its idempotency key.
	KindDead Kind = 5
	// KindRequeued moves a dead job back to queue Queue, ready at RunAt, with
	// its attempt count reset.
	KindRequeued Kind = 6
	// KindCancelled removes a pending job from scheduling.
	KindCancelled Kind = 7
	// KindCarry restates a job's whole state (compaction writes it so that
	// older records can be dropped): every field of KindEnqueued plus
	// State, Attempt, History, Error, Result, Deadline, Created, Finished,
	// Progress and Note (Flags may add FlagKeyReleased).
	KindCarry Kind = 8
	// KindExpired ends attempt Attempt of Job because its lease ran out (or
	// its process died); the job is ready again at RunAt, the attempt counts.
	KindExpired Kind = 9
	// KindReleased gives attempt Attempt of Job back without counting it;
	// the job is ready again at RunAt.
	KindReleased Kind = 10
	// KindExtended moves the lease deadline of attempt Attempt of Job to
	// Deadline.
	KindExtended Kind = 11
	// KindPurged forgets Job (a dead, completed or cancelled job) entirely,
	// including its idempotency key.
	KindPurged Kind = 12
	// KindPaused stops leasing from queue Queue.
	KindPaused Kind = 13
	// KindResumed undoes KindPaused for queue Queue.
	KindResumed Kind = 14
	// KindCheckpoint records engine-wide counters, such as NextID, that must
	// survive the compaction of every record that implied them.
	KindCheckpoint Kind = 15
	// KindSchedule registers, restates or removes periodic schedule Key: a
	// cron expression or "@every <duration>" in Spec (empty Spec removes
	// the schedule), the job template in Queue, Payload, Priority,
	// MaxAttempts, BackoffBase, BackoffCap and Timeout, the missed-tick
	// policy in State, the anchor (registration time) in Created and the
	// last tick that enqueued a job in RunAt. It is written when a
	// schedule is registered, in the same entry as each job a tick
	// enqueues, and by compaction's checkpoint.
	KindSchedule Kind = 16
	// KindBatch creates (State 0) or ends (State 1) a batch: the jobs with
	// IDs Job to Job+Attempt-1, created in the same entry, whose callback
	// job (template in Queue, Payload, Priority, MaxAttempts, BackoffBase,
	// BackoffCap, Timeout, Group) is enqueued when every one has finished.
	// The ending record is in the entry that enqueues the callback, with
	// the last member's transition; compaction's checkpoint restates the
	// batches not yet ended.
	KindBatch Kind = 17
	// KindProgress records the progress attempt Attempt of Job reports:
	// Progress (a number) and Note (a short message), replacing the job's
	// previous report.
	KindProgress Kind = 18

	// kindMax is one past the largest known kind.
	kindMax = 19
)

var kindNames = [kindMax]string{
	KindEnqueued:   "enqueued",
	KindLeased:     "leased",
	KindCompleted:  "completed",
	KindFailed:     "failed",
	KindDead:       "dead",
	KindRequeued:   "requeued",
	KindCancelled:  "cancelled",
	KindCarry:      "carry",
	KindExpired:    "expired",
	KindReleased:   "released",
	KindExtended:   "extended",
	KindPurged:     "purged",
	KindPaused:     "paused",
	KindResumed:    "resumed",
	KindCheckpoint: "checkpoint",
	KindSchedule:   "schedule",
	KindBatch:      "batch",
	KindProgress:   "progress",
}

// String returns the lower-case name of the kind, such as "enqueued".
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Valid reports whether k is a kind this version of walq knows.
func (k Kind) Valid() bool { return k > 0 && k < kindMax }

// Kinds returns every known kind in numeric order.
func Kinds() []Kind {
	ks := make([]Kind, 0, kindMax-1)
	for k := Kind(1); k < kindMax; k++ {
		ks = append(ks, k)
	}
	return ks
}

// The bits of Record.Flags. Part of the on-disk format: a bit's meaning
// never changes and a bit is never reused.
const (
	// FlagReleaseKeyOnDeath, on a KindEnqueued or KindCarry record, says
	// that the job gives up its idempotency key when a KindDead record
	// ends it.
	FlagReleaseKeyOnDeath uint64 = 1 << 0
	// FlagKeyReleased, on a KindCarry record only, says that the job has
	// given up its key: Key is the key it had, held by no one or by
	// another job.
	FlagKeyReleased uint64 = 1 << 1
)

// Attempt is one run of a job, as kept in its history.
type Attempt struct {
	// Started is when the attempt's lease was taken, in Unix nanoseconds.
	Started int64
	// Ended is when the attempt ended, in Unix nanoseconds; zero while it
	// runs.
	Ended int64
	// Number is the attempt's number as counted toward the job's
	// MaxAttempts (a released attempt shares it with the next one); zero
	// for a requeue marker, and in histories written before walq kept
	// it (a reader derives it then; see Lease).
	Number int32
	// Lease is the number of the lease the attempt ran under, counting
	// from 1 every lease the job ever took; zero for a requeue marker,
	// and in histories written before walq kept it, which were complete
	// and so let a reader count both numbers from the first attempt.
	Lease int32
	// Outcome is the kind of record that ended the attempt (KindCompleted,
	// KindFailed, KindDead, KindExpired or KindReleased); zero while it
	// runs; KindRequeued for the marker a requeue leaves.
	Outcome Kind
	// Error is the error text of a failed attempt.
	Error string
}

// Record is one job transition. Which fields are meaningful depends on Kind
// (see the Kind constants); the rest are zero and take no space on disk.
// Times are Unix nanoseconds taken from the queue's clock, so that replaying
// a record never reads the clock.
//
// A decoded Record's Payload and Result alias the bytes they were decoded
// from; copy them to keep them past the callback that received them.
type Record struct {
	Kind        Kind
	Job         uint64
	At          int64
	Queue       string
	Key         string
	Payload     []byte
	Priority    int64
	RunAt       int64
	MaxAttempts int64
	BackoffBase int64
	BackoffCap  int64
	Timeout     int64
	Attempt     int64
	Deadline    int64
	Error       string
	Result      []byte
	State       uint8
	History     []Attempt
	Created     int64
	Finished    int64
	NextID      uint64
	// Meta is the job's metadata (KindEnqueued and KindCarry), as the
	// msgpack map EncodeMeta makes; nil for none. The encoder writes it
	// verbatim after checking its shape, right after Payload.
	Meta []byte
	// Spec is a KindSchedule record's schedule: a cron expression or
	// "@every <duration>".
	Spec string
	// Group is the ordered group of the job a KindEnqueued or KindCarry
	// record creates; empty for none.
	Group string
	// Progress and Note are the progress a KindProgress record reports, or
	// a KindCarry record restates.
	Progress int64
	Note     string
	// Flags are a job's policy and state bits (FlagReleaseKeyOnDeath,
	// FlagKeyReleased) on the KindEnqueued or KindCarry record that
	// creates or restates it; 0 for none.
	Flags uint64

	// PayloadAt and ResultAt are the offsets of Payload and Result within
	// the entry's bytes, set by the encoder and the decoder so that a
	// reader can fetch them later without decoding the entry again. They
	// are not encoded.
	PayloadAt int
	ResultAt  int
	// MetaAt is the offset of Meta within the entry's bytes, set by the
	// decoder. It is not encoded.
	MetaAt int
}
