package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// CompactStats says what a compaction did.
type CompactStats struct {
	// At is when it started, on the queue's clock.
	At time.Time
	// Duration is how long it took.
	Duration time.Duration
	// Purged counts finished jobs forgotten because their retention ended
	// (and dead jobs over the dead-letter limits).
	Purged int
	// Carried counts live jobs restated at the tail; CarriedBytes is the
	// size of their payloads and results.
	Carried      int
	CarriedBytes int64
	// SegmentsRemoved counts segment files dropped from the front.
	SegmentsRemoved int
	// SizeBefore and SizeAfter are the log's size on disk.
	SizeBefore, SizeAfter int64
}

// carryChunk is how many jobs one compaction step restates while holding the
// queue's lock, which bounds how long enqueue and lease can stall.
const carryChunk = 256

// Compact enforces retention (completed and cancelled jobs past
// Options.KeyRetention, dead jobs past Options.DeadMaxAge or
// Options.DeadMaxCount are purged), then restates every live job whose
// records sit in segments before the tail segment as a carry record at the
// tail, and removes those segments. Every step is crash-safe: the old
// segments go only after the carry records are durable, and a reopen at any
// point yields the same job states. The queue keeps serving while it runs;
// it works in small steps. Compactions run one at a time.
func (q *Queue) Compact(ctx context.Context) (CompactStats, error) {
	if q.opts.ReadOnly {
		return CompactStats{}, ErrReadOnly
	}
	q.compactMu.Lock()
	defer q.compactMu.Unlock()
	q.mu.Lock()
	if err := q.enterLocked(); err != nil {
		q.mu.Unlock()
		return CompactStats{}, err
	}
	q.mu.Unlock()
	defer q.ops.Done()

	start := time.Now()
	st := CompactStats{At: q.opts.Clock.Now(), SizeBefore: q.log.Size()}
	err := q.compact(ctx, &st)
	st.Duration = time.Since(start)
	st.SizeAfter = q.log.Size()
	if err != nil {
		return st, fmt.Errorf("walq: compact: %w", err)
	}
	q.mu.Lock()
	q.lastCompact = st
	q.mu.Unlock()
	return st, nil
}

func (q *Queue) compact(ctx context.Context, st *CompactStats) error {
	var err error
	if st.Purged, err = q.sweep(ctx); err != nil {
		return err
	}
	firsts := q.log.SegmentFirsts()
	if len(firsts) < 2 {
		return nil
	}
	// Everything created before the tail segment is restated; the tail
	// segment and everything after it stays.
	cut := firsts[len(firsts)-1]
	if err := q.carry(ctx, cut, st); err != nil {
		return err
	}
	if err := q.hook("checkpoint"); err != nil {
		return err
	}
	if err := q.checkpoint(); err != nil {
		return err
	}
	if err := q.hook("truncate"); err != nil {
		return err
	}
	// Readers of payloads hold readGate from the moment they copy a
	// location until they have read it, so no segment goes under them.
	q.readGate.Lock()
	first, err := q.log.TruncateFront(cut)
	q.readGate.Unlock()
	if err != nil {
		return err
	}
	for _, f := range firsts {
		if f < first {
			st.SegmentsRemoved++
		}
	}
	q.mu.Lock()
	q.idx.TidyCreated()
	q.mu.Unlock()
	return nil
}

// hook runs the test fault-injection hook for a compaction step.
func (q *Queue) hook(step string) error {
	if q.opts.compactHook == nil {
		return nil
	}
	return q.opts.compactHook(step)
}

// carry restates, in chunks, every live job created before index cut.
func (q *Queue) carry(ctx context.Context, cut uint64, st *CompactStats) error {
	q.mu.Lock()
	end := q.idx.Created()
	q.mu.Unlock()
	var busy []uint64
	for pos := 0; pos < end; {
		if err := q.stopping(ctx); err != nil {
			return err
		}
		q.mu.Lock()
		var jobs []*index.Job
		for ; pos < end && len(jobs) < carryChunk; pos++ {
			j := q.idx.CreatedAt(pos)
			switch {
			case j == nil || j.Payload.Index >= cut:
			case j.Busy:
				busy = append(busy, j.ID)
			default:
				q.idx.Reserve(j)
				jobs = append(jobs, j)
			}
		}
		err := q.carryJobs(jobs, st)
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
	// Jobs that had an operation in flight: wait for each, then restate it
	// unless that operation already did (a carry, or a purge).
	for _, id := range busy {
		if err := q.stopping(ctx); err != nil {
			return err
		}
		q.mu.Lock()
		j := q.waitBusy(id)
		var err error
		if j != nil && j.Payload.Index < cut {
			q.idx.Reserve(j)
			err = q.carryJobs([]*index.Job{j}, st)
		}
		q.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// stopping returns why compaction must stop early, or nil.
func (q *Queue) stopping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-q.done:
		return ErrClosed
	default:
		return nil
	}
}

// carryJobs writes carry records for reserved jobs. The caller holds q.mu;
// it is released while payloads are read and while the entry is made
// durable.
func (q *Queue) carryJobs(jobs []*index.Job, st *CompactStats) error {
	if len(jobs) == 0 {
		return nil
	}
	type locs struct{ payload, result index.Loc }
	ls := make([]locs, len(jobs))
	for i, j := range jobs {
		ls[i].payload = j.Payload
		if j.X != nil && j.X.HasResult {
			ls[i].result = j.X.Result
		}
	}
	q.readGate.RLock()
	q.mu.Unlock()
	recs := make([]wlog.Record, len(jobs))
	var err error
	for i, j := range jobs {
		var payload, result []byte
		if payload, err = q.readLoc(ls[i].payload); err != nil {
			break
		}
		if result, err = q.readLoc(ls[i].result); err != nil {
			break
		}
		recs[i] = carryRecord(j, payload, result)
		st.CarriedBytes += int64(len(payload) + len(result))
	}
	q.readGate.RUnlock()
	q.mu.Lock()
	if err == nil {
		err = q.hook("carry")
	}
	if err != nil {
		q.unreserve(jobs)
		return err
	}
	if err := q.commit(recs, jobs); err != nil {
		return err
	}
	st.Carried += len(jobs)
	return nil
}

// carryRecord restates a job's whole state. The job is reserved, so its
// fields are stable although q.mu is not held.
func carryRecord(j *index.Job, payload, result []byte) wlog.Record {
	if payload == nil {
		payload = []byte{}
	}
	r := wlog.Record{
		Kind:        wlog.KindCarry,
		Job:         j.ID,
		At:          j.Created,
		Created:     j.Created,
		Queue:       j.Queue.Name,
		Key:         j.Key,
		Payload:     payload,
		Priority:    int64(j.Priority),
		RunAt:       j.RunAt,
		MaxAttempts: int64(j.MaxAttempts),
		Attempt:     int64(j.Attempt),
		Deadline:    j.Deadline,
		State:       uint8(j.State),
	}
	if x := j.X; x != nil {
		r.BackoffBase, r.BackoffCap, r.Timeout = x.BackoffBase, x.BackoffCap, x.Timeout
		r.History = x.History
		r.Error, r.Finished = x.Error, x.Finished
		if x.HasResult {
			r.Result = result
			if r.Result == nil {
				r.Result = []byte{}
			}
		}
	}
	return r
}

// checkpoint restates what is not a job: the next job ID and paused queues.
func (q *Queue) checkpoint() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	recs := []wlog.Record{{Kind: wlog.KindCheckpoint, At: now, NextID: q.nextID}}
	for _, iq := range q.idx.Queues() {
		if iq.Paused {
			recs = append(recs, wlog.Record{Kind: wlog.KindPaused, At: now, Queue: iq.Name})
		}
	}
	return q.commit(recs, nil)
}

// sweep purges finished jobs whose retention is over and dead jobs beyond
// the dead-letter limits. It returns how many it purged.
func (q *Queue) sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if err := q.stopping(ctx); err != nil {
			return total, err
		}
		q.mu.Lock()
		ids := q.expiredIDs(q.now(), 4096)
		q.mu.Unlock()
		if len(ids) == 0 {
			return total, nil
		}
		if err := q.Purge(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
	}
}

// expiredIDs returns up to n jobs that retention or the dead-letter limits
// say must go.
func (q *Queue) expiredIDs(now int64, n int) []uint64 {
	var ids []uint64
	q.idx.Finished(func(j *index.Job) bool {
		if j.Finished()+int64(q.opts.KeyRetention) > now {
			return false // finished later than this one: not expired either
		}
		if !j.Busy {
			ids = append(ids, j.ID)
		}
		return len(ids) < n
	})
	if q.opts.DeadMaxAge == 0 && q.opts.DeadMaxCount == 0 {
		return ids
	}
	dead := q.sortedDead(DeadFilter{})
	over := len(dead) - q.opts.DeadMaxCount
	for i, j := range dead {
		if len(ids) >= n {
			break
		}
		tooMany := q.opts.DeadMaxCount > 0 && i < over
		tooOld := q.opts.DeadMaxAge > 0 && j.Finished()+int64(q.opts.DeadMaxAge) <= now
		if (tooMany || tooOld) && !j.Busy {
			ids = append(ids, j.ID)
		}
	}
	return ids
}

// compactDue reports whether the log has grown past the automatic
// compaction threshold: CompactRatio times the live bytes, plus two
// segments. The caller holds q.mu.
func (q *Queue) compactDue() bool {
	if q.opts.CompactRatio < 0 {
		return false
	}
	seg := int64(q.log.SegmentSize())
	return q.log.Segments() > 2 && q.log.Size() > int64(q.opts.CompactRatio*float64(q.idx.LiveBytes()))+2*seg
}

// maintain runs compaction in the background: when a commit finds it due,
// and every Options.MaintenanceInterval (which also enforces retention).
func (q *Queue) maintain() {
	defer q.bg.Done()
	t := q.opts.Clock.Ticker(q.opts.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-q.done:
			return
		case <-q.compactCh:
		case <-t.C:
		}
		if _, err := q.Compact(context.Background()); err != nil && q.stopping(context.Background()) == nil {
			q.opts.Logger.Warn("walq: background compaction failed", "dir", q.dir, "err", err)
		}
	}
}
