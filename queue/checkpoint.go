package queue

import (
	"time"

	"github.com/walq/walq/internal/fault"
	"github.com/walq/walq/recovery"
)

// CheckpointReport says whether Open loaded the index checkpoint (a copy of
// the folded state written beside the log) and replayed only the entries
// after it, or replayed the whole log, and why.
type CheckpointReport struct {
	// Used is true when Open started from the checkpoint.
	Used bool
	// Reason says why it was not used: "no checkpoint", or the damage or
	// the mismatch with the log that was found. Empty when Used.
	Reason string
	// Index is the last log entry the checkpoint covers; Jobs and Bytes
	// are its job count and size. Zero when it could not be decoded.
	Index uint64
	Jobs  int
	Bytes int64
}

func newCheckpointReport(c recovery.CheckpointReport) CheckpointReport {
	return CheckpointReport{Used: c.Used, Reason: c.Reason, Index: c.Index, Jobs: c.Jobs, Bytes: c.Bytes}
}

// checkpointMinRecords is how many records must have been applied since
// the last checkpoint before the background writes another; it also must
// be at least the number of live jobs, so that the bytes written for
// checkpoints stay within about 72 bytes per record written (a checkpoint
// costs about 72 bytes per live job), and their stalls proportional to the
// work done.
const checkpointMinRecords = 256 << 10

// checkpointDue reports whether enough has been applied since the last
// checkpoint for the background to write one. The caller holds q.mu.
func (q *Queue) checkpointDue() bool {
	since := q.idx.Records() - q.ckptRecords
	return q.opts.CompactRatio >= 0 && (q.ckptPending || since >= max(checkpointMinRecords, q.idx.Len()))
}

// checkpointDueAtClose is checkpointDue with a lower bar: a checkpoint
// written at Close saves the next Open a replay of everything since.
func (q *Queue) checkpointDueAtClose() bool {
	since := q.idx.Records() - q.ckptRecords
	return q.ckptPending || since >= max(1024, q.idx.Len()/8)
}

// checkpointStats describes one checkpoint write.
type checkpointStats struct {
	Index    uint64
	Jobs     int
	Bytes    int64
	Stall    time.Duration // q.mu held and new calls held back
	Duration time.Duration // the whole write, fsyncs included
}

// writeCheckpoint writes the index checkpoint. It must describe exactly
// the state after entries 1..N of the log and nothing else, but entries
// are applied out of log order (DESIGN.md, "Visibility order"): so it
// holds back new calls (begin waits while ckptHold is set), waits until no
// entry is in flight (submitted and not yet applied), and encodes the
// index under q.mu, releasing both as soon as the index has been read; the
// fsyncs run without them. Reservations are not state: a reserved job is
// written as its records left it. Pause, Resume and compaction's
// checkpoint record go through commit and are in flight like any entry;
// carries and the retention sweep do not run, because callers hold
// compactMu. A failed log, or a queue stopped by a bug, writes nothing.
//
// Without hold it does not wait: when an entry is in flight it writes
// nothing, marks the checkpoint pending and asks the background to write
// it (compaction uses this, so that Compact never waits for entries that
// the caller itself may hold in flight).
func (q *Queue) writeCheckpoint(hold bool) (checkpointStats, error) {
	var st checkpointStats
	start := time.Now()
	q.mu.Lock()
	if !hold && len(q.inflight) > 0 {
		q.ckptPending = true
		select {
		case q.compactCh <- struct{}{}:
		default:
		}
		q.mu.Unlock()
		return st, nil
	}
	q.ckptHold = true
	for len(q.inflight) > 0 {
		q.cond.Wait()
	}
	released := false
	release := func() {
		if !released {
			released = true
			q.ckptHold = false
			st.Stall = time.Since(start)
			q.cond.Broadcast()
			q.mu.Unlock()
		}
	}
	defer release()
	if q.log.Failed() != nil || q.broken != nil || q.log.LastIndex() == 0 {
		return st, nil
	}
	st.Index, st.Jobs = q.log.LastIndex(), q.idx.Len()
	records := q.idx.Records()
	n, err := recovery.WriteCheckpoint(q.log, q.idx, q.checkpointFault, func() {
		q.ckptRecords, q.ckptPending = records, false
		release()
	})
	st.Bytes, st.Duration = n, time.Since(start)
	if err != nil {
		return st, fromLower("checkpoint", err)
	}
	q.opts.Logger.Debug("walq: checkpoint written", "dir", q.dir, "index", st.Index,
		"jobs", st.Jobs, "bytes", st.Bytes, "stall", st.Stall, "duration", st.Duration)
	return st, nil
}

// checkpointFault asks the test's fault injector about a step of writing
// the checkpoint (see inject).
func (q *Queue) checkpointFault(step string) error {
	return q.inject(fault.Op{Kind: fault.Checkpoint, Step: step})
}

// checkpointQuietly writes a checkpoint where one is an optimisation (after
// compaction, in the background, at Close): a failure is logged, and the
// next Open replays more of the log. A failed write is tried again only
// once as many records have been applied again (ckptRecords moved on when
// the index was read), so that a full disk is not hammered with attempts.
func (q *Queue) checkpointQuietly(when string, hold bool) {
	if _, err := q.writeCheckpoint(hold); err != nil {
		q.opts.Logger.Warn("walq: checkpoint failed; the next open replays more of the log",
			"dir", q.dir, "when", when, "err", err)
	}
}
