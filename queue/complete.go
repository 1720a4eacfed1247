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
	res, recs, held := q.addJobs(then, recs, now, nil)
	defer q.releaseKeys(held)
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

// Completion is one completion of CompleteBatch.
type Completion struct {
	// Token names the lease being completed.
	Token Token
	// Result is stored with the job; nil for none.
	Result []byte
	// Then are follow-up jobs enqueued atomically with the completion.
	Then []NewJob
}

// CompleteBatch completes many leases in one atomic, durable log entry: the
// worker runtime's way to share one fsync among many completions. It
// returns one error per completion (nil on success): a stale or expired
// token fails alone (an expired lease is recorded as expired in the same
// entry) while the others complete. The second result is an error that
// failed the whole batch (nothing changed).
func (q *Queue) CompleteBatch(ctx context.Context, cs []Completion) ([]error, error) {
	var all []NewJob
	for i := range cs {
		if len(cs[i].Result) > q.opts.MaxPayload {
			return nil, fmt.Errorf("%w: completion %d: result of %d bytes, limit %d", ErrTooLarge, i, len(cs[i].Result), q.opts.MaxPayload)
		}
		for k := range cs[i].Then {
			if err := q.validate(&cs[i].Then[k]); err != nil {
				return nil, fmt.Errorf("completion %d: follow-up job %d: %w", i, k, err)
			}
		}
		all = append(all, cs[i].Then...)
	}
	toks := make([]Token, len(cs))
	for i := range cs {
		toks[i] = cs[i].Token
	}
	inBatch := map[string]uint64{}
	var held []string
	release := func() { q.releaseKeys(held) }
	return q.leaseBatch(ctx, toks, all, release, func(i int, j *index.Job, now int64) []wlog.Record {
		c := &cs[i]
		recs := []wlog.Record{{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt), Result: c.Result}}
		var h []string
		_, recs, h = q.addJobs(c.Then, recs, now, inBatch)
		held = append(held, h...)
		return recs
	})
}

// ExtendBatch extends many leases to d from now (Options.LeaseDuration if d
// is 0) in one durable log entry: the worker runtime's heartbeat. It
// returns one error per token (nil on success): a stale or expired lease
// fails alone (an expired one is recorded as expired in the same entry).
// The second result is an error that failed the whole batch.
func (q *Queue) ExtendBatch(ctx context.Context, toks []Token, d time.Duration) ([]error, error) {
	if d < 0 {
		return nil, fmt.Errorf("%w: extension %v is negative", ErrInvalid, d)
	}
	if d == 0 {
		d = q.opts.LeaseDuration
	}
	return q.leaseBatch(ctx, toks, nil, func() {}, func(_ int, j *index.Job, now int64) []wlog.Record {
		return []wlog.Record{{Kind: wlog.KindExtended, Job: j.ID, At: now, Attempt: int64(j.Attempt), Deadline: now + int64(d)}}
	})
}

// leaseBatch writes, in one entry, the records rec builds for each token
// that names a current lease; an expired lease gets an expiry record
// instead and its error. jobs are the follow-up jobs the records may
// create, whose keys must not be in flight elsewhere; done runs at the end
// with the queue still locked (to release the keys rec held).
func (q *Queue) leaseBatch(ctx context.Context, toks []Token, jobs []NewJob, done func(), rec func(i int, j *index.Job, now int64) []wlog.Record) ([]error, error) {
	if err := q.beginWrite(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	defer done()
	ids := make([]uint64, len(toks))
	for i := range toks {
		ids[i] = toks[i].Job
	}
	// Wait for in-flight operations on these jobs before reserving any,
	// so that two batches can never wait on each other.
	for q.anyBusy(ids) || q.keysBusy(jobs) {
		q.cond.Wait()
		if q.closed {
			return nil, ErrClosed
		}
	}
	now := q.now()
	errs := make([]error, len(toks))
	var recs []wlog.Record
	var reserved []*index.Job
	for i, tok := range toks {
		j := q.idx.Job(tok.Job)
		if j != nil && j.Busy { // the same job twice in one batch
			errs[i] = fmt.Errorf("%w: job %d attempt %d", ErrLeaseLost, tok.Job, tok.Attempt)
			continue
		}
		if errs[i] = q.checkLease(j, tok, now); errs[i] != nil {
			if errors.Is(errs[i], ErrLeaseExpired) {
				q.idx.Reserve(j)
				reserved = append(reserved, j)
				recs = append(recs, q.expireRecord(j, now))
			}
			continue
		}
		q.idx.Reserve(j)
		reserved = append(reserved, j)
		recs = append(recs, rec(i, j, now)...)
	}
	if len(recs) == 0 {
		return errs, nil
	}
	if err := q.commit(recs, reserved); err != nil {
		return nil, err
	}
	return errs, nil
}

// checkLease reports whether tok names j's current, unexpired lease.
func (q *Queue) checkLease(j *index.Job, tok Token, now int64) error {
	if j == nil || j.State != index.Leased || int(j.Attempt) != tok.Attempt || int(j.Leases()) != tok.Lease {
		return fmt.Errorf("%w: job %d attempt %d (lease %d)", ErrLeaseLost, tok.Job, tok.Attempt, tok.Lease)
	}
	if now >= j.Deadline {
		return fmt.Errorf("%w: job %d attempt %d", ErrLeaseExpired, tok.Job, tok.Attempt)
	}
	return nil
}

// holdLease validates tok against the job's current lease and reserves the
// job. An expired lease is recorded as expired (the one outcome of the race
// between a late call and the deadline) and reported as ErrLeaseExpired.
func (q *Queue) holdLease(tok Token) (*index.Job, int64, error) {
	j := q.waitBusy(tok.Job)
	now := q.now()
	err := q.checkLease(j, tok, now)
	if errors.Is(err, ErrLeaseExpired) {
		q.idx.Reserve(j)
		if cerr := q.commit([]wlog.Record{q.expireRecord(j, now)}, []*index.Job{j}); cerr != nil {
			return nil, 0, cerr
		}
	}
	if err != nil {
		return nil, 0, err
	}
	q.idx.Reserve(j)
	return j, now, nil
}
