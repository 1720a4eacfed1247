package queue

import (
	"errors"
	"fmt"
	"time"
)

// Every error text of queue begins with "walq: " once; errors of the
// packages below it are converted at the edge (see lower.go).
var (
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("walq: queue closed")
	// ErrNotFound is returned for a job ID that the queue does not know
	// (never enqueued, or purged).
	ErrNotFound = errors.New("walq: job not found")
	// ErrNoJob is returned by TryLease when no job is ready.
	ErrNoJob = errors.New("walq: no job ready")
	// ErrLeaseLost is returned by Complete, Fail, Extend and Release when
	// the token does not name the job's current lease: the attempt ended
	// already (completed, failed, expired, voided at reopen). Nothing is
	// changed.
	ErrLeaseLost = errors.New("walq: lease lost")
	// ErrLeaseExpired is returned when the lease's deadline passed before
	// the call; the attempt is recorded as expired. It matches ErrLeaseLost
	// too.
	ErrLeaseExpired error = &subError{msg: "walq: lease expired", parent: ErrLeaseLost}
	// ErrState is returned when a job is not in a state the operation
	// accepts (cancelling a leased job, requeueing a job that is not dead).
	ErrState = errors.New("walq: job in wrong state")
	// ErrInvalid is returned for invalid arguments or options; the message
	// names the field.
	ErrInvalid = errors.New("walq: invalid argument")
	// ErrTooLarge is returned for a payload over Options.MaxPayload, or a
	// batch too large for one log entry.
	ErrTooLarge = errors.New("walq: payload too large")
	// ErrDead is matched by the error Wait returns for a job in the
	// dead-letter queue; errors.As with *DeadError gives the details.
	ErrDead = errors.New("walq: job is dead")
	// ErrCancelled is returned by Wait for a cancelled job.
	ErrCancelled = errors.New("walq: job cancelled")
	// ErrReadOnly is returned by changing calls on a queue opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("walq: queue opened read-only")

	// ErrLocked is returned by Open when the directory is open for
	// writing elsewhere: in another process, or through another Queue of
	// this process. errors.As with *LockedError says which.
	ErrLocked = errors.New("walq: directory locked by another writer")
	// ErrCorrupt is returned by Open (and by reads) for a damaged log;
	// errors.As with *CorruptError gives the segment, offset and index.
	ErrCorrupt = errors.New("walq: corrupt log")
	// ErrVersion is returned by Open for a directory written by a newer,
	// incompatible walq.
	ErrVersion = errors.New("walq: unsupported format version")
	// ErrNotQueue is returned by Open for a path that is not a walq queue
	// directory: a regular file, or a directory that holds other files
	// and no walq log.
	ErrNotQueue = errors.New("walq: not a walq queue")
	// ErrFailed is returned after a write or fsync failed; it also wraps
	// the cause (errors.Is(err, syscall.ENOSPC) works). The queue recovers
	// by itself once the cause is gone, or on reopen.
	ErrFailed = errors.New("walq: log write failed")
	// ErrInconsistent is returned by Open when a record does not fit the
	// state built from the records before it (the message names the
	// record's index and job).
	ErrInconsistent = errors.New("walq: log records inconsistent")
)

// subError is a sentinel that also matches a more general one, with a
// message of its own (so that its text does not repeat the parent's).
type subError struct {
	msg    string
	parent error
}

func (e *subError) Error() string { return e.msg }
func (e *subError) Unwrap() error { return e.parent }

// CorruptError locates corruption in the log: the segment file, the byte
// offset of the entry within it, the entry's log index and, when one
// record of an entry failed to decode, that record's position. It matches
// ErrCorrupt with errors.Is.
type CorruptError struct {
	// Segment is the segment file's path, empty when unknown.
	Segment string
	// Offset is the byte offset of the entry in Segment, or -1.
	Offset int64
	// Index is the log index of the entry, or 0 when unknown.
	Index uint64
	// Record is the position of the failing record within the entry, or
	// -1.
	Record int
	// Reason says what is wrong.
	Reason string
	// Err is an underlying cause, if any (for example ErrVersion).
	Err error
}

// Error describes the corruption and where it is.
func (e *CorruptError) Error() string {
	s := "walq: corrupt log"
	if e.Segment != "" {
		s += ": segment " + e.Segment
	}
	if e.Offset >= 0 {
		s += fmt.Sprintf(" offset %d", e.Offset)
	}
	if e.Index != 0 {
		s += fmt.Sprintf(" index %d", e.Index)
	}
	if e.Record >= 0 {
		s += fmt.Sprintf(" record %d", e.Record)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + bare(e.Err.Error())
	}
	return s
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// LockedError is the error Open returns when the directory is already
// open for writing. It matches ErrLocked with errors.Is.
type LockedError struct {
	// Dir is the directory.
	Dir string
	// PID is the process id the holder recorded in the lock file, or 0
	// when unknown.
	PID int
	// InProcess reports that this process holds the directory: another
	// Queue opened it and has not been closed.
	InProcess bool
}

// Error says who holds the directory.
func (e *LockedError) Error() string {
	switch {
	case e.InProcess:
		return fmt.Sprintf("walq: %s is already open in this process (close the other Queue first, or open with Options.ReadOnly)", e.Dir)
	case e.PID > 0:
		return fmt.Sprintf("walq: %s is locked by another process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("walq: %s is locked by another process", e.Dir)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// DeadError is the error Wait returns for a dead job. It matches ErrDead.
type DeadError struct {
	// ID is the job.
	ID uint64
	// Attempts is how many attempts ran.
	Attempts int
	// Reason is the last error's text.
	Reason string
	// At is when the job died.
	At time.Time
}

// Error describes the dead job.
func (e *DeadError) Error() string {
	return fmt.Sprintf("walq: job %d is dead after %d attempt(s): %s", e.ID, e.Attempts, e.Reason)
}

// Is reports whether target is ErrDead.
func (e *DeadError) Is(target error) bool { return target == ErrDead }

// permanent marks an error that must not be retried.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Fail moves the job to the dead-letter queue at
// once, whatever attempts remain. Permanent(nil) returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// retryAfter asks for the next attempt after a given delay.
type retryAfter struct {
	err    error
	delay  time.Duration
	snooze bool
}

func (r *retryAfter) Error() string {
	if r.snooze {
		return fmt.Sprintf("snoozed for %v", r.delay)
	}
	if r.err == nil {
		return fmt.Sprintf("retry after %v", r.delay)
	}
	return fmt.Sprintf("retry after %v: %v", r.delay, r.err)
}
func (r *retryAfter) Unwrap() error { return r.err }

// RetryAfter wraps err so that Fail schedules the next attempt after d
// instead of the backoff policy's delay (for example an API's Retry-After).
// The failed attempt still counts; with none left the job is dead.
func RetryAfter(d time.Duration, err error) error {
	return &retryAfter{err: err, delay: d}
}

// Snooze returns an error that makes Fail put the job back to run again
// after d without counting the attempt and without recording a failure.
func Snooze(d time.Duration) error { return &retryAfter{delay: d, snooze: true} }

// IsSnooze reports whether err came from Snooze: not a failure, but a
// request to run the job again later.
func IsSnooze(err error) bool {
	var r *retryAfter
	return errors.As(err, &r) && r.snooze
}
