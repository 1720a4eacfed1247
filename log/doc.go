// Package log owns walq's bytes on disk: a crash-safe, group-committed,
// append-only log of job records in a directory of segment files. It never
// interprets records (that is the index's job) and never reads a clock.
// It is internal to walq and may change; queue is the package with a
// compatibility promise.
//
// # Directory
//
//	DIR/FORMAT                   "walq 1\n": marks a walq log and its format version
//	DIR/LOCK                     flock(2)ed by the one writer; holds its pid
//	DIR/00000000000000000001     segment files, named by their first log index
//	DIR/00000000000000004711     (github.com/tidwall/wal's naming)
//	DIR/broken-*                 bytes cut by tail repair or Salvage, kept for forensics
//
// # Segment format
//
// A segment is a sequence of frames, each one log entry (tidwall/wal's
// binary framing); entries have consecutive log indexes starting at the
// index in the segment's name:
//
//	+-----------------+------------------------------------------------+
//	| length (uvarint)| entry (length bytes)                           |
//	+-----------------+------------------------------------------------+
//
// # Entry format
//
//	+---------------+-----------+--------------------------------------+
//	| CRC-32C (4 B) | version 1 | records: msgpack array of N maps     |
//	+---------------+-----------+--------------------------------------+
//
//	field     size      meaning
//	CRC-32C   4 bytes   little-endian Castagnoli CRC of bytes [4:] followed
//	                    by the entry's log index as 8 little-endian bytes
//	version   1 byte    FormatVersion (1); a larger value is refused
//	records   rest      msgpack array (N >= 1) of records; each record is a
//	                    msgpack map from a small integer field tag to a value,
//	                    holding only the non-zero fields of the Record
//
// Field tags (part of the format; never change or reuse): 1 kind, 2 job,
// 3 at, 4 queue, 5 key, 6 payload (bin), 7 priority, 8 run-at,
// 9 max-attempts, 10 backoff-base, 11 backoff-cap, 12 timeout, 13 attempt,
// 14 deadline, 15 error, 16 result (bin), 17 state, 18 history (array of
// attempts, each [started, ended, outcome, error] or [started, ended,
// outcome, error, attempt-number, lease-number]; the short form is older
// walq's, or an attempt whose numbers are both zero), 19 created,
// 20 finished, 21 next-id, 22 meta (a msgpack map of str keys to str
// values, the job's metadata; written, when present, immediately after the
// payload, so that a reader that has located the payload finds it there),
// 23 spec, 24 group, 25 progress, 26 note, 27 flags (bits: FlagReleaseKeyOnDeath,
// FlagKeyReleased).
// Integers are msgpack's shortest form; times are Unix nanoseconds.
//
// An entry is the unit of atomicity: an operation that must be all or
// nothing (a batch enqueue, a completion with its follow-up jobs) is one
// entry, so no crash and no segment boundary can split it.
//
// An entry is valid only if its length is within MaxEntrySize, its checksum
// matches for its index, and its version is known; a zero-length or
// all-zero entry never matches. Only then are its records decoded, and any
// decoding failure is corruption too. Mixing the index into the checksum
// makes stale bytes (left over from an older segment, or an entry at the
// wrong position) fail.
//
// # Durability
//
// Appends are group-committed: a committer goroutine takes every entry
// queued since its last write, writes them with one tidwall/wal WriteBatch
// and (in Sync mode) one fsync on its own handle of the tail segment, then
// releases every appender in the group. Creating a segment is followed by a
// directory fsync before anyone is acknowledged. A failed write or fsync
// stops the log (fail-stop): appends return ErrFailed wrapping the cause
// until Recover cuts the files back to the acknowledged prefix and reopens.
//
// At Open a writer cuts a torn tail from the last segment (an incomplete
// frame, or invalid bytes with nothing valid after them), keeping the cut
// bytes in a broken-* file. Corruption anywhere else is an error naming
// segment, offset and index; Salvage keeps the valid prefix on request.
package log
