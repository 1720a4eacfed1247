package queue

import (
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/recovery"
)

// RecoveryReport says what Open found and did.
type RecoveryReport struct {
	// Entries and Records count the log entries and the records in them
	// that were replayed; Bytes is the size of the segment files.
	Entries int
	Records int
	Bytes   int64
	// FirstIndex and LastIndex bound the replayed log.
	FirstIndex uint64
	LastIndex  uint64
	// Jobs counts the jobs in each state after recovery, ready and
	// scheduled told apart by the clock at Open. Every state has an
	// entry.
	Jobs map[JobState]int
	// Repaired describes the torn tail cut from the last segment, nil if
	// there was none.
	Repaired *Repair
	// Voided counts leases of the previous process that were voided (each
	// counts as an attempt); PoisonPills counts those that moved their job
	// to the dead-letter queue because its attempts were used up.
	Voided      int
	PoisonPills int
	// Duration is how long Open took.
	Duration time.Duration
	// Restarts counts replays of a read-only Open that started again
	// because the writer's compaction removed segments they had yet to
	// read.
	Restarts int
	// Checkpoint says whether Open started from the index checkpoint and
	// replayed only the entries after it (Entries and Records then count
	// those), or replayed the whole log, and why.
	Checkpoint CheckpointReport
}

// Repair describes a torn tail that Open cut from the last segment: the
// bytes of a write that a crash interrupted, never acknowledged.
type Repair struct {
	// Segment is the segment file's path.
	Segment string
	// Offset is where the segment was cut: the end of its last whole
	// entry.
	Offset int64
	// Bytes is how many bytes were cut.
	Bytes int64
	// Saved is the file that keeps a copy of the cut bytes.
	Saved string
	// Reason says why the first cut entry was not whole.
	Reason string
}

// Recovery returns the report of what Open found and did (Open also logs
// what matters in it: voided leases, a repaired tail).
func (q *Queue) Recovery() RecoveryReport {
	r := q.report
	r.Jobs = make(map[JobState]int, len(q.report.Jobs))
	for s, n := range q.report.Jobs {
		r.Jobs[s] = n
	}
	if q.report.Repaired != nil {
		c := *q.report.Repaired
		r.Repaired = &c
	}
	return r
}

// newReport converts recovery's report, counting x's jobs by state as they
// are right after Open.
func newReport(rep *recovery.Report, x *index.Index) RecoveryReport {
	r := RecoveryReport{Entries: rep.Entries, Records: rep.Records, Bytes: rep.Bytes,
		FirstIndex: rep.FirstIndex, LastIndex: rep.LastIndex, Voided: rep.Voided,
		PoisonPills: rep.PoisonPills, Duration: rep.Duration, Restarts: rep.Restarts,
		Checkpoint: newCheckpointReport(rep.Checkpoint),
		Jobs:       make(map[JobState]int, len(JobStates()))}
	for _, s := range JobStates() {
		r.Jobs[s] = 0
	}
	for _, iq := range x.Queues() {
		r.Jobs[StateReady] += iq.Ready()
		r.Jobs[StateScheduled] += iq.Scheduled()
		r.Jobs[StateLeased] += iq.Count(index.Leased)
		r.Jobs[StateCompleted] += iq.Count(index.Completed)
		r.Jobs[StateDead] += iq.Count(index.Dead)
		r.Jobs[StateCancelled] += iq.Count(index.Cancelled)
	}
	if t := rep.Repaired; t != nil {
		r.Repaired = &Repair{Segment: t.Segment, Offset: t.Offset, Bytes: t.Bytes, Saved: t.Saved, Reason: t.Reason}
	}
	return r
}
