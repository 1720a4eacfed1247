// Package recovery opens a walq directory: it opens the log (which repairs a
// torn tail), replays every record through the index's fold, voids the
// leases of the process that last had the directory open, and reports what
// it did. It owns the poison-pill rule: a lease voided at open counts as an
// attempt, and a job whose attempts are used up that way goes to the
// dead-letter queue instead of running again. It also owns the rule for
// which prefix of a log replays (ReplayablePrefix), which Salvage uses to
// cut a log whose checksums are valid but whose records do not replay.
//
// Open starts from the index checkpoint (CHECKPOINT, see
// index.WriteCheckpoint) when it names an entry of this log with the same
// bytes, and replays only the entries after it; on any damage or mismatch
// it replays the whole log and says why in Report.Checkpoint. The
// checkpoint is never trusted over the log. WriteCheckpoint writes one
// crash-safely.
//
// A read-only open replays beside a writer that may compact the log: when
// a segment it has yet to read is removed, it starts again from the new
// first segment (see Replay).
//
// recovery never reads the clock: the time of open is passed in. It is
// internal to walq and may change.
package recovery
