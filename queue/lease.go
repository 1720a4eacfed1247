package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Token names one lease of one job. Complete, Fail, Extend and Release
// accept only the token of the job's current, unexpired lease.
type Token struct {
	// Job is the job's ID.
	Job uint64
	// Attempt is the attempt the lease runs, as counted toward
	// MaxAttempts (the same as Job.Attempt).
	Attempt int
	// Lease numbers the job's leases from 1, released and requeued ones
	// included, so that a token stays stale even when an attempt number
	// is reused (after a release, a snooze or a requeue).
	Lease int
}

// Lease is a leased job: the job (with its payload) and the lease's token
// and deadline.
type Lease struct {
	Job      *Job
	Token    Token
	Deadline time.Time
}

// Lease waits until a job of the named queue is ready, leases it and
// returns it. It returns early with ctx's error or ErrClosed. Jobs are taken
// by priority (highest first), then run-at, then enqueue order. An invalid
// queue name (see NewJob.Queue) gives ErrInvalid.
func (q *Queue) Lease(ctx context.Context, queue string) (*Lease, error) {
	ls, err := q.lease(ctx, queue, 1, true)
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// TryLease leases the next ready job of the named queue, or returns
// ErrNoJob at once if none is ready.
func (q *Queue) TryLease(ctx context.Context, queue string) (*Lease, error) {
	ls, err := q.lease(ctx, queue, 1, false)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, ErrNoJob
	}
	return ls[0], nil
}

// LeaseN waits until at least one job of the named queue is ready and
// leases up to n ready jobs in one durable step (one log entry, one
// fsync). It is an advanced call, for runtimes that run many jobs at once
// (the worker package uses it); Lease is the everyday one.
func (q *Queue) LeaseN(ctx context.Context, queue string, n int) ([]*Lease, error) {
	return q.lease(ctx, queue, n, true)
}

// TryLeaseN leases up to n ready jobs of the named queue without waiting,
// in one durable step; it returns an empty slice if none is ready. It is an
// advanced call, like LeaseN; TryLease is the everyday one.
func (q *Queue) TryLeaseN(ctx context.Context, queue string, n int) ([]*Lease, error) {
	return q.lease(ctx, queue, n, false)
}

func (q *Queue) lease(ctx context.Context, name string, n int, wait bool) ([]*Lease, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: lease count %d is below 1", ErrInvalid, n)
	}
	if err := checkQueueName("queue", name); err != nil {
		return nil, err
	}
	if name == "" {
		name = DefaultQueue
	}
	for {
		ls, wake, next, err := q.tryLease(ctx, name, n)
		if err != nil || len(ls) > 0 || !wait {
			return ls, err
		}
		if err := q.sleep(ctx, wake, next); err != nil {
			return nil, err
		}
	}
}

// sleep waits for wake, the clock reaching next (if not zero), ctx or Close.
func (q *Queue) sleep(ctx context.Context, wake <-chan struct{}, next int64) error {
	var timer <-chan time.Time
	if next != 0 {
		t := q.opts.Clock.Timer(time.Duration(next - q.now()))
		defer t.Stop()
		// The clock may have moved between reading it and arming the
		// timer: look again rather than oversleep.
		if q.now() >= next {
			return nil
		}
		timer = t.C
	}
	select {
	case <-wake:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	case <-q.done:
		return ErrClosed
	}
	return nil
}

// tryLease leases up to n ready jobs. With none ready it returns the channel
// that signals new work and the next time (Unix ns, 0 if none) at which a
// scheduled job or a lease deadline comes due.
func (q *Queue) tryLease(ctx context.Context, name string, n int) ([]*Lease, <-chan struct{}, int64, error) {
	if err := q.fireDue(ctx); err != nil {
		return nil, nil, 0, err
	}
	if err := q.beginWrite(ctx); err != nil {
		return nil, nil, 0, err
	}
	defer q.end()
	now := q.now()
	if err := q.reapLocked(now); err != nil {
		return nil, nil, 0, err
	}
	q.idx.Promote(now)
	iq := q.idx.Queue(name)
	if iq == nil || iq.Paused || iq.Next() == nil {
		return nil, q.wake, q.nextDue(iq), nil
	}
	lim := q.limits[name]
	if lim != nil {
		a := lim.allowed(now)
		if a == 0 {
			return nil, q.wake, minTime(q.nextDue(nil), lim.nextFree()), nil
		}
		n = min(n, a)
	}
	brk := q.breakers[name]
	if brk != nil {
		a, at := brk.leaseBudget(n, now)
		if a == 0 {
			return nil, q.wake, minTime(q.nextDue(nil), at), nil
		}
		n = min(n, a)
	}
	probe := brk != nil && brk.state == BreakerOpen // this lease is the probe
	if probe {
		brk.probing = true
	}
	deadline := addDuration(now, q.opts.LeaseDuration)
	var jobs []*index.Job
	var recs []wlog.Record
	for len(jobs) < n {
		j := iq.Next()
		if j == nil {
			break
		}
		q.idx.Reserve(j)
		jobs = append(jobs, j)
		recs = append(recs, wlog.Record{Kind: wlog.KindLeased, Job: j.ID, At: now,
			Attempt: int64(j.Attempt) + 1, Deadline: deadline})
	}
	if lim != nil {
		lim.take(now, len(jobs)) // counted before the entry is durable, so that no concurrent lease exceeds the limit
	}
	if brk != nil {
		q.traceBreaker(brkStep{leased: len(jobs), job: jobs[0].ID, state: brk.state, now: now, openedAt: brk.openedAt})
	}
	err := q.commit(recs, jobs)
	if probe {
		var id uint64
		if err == nil {
			id = jobs[0].ID
		}
		q.probeLeased(name, brk, id, now)
	}
	if err != nil {
		if lim != nil {
			lim.undo(now, len(jobs))
		}
		return nil, nil, 0, err
	}
	ls := make([]*Lease, len(jobs))
	for i, j := range jobs {
		ls[i] = &Lease{Job: snapshot(j, now), Token: Token{Job: j.ID, Attempt: int(j.Attempt), Lease: int(j.Leases())},
			Deadline: unixTime(deadline)}
	}
	locs := make([]index.Loc, len(jobs))
	for i, j := range jobs {
		locs[i] = j.Payload
	}
	for !q.gateRead() {
		// A carry may have restated the jobs (in new index entries) and
		// a truncation removed the segments locs name: look them up
		// again. They are leased to this call, which nothing but their
		// lease running out (reaped only once the deadline passes) ends.
		for i := range locs {
			j := q.idx.Job(ls[i].Job.ID)
			if j == nil {
				return nil, nil, 0, fmt.Errorf("%w: leased job %d vanished before its payload was read", ErrNotFound, ls[i].Job.ID)
			}
			locs[i] = j.Payload
		}
	}
	payloads, metas, err := q.readPayloads(locs...)
	if err != nil {
		return nil, nil, 0, err
	}
	for i := range ls {
		ls[i].Job.Payload = payloads[i]
		if ls[i].Job.Meta, err = decodeMeta(ls[i].Job.ID, metas[i]); err != nil {
			return nil, nil, 0, err
		}
	}
	return ls, nil, 0, nil
}

// nextDue returns the earliest time something may become leasable in iq
// without an enqueue: a scheduled job's run-at or any lease's deadline.
func (q *Queue) nextDue(iq *index.Queue) int64 {
	var next int64
	if iq != nil && !iq.Paused {
		if t, ok := iq.NextRunAt(); ok {
			next = t
		}
	}
	if t, ok := q.idx.NextDeadline(); ok && (next == 0 || t < next) {
		next = t
	}
	if t := q.periodic.next.Load(); t != 0 && (next == 0 || t < next) {
		next = t // a schedule's tick may enqueue into this queue
	}
	return next
}

// minTime returns the earlier of two times (Unix ns), 0 meaning none.
func minTime(a, b int64) int64 {
	if a == 0 || b != 0 && b < a {
		return b
	}
	return a
}

// reapLocked ends every lease whose deadline has passed: the expired
// attempt counts; the job is ready again, or dead if it has no attempts
// left.
func (q *Queue) reapLocked(now int64) error {
	if t, ok := q.idx.NextDeadline(); !ok || t > now {
		return nil
	}
	var jobs []*index.Job
	var recs []wlog.Record
	q.idx.Expired(now, func(j *index.Job) bool {
		if !j.Busy {
			jobs = append(jobs, j)
			recs = append(recs, q.expireRecord(j, now))
		}
		return true
	})
	if len(jobs) == 0 {
		return nil
	}
	for _, j := range jobs {
		q.idx.Reserve(j)
	}
	return q.commit(recs, jobs)
}

func (q *Queue) expireRecord(j *index.Job, now int64) wlog.Record {
	r := wlog.Record{Kind: wlog.KindExpired, Job: j.ID, At: now, Attempt: int64(j.Attempt), RunAt: now,
		Error: fmt.Sprintf("walq: lease expired during attempt %d", j.Attempt)}
	if j.Attempt >= j.MaxAttempts {
		r.Kind, r.RunAt = wlog.KindDead, 0
		r.Error = fmt.Sprintf("walq: lease expired during attempt %d of %d", j.Attempt, j.MaxAttempts)
	}
	return r
}
