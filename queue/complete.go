package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Complete ends the lease's attempt successfully, storing result (nil for
// none). It is accepted only from the job's current, unexpired lease, so a
// job completes at most once: a stale token gets ErrLeaseLost (or
// ErrLeaseExpired) and changes nothing.
func (q *Queue) Complete(ctx context.Context, tok Token, result []byte) error {
	_, err := q.CompleteAndEnqueue(ctx, tok, result, nil)
	return err
}

// CompleteAndEnqueue completes the lease's attempt and enqueues follow-up
// jobs in the same atomic log entry: after a crash either the completion and
// every follow-up exist, or none does. Follow-up keys are deduplicated as in
// EnqueueBatch.
func (q *Queue) CompleteAndEnqueue(ctx context.Context, tok Token, result []byte, then []NewJob) ([]Enqueued, error) {
	if len(result) > q.opts.MaxPayload {
		return nil, fmt.Errorf("%w: result of %d bytes, limit %d (Options.MaxPayload)", ErrTooLarge, len(result), q.opts.MaxPayload)
	}
	for i := range then {
		if err := q.validate(&then[i]); err != nil {
			return nil, fmt.Errorf("follow-up job %d: %w", i, err)
		}
	}
	if err := q.beginWrite(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	for q.keysBusy(then) {
		q.cond.Wait()
	}
	j, now, err := q.holdLease(tok)
	if err != nil {
		return nil, err
	}
	recs := []wlog.Record{{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt), Result: result}}
	res, recs := q.addJobs(then, recs, now)
	defer q.releaseKeys(then)
	if err := q.commit(recs, []*index.Job{j}); err != nil {
		return nil, err
	}
	return res, nil
}

// Fail ends the lease's attempt with err. The job is retried after the
// backoff delay, or after d if err came from RetryAfter(d, …); it goes to the
// dead-letter queue if err came from Permanent or this was its last attempt.
// An error from Snooze(d) puts the job back for d without counting the
// attempt. Only the current, unexpired lease is accepted.
func (q *Queue) Fail(ctx context.Context, tok Token, err error) error {
	if err == nil {
		err = errors.New("failed (no error given)")
	}
	if e := q.beginWrite(ctx); e != nil {
		return e
	}
	defer q.end()
	j, now, e := q.holdLease(tok)
	if e != nil {
		return e
	}
	r := q.failRecord(j, err, now)
	return q.commit([]wlog.Record{r}, []*index.Job{j})
}

// failRecord decides what a failure does to a leased job.
func (q *Queue) failRecord(j *index.Job, err error, now int64) wlog.Record {
	r := wlog.Record{Job: j.ID, At: now, Attempt: int64(j.Attempt), Error: err.Error()}
	var ra *retryAfter
	hasRA := errors.As(err, &ra)
	switch {
	case hasRA && ra.snooze:
		r.Kind, r.RunAt, r.Error = wlog.KindReleased, now+int64(ra.delay), ""
	case IsPermanent(err):
		r.Kind = wlog.KindDead
	case j.Attempt >= j.MaxAttempts:
		r.Kind = wlog.KindDead
	case hasRA:
		r.Kind, r.RunAt = wlog.KindFailed, now+int64(ra.delay)
	default:
		r.Kind, r.RunAt = wlog.KindFailed, now+int64(q.backoff(j).Delay(int(j.Attempt), q.opts.Rand()))
	}
	return r
}

// backoff returns the job's backoff policy.
func (q *Queue) backoff(j *index.Job) Backoff {
	b := q.opts.Backoff
	if x := j.X; x != nil {
		if x.BackoffBase > 0 {
			b.Base = time.Duration(x.BackoffBase)
		}
		if x.BackoffCap > 0 {
			b.Cap = time.Duration(x.BackoffCap)
		}
		if b.Cap < b.Base {
			b.Cap = b.Base
		}
	}
	return b
}

// Extend moves the lease's deadline to d from now (Options.LeaseDuration if
// d is 0) and returns the new deadline. It is the heartbeat of long jobs.
func (q *Queue) Extend(ctx context.Context, tok Token, d time.Duration) (time.Time, error) {
	if d < 0 {
		return time.Time{}, fmt.Errorf("%w: extension %v is negative", ErrInvalid, d)
	}
	if d == 0 {
		d = q.opts.LeaseDuration
	}
	if err := q.beginWrite(ctx); err != nil {
		return time.Time{}, err
	}
	defer q.end()
	j, now, err := q.holdLease(tok)
	if err != nil {
		return time.Time{}, err
	}
	deadline := now + int64(d)
	r := wlog.Record{Kind: wlog.KindExtended, Job: j.ID, At: now, Attempt: int64(j.Attempt), Deadline: deadline}
	if err := q.commit([]wlog.Record{r}, []*index.Job{j}); err != nil {
		return time.Time{}, err
	}
	return unixTime(deadline), nil
}

// Release gives the lease back without counting the attempt: the job is
// ready again at once. Workers use it when they shut down mid-job.
func (q *Queue) Release(ctx context.Context, tok Token) error {
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	j, now, err := q.holdLease(tok)
	if err != nil {
		return err
	}
	r := wlog.Record{Kind: wlog.KindReleased, Job: j.ID, At: now, Attempt: int64(j.Attempt), RunAt: now}
	return q.commit([]wlog.Record{r}, []*index.Job{j})
}

// holdLease validates tok against the job's current lease and reserves the
// job. An expired lease is recorded as expired (the one outcome of the race
// between a late call and the deadline) and reported as ErrLeaseExpired.
func (q *Queue) holdLease(tok Token) (*index.Job, int64, error) {
	j := q.waitBusy(tok.Job)
	if j == nil || j.State != index.Leased || int(j.Attempt) != tok.Attempt {
		return nil, 0, fmt.Errorf("%w: job %d attempt %d", ErrLeaseLost, tok.Job, tok.Attempt)
	}
	now := q.now()
	if now >= j.Deadline {
		q.idx.Reserve(j)
		if err := q.commit([]wlog.Record{q.expireRecord(j, now)}, []*index.Job{j}); err != nil {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%w: job %d attempt %d", ErrLeaseExpired, tok.Job, tok.Attempt)
	}
	q.idx.Reserve(j)
	return j, now, nil
}
