package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
	wlog "github.com/walq/walq/log"
)

// BatchEnqueued is the outcome of EnqueueBatchThen.
type BatchEnqueued struct {
	// ID is the batch's ID: the ID of its first job.
	ID uint64
	// Jobs are the member jobs' IDs, in order (consecutive).
	Jobs []uint64
}

// BatchResult is the payload of a batch's callback job, as JSON: each
// member's outcome, in member order.
type BatchResult struct {
	Batch uint64           `json:"batch"`
	Jobs  []BatchJobResult `json:"jobs"`
}

// BatchJobResult is one member's outcome in a BatchResult: "completed",
// "dead" (with the last error), "cancelled", or "purged" (forgotten before
// the batch ended, by Purge or retention).
type BatchJobResult struct {
	ID      uint64 `json:"id"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// BatchInfo describes a batch's progress.
type BatchInfo struct {
	ID uint64
	// Total counts the members; Finished those completed, dead, cancelled
	// or purged, and Completed, Dead and Cancelled break them down.
	Total, Finished, Completed, Dead, Cancelled int
	// Done reports that every member finished and the callback job was
	// enqueued; Callback is its ID while the queue holds it.
	Done     bool
	Callback uint64
}

// batchPrefix begins the idempotency key of a batch's callback job; the
// key ends with the batch ID.
const batchPrefix = "walq:batch:"

func batchKey(first uint64) string { return batchPrefix + strconv.FormatUint(first, 10) }

// batchRun is a batch's state in memory: the members known to have
// finished, as their transitions were submitted to the log (under q.mu, so
// in log order), and whether the entry enqueueing the callback has been
// submitted. Exactly one entry sees the last member finish and carries the
// callback.
type batchRun struct {
	finished map[uint64]BatchJobResult
	fired    bool
}

// EnqueueBatchThen enqueues jobs as a batch, atomically, with a callback
// job: when every member has finished (completed, dead or cancelled), then
// is enqueued, in the same atomic log entry as the last member's
// transition, with a BatchResult (JSON) as its payload, replacing
// then.Payload. It is enqueued exactly once, crashes included (its key is
// walq:batch:<batch ID>). Members may not have idempotency keys (so that
// every one is created); then may not set Key, RunAt or Delay. Get shows a
// member's batch and Batch its progress.
func (q *Queue) EnqueueBatchThen(ctx context.Context, jobs []NewJob, then NewJob) (BatchEnqueued, error) {
	if len(jobs) == 0 {
		return BatchEnqueued{}, fmt.Errorf("%w: EnqueueBatchThen: no jobs", ErrInvalid)
	}
	for i := range jobs {
		if jobs[i].Key != "" {
			return BatchEnqueued{}, fmt.Errorf("%w: job %d: a batch member has no Key", ErrInvalid, i)
		}
		if err := q.validate(&jobs[i]); err != nil {
			return BatchEnqueued{}, fmt.Errorf("job %d: %w", i, err)
		}
	}
	if then.Key != "" || !then.RunAt.IsZero() || then.Delay != 0 {
		return BatchEnqueued{}, fmt.Errorf("%w: then: Key, RunAt or Delay set", ErrInvalid)
	}
	if err := q.validate(&then); err != nil {
		return BatchEnqueued{}, fmt.Errorf("then: %w", err)
	}
	if err := q.beginWrite(ctx); err != nil {
		return BatchEnqueued{}, err
	}
	defer q.end()
	now := q.now()
	var e entry
	res := q.addJobs(&e, jobs, now)
	out := BatchEnqueued{ID: res[0].ID}
	for _, r := range res {
		out.Jobs = append(out.Jobs, r.ID)
	}
	b := index.Batch{First: out.ID, Count: len(jobs), Queue: then.Queue, Payload: []byte{},
		Priority: int64(then.Priority), MaxAttempts: int64(then.MaxAttempts), Timeout: int64(then.Timeout),
		Group: then.Group}
	if b.Queue == "" {
		b.Queue = DefaultQueue
	}
	if bo := then.Backoff; bo != nil {
		b.BackoffBase, b.BackoffCap = int64(bo.Base), int64(bo.Cap)
	}
	e.recs = append(e.recs, b.Record(now))
	if err := q.commitEntry(&e); err != nil {
		return BatchEnqueued{}, err
	}
	return out, nil
}

// Batch returns the progress of batch id (the ID of its first job), or
// ErrNotFound once neither the batch nor its callback is known.
func (q *Queue) Batch(ctx context.Context, id uint64) (*BatchInfo, error) {
	if err := q.beginRead(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	if b := q.idx.Batch(id); b != nil && b.First == id {
		return q.batchProgress(b), nil
	}
	bi := &BatchInfo{ID: id}
	cb := q.idx.Key(batchKey(id))
	// Copy the callback's payload location with readGate held (see
	// gateRead), looking the callback up again after a truncation.
	for cb != nil && !q.gateRead() {
		cb = q.idx.Key(batchKey(id))
	}
	if cb == nil {
		return nil, fmt.Errorf("%w: batch %d", ErrNotFound, id)
	}
	bi.Done, bi.Callback = true, cb.ID
	var r BatchResult
	if payloads, err := q.readLocs(cb.Payload); err == nil && json.Unmarshal(payloads[0], &r) == nil {
		bi.Total = len(r.Jobs)
	}
	q.countMembers(bi)
	return bi, nil
}

// batchProgress describes b, not yet ended. The caller holds q.mu.
func (q *Queue) batchProgress(b *index.Batch) *BatchInfo {
	bi := &BatchInfo{ID: b.First, Total: b.Count}
	q.countMembers(bi)
	return bi
}

// countMembers counts bi's members by outcome. The caller holds q.mu.
func (q *Queue) countMembers(bi *BatchInfo) {
	for k := 0; k < bi.Total; k++ {
		j := q.idx.Job(bi.ID + uint64(k))
		switch {
		case j == nil:
			bi.Finished++
		case j.State == index.Completed:
			bi.Finished, bi.Completed = bi.Finished+1, bi.Completed+1
		case j.State == index.Dead:
			bi.Finished, bi.Dead = bi.Finished+1, bi.Dead+1
		case j.State == index.Cancelled:
			bi.Finished, bi.Cancelled = bi.Finished+1, bi.Cancelled+1
		}
	}
}

// memberResult is a finished member's outcome as the index has it; ok is
// false for a member not finished.
func memberResult(j *index.Job, id uint64) (BatchJobResult, bool) {
	r := BatchJobResult{ID: id}
	switch {
	case j == nil:
		r.Outcome = "purged"
	case j.State == index.Completed:
		r.Outcome = "completed"
	case j.State == index.Dead:
		r.Outcome, r.Error = "dead", j.Error()
	case j.State == index.Cancelled:
		r.Outcome = "cancelled"
	default:
		return r, false
	}
	return r, true
}

// restoreBatches builds the batches' state at Open from the index, and
// enqueues the callback of any batch whose members all finished without it
// (the leases voided at Open can kill a batch's last job).
func (q *Queue) restoreBatches() {
	q.batches = map[uint64]*batchRun{}
	for _, b := range q.idx.Batches() {
		run := &batchRun{finished: map[uint64]BatchJobResult{}}
		for k := 0; k < b.Count; k++ {
			id := b.First + uint64(k)
			if r, ok := memberResult(q.idx.Job(id), id); ok {
				run.finished[id] = r
			}
		}
		q.batches[b.First] = run
	}
	if q.opts.ReadOnly {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var recs []wlog.Record
	for _, b := range q.idx.Batches() {
		if run := q.batches[b.First]; len(run.finished) == b.Count {
			recs = append(recs, q.batchCallback(b, run, nil)...)
			run.fired = true
		}
	}
	if len(recs) == 0 {
		return
	}
	if err := q.commit(recs, nil); err != nil {
		for _, b := range q.idx.Batches() {
			q.batches[b.First].fired = false
		}
		q.opts.Logger.Warn("walq: batch callbacks at open failed; the next open tries again", "err", err)
	}
}

// batchesSaw looks at recs, about to be submitted, for batch creations and
// member transitions (a member finishing, or a dead member requeued), and
// appends to recs the callback job and the end of every batch whose last
// member finishes in this entry. It returns the records and a function
// that undoes its bookkeeping if the entry fails. The caller holds q.mu.
func (q *Queue) batchesSaw(recs []wlog.Record) ([]wlog.Record, func()) {
	if len(q.batches) == 0 && !hasBatchRecord(recs) {
		return recs, func() {}
	}
	type change struct {
		first, id uint64
		created   bool
		had       bool
		old       BatchJobResult
	}
	var changes []change
	var fired []uint64
	touched := map[uint64]bool{}
	n := len(recs)
	for i := 0; i < n; i++ {
		r := &recs[i]
		if r.Kind == wlog.KindBatch {
			if r.State == 0 && q.batches[r.Job] == nil {
				q.batches[r.Job] = &batchRun{finished: map[uint64]BatchJobResult{}}
				changes = append(changes, change{first: r.Job, created: true})
			}
			continue
		}
		var res BatchJobResult
		switch r.Kind {
		case wlog.KindCompleted:
			res.Outcome = "completed"
		case wlog.KindDead:
			res.Outcome, res.Error = "dead", r.Error
		case wlog.KindCancelled:
			res.Outcome = "cancelled"
		case wlog.KindRequeued:
		default:
			continue
		}
		b := q.idx.Batch(r.Job)
		if b == nil {
			continue
		}
		run := q.batches[b.First]
		if run == nil || run.fired {
			continue
		}
		old, had := run.finished[r.Job]
		changes = append(changes, change{first: b.First, id: r.Job, had: had, old: old})
		touched[b.First] = true
		if r.Kind == wlog.KindRequeued {
			delete(run.finished, r.Job)
			continue
		}
		res.ID = r.Job
		run.finished[r.Job] = res
	}
	// Fire every batch this entry completes.
	for first := range touched {
		run, b := q.batches[first], q.idx.Batch(first)
		if run.fired || b == nil || len(run.finished) < b.Count {
			continue
		}
		recs = append(recs, q.batchCallback(b, run, recs)...)
		run.fired = true
		fired = append(fired, first)
	}
	undo := func() {
		for _, f := range fired {
			q.batches[f].fired = false
		}
		for i := len(changes) - 1; i >= 0; i-- {
			c := changes[i]
			switch {
			case c.created:
				delete(q.batches, c.first)
			case c.had:
				q.batches[c.first].finished[c.id] = c.old
			default:
				delete(q.batches[c.first].finished, c.id)
			}
		}
	}
	return recs, undo
}

func hasBatchRecord(recs []wlog.Record) bool {
	for i := range recs {
		if recs[i].Kind == wlog.KindBatch {
			return true
		}
	}
	return false
}

// batchCallback returns the records that enqueue b's callback job and end
// b, timed like the entry's first record (or now).
func (q *Queue) batchCallback(b *index.Batch, run *batchRun, recs []wlog.Record) []wlog.Record {
	at := q.now()
	if len(recs) > 0 && recs[0].At != 0 {
		at = recs[0].At
	}
	res := BatchResult{Batch: b.First, Jobs: make([]BatchJobResult, 0, b.Count)}
	for k := 0; k < b.Count; k++ {
		res.Jobs = append(res.Jobs, run.finished[b.First+uint64(k)])
	}
	payload, _ := json.Marshal(res)
	nj := NewJob{Queue: b.Queue, Payload: payload, Key: batchKey(b.First), Priority: int32(b.Priority),
		MaxAttempts: int(b.MaxAttempts), Timeout: time.Duration(b.Timeout), Group: b.Group}
	if b.BackoffBase != 0 || b.BackoffCap != 0 {
		nj.Backoff = &Backoff{Base: time.Duration(b.BackoffBase), Cap: time.Duration(b.BackoffCap)}
	}
	id := q.nextID
	q.nextID++
	return []wlog.Record{q.enqueueRecord(&nj, id, at), {Kind: wlog.KindBatch, Job: b.First, State: 1, At: at}}
}

// restateBatches returns the records that restate, in compaction's
// checkpoint, every batch whose callback is not yet submitted, and reserves
// the unfinished members of those batches, returned in busy: the caller
// commits the records with them reserved. A restatement applied after the
// batch's end would bring the batch back (entries in flight become visible
// in any order), and only a member's transition can end a batch: with them
// reserved none is in flight until the restatement is applied. A batch
// whose callback entry is in flight is not restated: it ends with that
// entry, which is after the cut (and should that entry fail, the log is
// failed and the compaction cannot truncate). It first waits, releasing
// q.mu, until no member is busy. The caller holds q.mu and ctlMu.
func (q *Queue) restateBatches(now int64) ([]wlog.Record, [][]*index.Job, error) {
	var bs []*index.Batch
	for {
		bs = bs[:0]
		waiting := false
		for _, b := range q.idx.Batches() {
			if run := q.batches[b.First]; run != nil && run.fired {
				continue
			}
			bs = append(bs, b)
			for k := 0; k < b.Count && !waiting; k++ {
				j := q.idx.Job(b.First + uint64(k))
				waiting = j != nil && !j.State.Terminal() && j.Busy
			}
		}
		if !waiting {
			break
		}
		q.inject(fault.Op{Kind: fault.Wait})
		q.cond.Wait()
		if q.closed {
			return nil, nil, ErrClosed
		}
	}
	recs := make([]wlog.Record, len(bs))
	busy := make([][]*index.Job, len(bs))
	for i, b := range bs {
		recs[i] = b.Record(now)
		for k := 0; k < b.Count; k++ {
			if j := q.idx.Job(b.First + uint64(k)); j != nil && !j.State.Terminal() {
				q.idx.Reserve(j)
				busy[i] = append(busy[i], j)
			}
		}
	}
	return recs, busy, nil
}

// batchesEnded forgets the state of the batches whose end recs applied.
// The caller holds q.mu.
func (q *Queue) batchesEnded(recs []wlog.Record) {
	if len(q.batches) == 0 {
		return
	}
	for i := range recs {
		if recs[i].Kind == wlog.KindBatch && recs[i].State == 1 {
			delete(q.batches, recs[i].Job)
		}
	}
}
