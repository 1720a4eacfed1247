package index

import (
	"errors"
	"fmt"

	wlog "github.com/walq/walq/log"
)

// ErrInconsistent marks a record that does not apply to the current state
// (for example a completion for a job that is not leased). On replay it
// means the log is damaged or was written by a buggy walq; on the live path
// it means a bug, since the queue validates before it appends.
var ErrInconsistent = errors.New("walq/index: record inconsistent with state")

// ApplyError says which record failed to apply and why. It matches
// ErrInconsistent with errors.Is.
type ApplyError struct {
	// Pos is where the record is in the log.
	Pos Pos
	// Kind is the record's kind.
	Kind wlog.Kind
	// Job is the record's job ID.
	Job uint64
	// Reason says what is inconsistent.
	Reason string
}

// Error describes the record and the inconsistency.
func (e *ApplyError) Error() string {
	return fmt.Sprintf("walq/index: record %s at index %d slot %d for job %d: %s",
		e.Kind, e.Pos.Index, e.Pos.Slot, e.Job, e.Reason)
}

// Is reports whether target is ErrInconsistent.
func (e *ApplyError) Is(target error) bool { return target == ErrInconsistent }
