package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
	wlog "github.com/walq/walq/log"
)

// DeadFilter selects jobs of the dead-letter queue. The zero value selects
// them all.
type DeadFilter struct {
	// Queue keeps dead jobs of this named queue only; empty means all.
	Queue string
	// ErrorContains keeps jobs whose last error contains this text.
	ErrorContains string
	// Before and After keep jobs that died before / after these times.
	Before, After time.Time
	// Limit caps how many jobs are returned or changed; 0 means no cap.
	Limit int
}

func (f DeadFilter) match(j *index.Job) bool {
	if f.ErrorContains != "" && !strings.Contains(j.Error(), f.ErrorContains) {
		return false
	}
	if !f.Before.IsZero() && j.Finished() >= f.Before.UnixNano() {
		return false
	}
	if !f.After.IsZero() && j.Finished() <= f.After.UnixNano() {
		return false
	}
	return true
}

// Dead lists the dead-letter queue, oldest death first, without payloads.
func (q *Queue) Dead(ctx context.Context, f DeadFilter) ([]*Job, error) {
	if err := q.beginRead(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	now := q.now()
	var out []*Job
	for _, j := range q.sortedDead(f) {
		out = append(out, snapshot(j, now))
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// RequeueOptions say where requeued jobs go.
type RequeueOptions struct {
	// Queue moves the jobs to this named queue, which must be a valid
	// name (see NewJob.Queue). Defaults to each job's own.
	Queue string
	// Delay makes the jobs ready after this long. Defaults to 0.
	Delay time.Duration
}

// check validates the options.
func (o RequeueOptions) check() error {
	if o.Delay < 0 {
		return fmt.Errorf("%w: RequeueOptions.Delay: %v is negative", ErrInvalid, o.Delay)
	}
	return checkQueueName("RequeueOptions.Queue", o.Queue)
}

// Requeue moves dead jobs back to pending, with their attempt count reset
// (their history keeps the old attempts), in one atomic entry. A job that is
// not dead fails the whole call with ErrState.
func (q *Queue) Requeue(ctx context.Context, ids []uint64, opts RequeueOptions) error {
	if err := opts.check(); err != nil {
		return err
	}
	return q.changeJobs(ctx, ids, index.Dead, func(j *index.Job, now int64) wlog.Record {
		return wlog.Record{Kind: wlog.KindRequeued, Job: j.ID, At: now, Queue: opts.Queue, RunAt: addDuration(now, opts.Delay)}
	})
}

// RequeueDead requeues every dead job matching f and returns how many.
func (q *Queue) RequeueDead(ctx context.Context, f DeadFilter, opts RequeueOptions) (int, error) {
	if err := opts.check(); err != nil {
		return 0, err
	}
	return q.changeDead(ctx, f, func(ids []uint64) error { return q.Requeue(ctx, ids, opts) })
}

// Purge forgets finished jobs (dead, completed or cancelled) entirely,
// including their idempotency keys, in one atomic entry. A job that is not
// finished fails the whole call with ErrState. It is an advanced call:
// retention (Options.KeyRetention, DeadMaxAge, DeadMaxCount) forgets
// finished jobs by itself, and PurgeDead empties the dead-letter queue.
func (q *Queue) Purge(ctx context.Context, ids []uint64) error {
	return q.changeJobs(ctx, ids, 0, func(j *index.Job, now int64) wlog.Record {
		return wlog.Record{Kind: wlog.KindPurged, Job: j.ID, At: now}
	})
}

// PurgeDead purges every dead job matching f and returns how many.
func (q *Queue) PurgeDead(ctx context.Context, f DeadFilter) (int, error) {
	return q.changeDead(ctx, f, func(ids []uint64) error { return q.Purge(ctx, ids) })
}

// Cancel removes a ready or scheduled job from scheduling; it is kept as
// cancelled for Options.KeyRetention. A leased or finished job gives
// ErrState.
func (q *Queue) Cancel(ctx context.Context, id uint64) error {
	return q.changeJobs(ctx, []uint64{id}, index.Pending, func(j *index.Job, now int64) wlog.Record {
		return wlog.Record{Kind: wlog.KindCancelled, Job: j.ID, At: now}
	})
}

// changeDead applies change to the IDs of the dead jobs matching f, in
// chunks that keep each log entry small.
func (q *Queue) changeDead(ctx context.Context, f DeadFilter, change func([]uint64) error) (int, error) {
	if q.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	if err := q.beginRead(ctx); err != nil {
		return 0, err
	}
	var ids []uint64
	for _, j := range q.sortedDead(f) {
		ids = append(ids, j.ID)
		if f.Limit > 0 && len(ids) == f.Limit {
			break
		}
	}
	q.end()
	const chunk = 10000
	for i := 0; i < len(ids); i += chunk {
		if err := change(ids[i:min(i+chunk, len(ids))]); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// changeJobs writes one record per job in one entry, after checking that
// every job exists and is in state want (any finished state if want is 0).
func (q *Queue) changeJobs(ctx context.Context, ids []uint64, want index.State, rec func(*index.Job, int64) wlog.Record) error {
	if len(ids) == 0 {
		return nil
	}
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	// Wait until none of the jobs has an operation in flight; reserving
	// them one by one while waiting could deadlock against another bulk
	// call.
	for q.anyBusy(ids) {
		q.inject(fault.Op{Kind: fault.Wait})
		q.cond.Wait()
		if q.closed {
			return ErrClosed
		}
	}
	now := q.now()
	jobs := make([]*index.Job, 0, len(ids))
	recs := make([]wlog.Record, 0, len(ids))
	for _, id := range ids {
		j := q.idx.Job(id)
		if j != nil && j.Busy { // a duplicate ID, reserved above
			continue
		}
		if j == nil {
			q.unreserve(jobs)
			return fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		if (want != 0 && j.State != want) || (want == 0 && !j.State.Terminal()) {
			q.unreserve(jobs)
			return fmt.Errorf("%w: job %d is %s", ErrState, id, jobState(j, now))
		}
		q.idx.Reserve(j)
		jobs = append(jobs, j)
		recs = append(recs, rec(j, now))
	}
	return q.commit(recs, jobs)
}

func (q *Queue) anyBusy(ids []uint64) bool {
	for _, id := range ids {
		if j := q.idx.Job(id); j != nil && j.Busy {
			return true
		}
	}
	return false
}

func (q *Queue) unreserve(jobs []*index.Job) {
	// A pending job comes back to scheduling here (after a failed entry,
	// a carry, a duplicate answer): wake leasers that found nothing while
	// it was reserved.
	wake := false
	for _, j := range jobs {
		q.idx.Unreserve(j)
		wake = wake || j.State == index.Pending
	}
	if wake {
		q.wakeLeasers()
	}
	q.cond.Broadcast()
}

// Pause stops leasing from the named queue until Resume; it survives
// restarts. Enqueueing into a paused queue still works. An invalid queue
// name (see NewJob.Queue) gives ErrInvalid.
func (q *Queue) Pause(ctx context.Context, queue string) error {
	return q.setPaused(ctx, queue, wlog.KindPaused)
}

// Resume undoes Pause.
func (q *Queue) Resume(ctx context.Context, queue string) error {
	return q.setPaused(ctx, queue, wlog.KindResumed)
}

func (q *Queue) setPaused(ctx context.Context, queue string, k wlog.Kind) error {
	if err := checkQueueName("queue", queue); err != nil {
		return err
	}
	if queue == "" {
		queue = DefaultQueue
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	return q.commit([]wlog.Record{{Kind: k, Queue: queue, At: q.now()}}, nil)
}
