package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
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
// it works in small steps. Compactions run one at a time. It is an advanced
// call: the background compactor runs by itself (see Options.CompactRatio
// and MaintenanceInterval).
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

	return q.runCompaction(ctx, true)
}

// runCompaction runs one compaction (Compact holds compactMu and a call
// slot). Unless full, it only enforces retention, and carries and
// truncates only when compactDue says the garbage warrants it: restating
// an unchanged live set on every maintenance tick would multiply the bytes
// written for nothing. A failure is counted and kept for Stats.
func (q *Queue) runCompaction(ctx context.Context, full bool) (CompactStats, error) {
	start := time.Now()
	st := CompactStats{At: q.opts.Clock.Now(), SizeBefore: q.log.Size()}
	err := q.compact(ctx, &st, full)
	st.Duration = time.Since(start)
	st.SizeAfter = q.log.Size()
	q.mu.Lock()
	defer q.mu.Unlock()
	if err != nil {
		err = fromLower("compact", err)
		if q.stoppingLocked(ctx) == nil {
			q.compactFailures++
			q.compactErr, q.compactErrAt = err, st.At
			q.writeCompactStatus()
		}
		return st, err
	}
	if q.compactErr != nil {
		q.compactErr = nil
		q.writeCompactStatus()
	}
	if st.Purged > 0 || st.Carried > 0 || st.SegmentsRemoved > 0 || full {
		q.lastCompact = st
	}
	return st, nil
}

// compactStatusName is the file in the queue's directory that tells other
// processes (walq stats) that the writer's last compaction failed. It
// exists only while that is so; it is a diagnostic, never read by Open.
const compactStatusName = "COMPACTION-FAILED"

// compactStatus is the content of compactStatusName.
type compactStatus struct {
	Failures int       `json:"failures"`
	Error    string    `json:"error"`
	At       time.Time `json:"at"`
}

// writeCompactStatus writes (or, after a success, removes) the compaction
// status file. It is best effort: a queue whose compaction failed may be
// on a failing disk, and the status is in Stats and the logs as well. The
// caller holds q.mu.
func (q *Queue) writeCompactStatus() {
	path := filepath.Join(q.dir, compactStatusName)
	if q.compactErr == nil {
		os.Remove(path)
		return
	}
	b, _ := json.Marshal(compactStatus{Failures: q.compactFailures, Error: q.compactErr.Error(), At: q.compactErrAt})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		os.Rename(tmp, path)
	}
}

// readCompactStatus fills st's compaction failure fields from the status
// file a writer left, for a read-only queue.
func (q *Queue) readCompactStatus(st *Stats) {
	b, err := os.ReadFile(filepath.Join(q.dir, compactStatusName))
	if err != nil {
		return
	}
	var cs compactStatus
	if json.Unmarshal(b, &cs) == nil {
		st.CompactFailures, st.LastCompactError, st.LastCompactErrorAt = cs.Failures, cs.Error, cs.At
	}
}

func (q *Queue) compact(ctx context.Context, st *CompactStats, full bool) error {
	var err error
	if st.Purged, err = q.sweep(ctx); err != nil {
		return err
	}
	if !full {
		q.mu.Lock()
		due := q.compactDue()
		q.mu.Unlock()
		if !due {
			return nil
		}
	}
	cut, end, gen, ok := q.compactCut()
	if !ok {
		return nil
	}
	// The index keeps the creation order only while compaction walks it
	// (see index.Created), whether or not compaction succeeds.
	defer func() {
		q.mu.Lock()
		q.idx.TidyCreated()
		q.mu.Unlock()
	}()
	if err := q.carry(ctx, cut, end, st); err != nil {
		return err
	}
	if err := q.compactFault("checkpoint"); err != nil {
		return err
	}
	if err := q.checkpoint(); err != nil {
		return err
	}
	if err := q.compactFault("truncate"); err != nil {
		return err
	}
	// Readers of payloads hold readGate from the moment they copy a
	// location until they have read it, so no segment goes under them.
	// The log holds it only while it removes files, not across its
	// fsyncs: readers never wait for the disk here (see gateRead).
	first, err := q.log.TruncateFrontAtUnder(gen, cut, &q.readGate)
	if errors.Is(err, wlog.ErrStale) {
		// A write failed and the log recovered while the carries were
		// written: the failure is what the caller needs to know.
		return fmt.Errorf("%w: the log recovered from a failure during compaction, which removed nothing (%w)", ErrFailed, err)
	}
	if err != nil {
		return err
	}
	st.SegmentsRemoved = q.segmentsBefore(first)
	// The index now locates everything in the shortened log: a checkpoint
	// of it lets the next Open skip replaying the carries.
	q.checkpointQuietly("compaction", false)
	return nil
}

// compactCut chooses where compaction cuts the log: the first index of the
// newest segment that starts at or before both the tail segment and the
// oldest entry still in flight. This is the rule that keeps compaction and
// in-flight entries apart: an entry that is submitted but not yet applied
// changes no job of the index, so no carry record could restate it, and
// the cut must never pass it. Entries submitted later get higher indexes
// than any segment's first, so they are never cut either. It also returns
// how many positions of the creation order the carry must visit: jobs
// created after this moment come from entries at or past the cut. The cut
// holds only while the log hands out indexes in order: a recovery of a
// failed log (recoverLog, under q.mu like this) reuses the indexes after
// the last acknowledged entry, so the truncation names the log generation
// it was chosen in and is refused in another. ok is false when no segment
// would go.
func (q *Queue) compactCut() (cut uint64, end int, gen uint64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	firsts := q.log.SegmentFirsts()
	gen = q.log.Generation()
	if len(firsts) < 2 {
		return 0, 0, 0, false
	}
	// Never past the oldest entry in flight, nor past the acknowledged
	// entries: a group that failed may have started a segment the log
	// lists until it recovers, and a recovery hands its indexes out again.
	limit := min(firsts[len(firsts)-1], q.log.LastIndex()+1)
	if low, busy := q.minInflight(); busy && low < limit {
		limit = low
	}
	for _, f := range firsts {
		if f <= limit {
			cut = f
		}
	}
	if cut <= firsts[0] {
		return 0, 0, 0, false
	}
	q.segsBefore = firsts
	return cut, q.idx.Created(), gen, true
}

// segmentsBefore counts the segments of the last compactCut that start
// before first, that is, those TruncateFront removed.
func (q *Queue) segmentsBefore(first uint64) int {
	n := 0
	for _, f := range q.segsBefore {
		if f < first {
			n++
		}
	}
	return n
}

// compactFault asks the test's fault injector about a compaction step (see
// inject).
func (q *Queue) compactFault(step string) error {
	return q.inject(fault.Op{Kind: fault.Compact, Step: step})
}

// carry restates, in chunks bounded by count and bytes, every live job
// created before index cut; end is the compactCut's creation-order bound.
func (q *Queue) carry(ctx context.Context, cut uint64, end int, st *CompactStats) error {
	var busy []uint64
	for pos := 0; pos < end; {
		if err := q.stopping(ctx); err != nil {
			return err
		}
		q.mu.Lock()
		var jobs []*index.Job
		size := 0
		for ; pos < end && len(jobs) < carryChunk && size < carryBytes; pos++ {
			j := q.idx.CreatedAt(pos)
			switch {
			case j == nil || j.Payload.Index >= cut:
			case j.Busy:
				busy = append(busy, j.ID)
			default:
				q.idx.Reserve(j)
				jobs = append(jobs, j)
				size += carrySize(j)
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

// carryBytes bounds the bytes one carry entry restates (one job larger than
// this still goes alone), so that compaction never builds an entry over the
// log's entry size limit, whatever the payload sizes.
const carryBytes = 4 << 20

// carrySize estimates the bytes a job's carry record takes.
func carrySize(j *index.Job) int {
	n := 128 + int(j.Payload.Len) + len(j.Key()) + len(j.ReleasedKey())
	if x := j.X; x != nil {
		n += int(x.Result.Len) + len(x.Error) + 64*len(x.History)
		for _, a := range x.History {
			n += len(a.Error)
		}
	}
	return n
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

// stoppingLocked is stopping for a caller that holds q.mu.
func (q *Queue) stoppingLocked(ctx context.Context) error {
	if q.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// carryJobs writes carry records for reserved jobs. The caller holds q.mu;
// it is released while payloads are read and while the entry is made
// durable.
func (q *Queue) carryJobs(jobs []*index.Job, st *CompactStats) error {
	if len(jobs) == 0 {
		return nil
	}
	type locs struct {
		payload, result index.Loc
		key             string // read under q.mu: Key reads a map of the job's queue
	}
	ls := make([]locs, len(jobs))
	for i, j := range jobs {
		ls[i].key = j.Key()
		ls[i].payload = j.Payload
		if j.X != nil && j.X.HasResult {
			ls[i].result = j.X.Result
		}
	}
	// Only compaction takes readGate for writing, and the caller holds
	// compactMu: this never waits with q.mu held.
	q.readGate.RLock()
	q.mu.Unlock()
	recs := make([]wlog.Record, len(jobs))
	var err error
	for i, j := range jobs {
		var payload, meta, result []byte
		if payload, meta, err = q.readPayload(ls[i].payload); err != nil {
			break
		}
		if result, err = q.readLoc(ls[i].result); err != nil {
			break
		}
		recs[i] = carryRecord(j, ls[i].key, payload, result)
		recs[i].Meta = meta
		st.CarriedBytes += int64(len(payload) + len(result) + len(meta))
	}
	q.readGate.RUnlock()
	q.mu.Lock()
	if err == nil {
		err = q.compactFault("carry")
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
// fields are stable although q.mu is not held; its key, which lives in a
// map of its queue that other calls change, the caller read under q.mu.
func carryRecord(j *index.Job, key string, payload, result []byte) wlog.Record {
	if payload == nil {
		payload = []byte{}
	}
	r := wlog.Record{
		Kind:        wlog.KindCarry,
		Job:         j.ID,
		At:          j.Created,
		Created:     j.Created,
		Queue:       j.Queue.Name,
		Key:         key,
		Payload:     payload,
		Priority:    int64(j.Priority),
		RunAt:       j.RunAt,
		MaxAttempts: int64(j.MaxAttempts),
		Attempt:     int64(j.Attempt),
		Deadline:    j.Deadline(),
		State:       uint8(j.State),
		Flags:       uint64(j.Flags),
	}
	if k := j.ReleasedKey(); k != "" {
		r.Key, r.Flags = k, r.Flags|wlog.FlagKeyReleased
	}
	if x := j.X; x != nil {
		f := j.Feat()
		r.Group, r.Progress, r.Note = f.Group, f.Progress, f.Note
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

// checkpoint restates what is not a job: the next job ID, paused queues and
// periodic schedules. It holds ctlMu, as Pause, Resume and every change of a
// schedule do until their entry is applied, so
// that no pause or resume is in flight while it reads the paused queues: a
// checkpoint written after a Resume's entry must not restate the pause the
// Resume undid.
func (q *Queue) checkpoint() error {
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	recs := []wlog.Record{{Kind: wlog.KindCheckpoint, At: now, NextID: q.nextID}}
	for _, iq := range q.idx.Queues() {
		if iq.Paused {
			recs = append(recs, wlog.Record{Kind: wlog.KindPaused, At: now, Queue: iq.Name})
		}
	}
	return q.restateSchedules(recs, now)
}

// sweep purges finished jobs whose retention is over and dead jobs beyond
// the dead-letter limits. It returns how many it purged. The jobs are
// chosen and reserved under one hold of q.mu, so a job that changed state
// since an earlier look is never purged, and never fails the sweep.
func (q *Queue) sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if err := q.stopping(ctx); err != nil {
			return total, err
		}
		q.mu.Lock()
		now := q.now()
		jobs := q.expired(now, 4096)
		recs := make([]wlog.Record, len(jobs))
		for i, j := range jobs {
			q.idx.Reserve(j)
			recs[i] = wlog.Record{Kind: wlog.KindPurged, Job: j.ID, At: now}
		}
		var err error
		if len(jobs) > 0 {
			err = q.commit(recs, jobs)
		}
		q.mu.Unlock()
		if err != nil || len(jobs) == 0 {
			return total, err
		}
		total += len(jobs)
	}
}

// expired returns up to n jobs, none busy, that retention or the
// dead-letter limits say must go. The caller holds q.mu.
func (q *Queue) expired(now int64, n int) []*index.Job {
	var out []*index.Job
	q.idx.Finished(func(j *index.Job) bool {
		if j.Finished()+int64(q.opts.KeyRetention) > now {
			return false // finished later than this one: not expired either
		}
		if !j.Busy {
			out = append(out, j)
		}
		return len(out) < n
	})
	if q.opts.DeadMaxAge == 0 && q.opts.DeadMaxCount == 0 {
		return out
	}
	dead := q.sortedDead(DeadFilter{})
	over := len(dead) - q.opts.DeadMaxCount
	for i, j := range dead {
		if len(out) >= n {
			break
		}
		tooMany := q.opts.DeadMaxCount > 0 && i < over
		tooOld := q.opts.DeadMaxAge > 0 && j.Finished()+int64(q.opts.DeadMaxAge) <= now
		if (tooMany || tooOld) && !j.Busy {
			out = append(out, j)
		}
	}
	return out
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
// and every Options.MaintenanceInterval (which enforces retention, and
// compacts only if due).
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
		if err := q.maintainOnce(); err != nil && q.stopping(context.Background()) == nil {
			q.opts.Logger.Warn("walq: background compaction failed", "dir", q.dir, "err", err)
		}
	}
}

// sweepAtOpen enforces retention once before Open returns, so that it holds
// even for a process that lives shorter than MaintenanceInterval. It costs
// a look at the oldest finished job when nothing has expired. A failure is
// the log's (a full disk, say): it is logged, and later calls report it.
func (q *Queue) sweepAtOpen() {
	q.compactMu.Lock()
	defer q.compactMu.Unlock()
	q.mu.Lock()
	if err := q.enterLocked(); err != nil {
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	defer q.ops.Done()
	if _, err := q.sweep(context.Background()); err != nil {
		q.opts.Logger.Warn("walq: retention at open failed", "dir", q.dir, "err", err)
	}
}

// maintainOnce is one background pass: retention, then compaction if due.
func (q *Queue) maintainOnce() error {
	q.compactMu.Lock()
	defer q.compactMu.Unlock()
	q.mu.Lock()
	if err := q.enterLocked(); err != nil {
		q.mu.Unlock()
		return nil // closed or stopped: nothing to maintain
	}
	q.mu.Unlock()
	defer q.ops.Done()
	_, err := q.runCompaction(context.Background(), false)
	q.mu.Lock()
	due := q.checkpointDue() && q.stoppingLocked(context.Background()) == nil
	q.mu.Unlock()
	if due {
		q.checkpointQuietly("background", true)
	}
	return err
}
