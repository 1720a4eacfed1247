package log

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrCorrupt marks every error caused by bytes on disk that fail
	// validation: a checksum mismatch, a torn or zero entry, an undecodable
	// record. Test for it with errors.Is; errors.As with *CorruptError gives
	// the location.
	ErrCorrupt = errors.New("walq/log: corrupt log")

	// ErrVersion is returned (wrapped in a *CorruptError) for an entry or a
	// directory written by a newer, incompatible format version.
	ErrVersion = errors.New("walq/log: unsupported format version")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("walq/log: log closed")

	// ErrFailed is returned by appends after a write or fsync failed. The
	// error also wraps the original cause (for example syscall.ENOSPC). The
	// log refuses appends until Recover succeeds or it is reopened.
	ErrFailed = errors.New("walq/log: log failed")

	// ErrStale is returned by TruncateFrontAt when the log was recovered
	// after the cut was chosen: nothing was removed.
	ErrStale = errors.New("walq/log: log recovered since the cut was chosen")

	// ErrLocked is returned by Open when another process (or another Log in
	// this process) holds the directory's write lock.
	ErrLocked = errors.New("walq/log: directory locked by another writer")

	// ErrReadOnly is returned by writing methods of a log opened read-only.
	ErrReadOnly = errors.New("walq/log: log opened read-only")

	// ErrNotFound is returned by Read for an index outside the log.
	ErrNotFound = errors.New("walq/log: index not found")

	// ErrTooLarge is returned by Append for an entry larger than
	// Options.MaxEntrySize.
	ErrTooLarge = errors.New("walq/log: entry too large")

	// ErrNotLog is returned by Open for a directory that holds files but no
	// walq log.
	ErrNotLog = errors.New("walq/log: not a walq directory")

	// ErrVanished is returned by a read-only log's Open, Refresh, Iterate,
	// Replay and Read when a segment file it was about to read is gone: the
	// writer's TruncateFront removed it. The error also wraps the file
	// system's error (so it matches fs.ErrNotExist too) and names the
	// segment. The entries asked for are no longer in the log: Refresh
	// and read again from the new FirstIndex.
	ErrVanished = errors.New("walq/log: segment removed by the writer while reading")
)

// CorruptError locates corruption: the segment file, the byte offset of the
// entry within it, the entry's log index and, when one record of an entry
// failed to decode, that record's position. It matches ErrCorrupt with
// errors.Is.
type CorruptError struct {
	// Segment is the segment file's path, empty when unknown.
	Segment string
	// Offset is the byte offset of the entry's frame in Segment, or -1.
	Offset int64
	// Index is the log index of the entry, or 0 when unknown.
	Index uint64
	// Record is the position of the failing record within the entry, or -1.
	Record int
	// Reason says what is wrong.
	Reason string
	// Err is an underlying cause, if any (for example ErrVersion).
	Err error
}

// Error describes the corruption and where it is: "walq/log: corrupt log:
// <location>: <reason>: <cause>", the parts that are unknown left out.
func (e *CorruptError) Error() string {
	s := "walq/log: corrupt log"
	if loc := e.Location(); loc != "" {
		s += ": " + loc
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Location says where the corruption is, as "segment S offset O index I
// record R" with the unknown parts left out; it is empty when nothing is
// known. Every description of a corruption's place uses it.
func (e *CorruptError) Location() string {
	var b strings.Builder
	add := func(format string, arg any) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, format, arg)
	}
	if e.Segment != "" {
		add("segment %s", e.Segment)
	}
	if e.Offset >= 0 {
		add("offset %d", e.Offset)
	}
	if e.Index != 0 {
		add("index %d", e.Index)
	}
	if e.Record >= 0 {
		add("record %d", e.Record)
	}
	return b.String()
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying cause.
func (e *CorruptError) Unwrap() error { return e.Err }

// corruptf builds a CorruptError with no location yet; callers that know the
// segment and offset fill them in with locate.
func corruptf(err error, format string, args ...any) *CorruptError {
	return &CorruptError{Offset: -1, Record: -1, Reason: fmt.Sprintf(format, args...), Err: err}
}

// corruptAt builds a CorruptError located at the entry at index in segment,
// whose frame is at offset (-1 if unknown), with no record position.
func corruptAt(segment string, offset int64, index uint64, reason string, err error) *CorruptError {
	return &CorruptError{Segment: segment, Offset: offset, Index: index, Record: -1, Reason: reason, Err: err}
}

// locate fills in the location of a *CorruptError found in err, leaving other
// errors alone.
func locate(err error, segment string, offset int64, index uint64) error {
	var ce *CorruptError
	if errors.As(err, &ce) {
		if ce.Segment == "" {
			ce.Segment = segment
		}
		if ce.Offset < 0 {
			ce.Offset = offset
		}
		if ce.Index == 0 {
			ce.Index = index
		}
	}
	return err
}
