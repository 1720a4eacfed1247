package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
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
	c := []Completion{{Token: tok, Result: result, Then: then}}
	if err := q.checkCompletion(&c[0]); err != nil {
		return nil, err
	}
	errs, res, err := q.completeBatch(ctx, c)
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return nil, err
	}
	return res[0], nil
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
		r.Kind, r.RunAt, r.Error = wlog.KindReleased, addDuration(now, ra.delay), ""
	case IsPermanent(err):
		r.Kind = wlog.KindDead
	case j.Attempt >= j.MaxAttempts:
		r.Kind = wlog.KindDead
	case hasRA:
		r.Kind, r.RunAt = wlog.KindFailed, addDuration(now, ra.delay)
	default:
		r.Kind, r.RunAt = wlog.KindFailed, addDuration(now, q.backoff(j).Delay(int(j.Attempt), q.opts.Rand()))
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
	deadline := addDuration(now, d)
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

// CompleteBatch completes many leases, sharing log entries and fsyncs: the
// worker runtime's way to complete jobs. Each completion, with its
// follow-up jobs, is atomic; completions are written in as few entries as
// the log's entry size limit allows. It returns one error per completion
// (nil on success): a stale or expired token, an oversize result
// (ErrTooLarge) or an invalid follow-up job fails alone (an expired lease
// is recorded as expired) while the others complete. The second result is
// an error that failed every completion (nothing changed).
func (q *Queue) CompleteBatch(ctx context.Context, cs []Completion) ([]error, error) {
	errs, _, err := q.completeBatch(ctx, cs)
	return errs, err
}

// checkCompletion validates a completion's result and follow-up jobs.
func (q *Queue) checkCompletion(c *Completion) error {
	if len(c.Result) > q.opts.MaxPayload {
		return fmt.Errorf("%w: job %d: result of %d bytes, limit %d (Options.MaxPayload)", ErrTooLarge, c.Token.Job, len(c.Result), q.opts.MaxPayload)
	}
	for k := range c.Then {
		if err := q.validate(&c.Then[k]); err != nil {
			return fmt.Errorf("job %d: follow-up job %d: %w", c.Token.Job, k, err)
		}
	}
	return nil
}

// completeBatch is CompleteBatch that also returns each completion's
// follow-up results.
func (q *Queue) completeBatch(ctx context.Context, cs []Completion) ([]error, [][]Enqueued, error) {
	op := &completeOp{q: q, cs: cs, results: make([][]Enqueued, len(cs))}
	c := leaseChange{toks: make([]Token, len(cs)), invalid: make([]error, len(cs)), op: op}
	for i := range cs {
		c.toks[i] = cs[i].Token
		if c.invalid[i] = q.checkCompletion(&cs[i]); c.invalid[i] == nil {
			c.follow = append(c.follow, cs[i].Then...)
		}
	}
	errs, err := q.changeLeases(ctx, c)
	return errs, op.results, err
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
	return q.changeLeases(ctx, leaseChange{toks: toks, op: extendOp{d: d}})
}

// leaseChange is a batch call's change to the leases its tokens name:
// CompleteBatch completes them, ExtendBatch extends them (op says which).
type leaseChange struct {
	toks []Token
	// invalid[i], if not nil, fails token i alone, changing nothing. A nil
	// slice means every token is valid.
	invalid []error
	// follow are the follow-up jobs op enqueues; their keys must not be in
	// flight elsewhere.
	follow []NewJob
	op     leaseOp
}

// leaseOp is what a leaseChange does to each current lease.
type leaseOp interface {
	// size estimates the bytes token i's records carry (results and
	// follow-up payloads and keys), for splitting entries.
	size(i int) int
	// add appends token i's records to e: j is the leased job, now the
	// time of the call.
	add(e *entry, i int, j *index.Job, now int64)
}

// completeOp completes leases, with their follow-up jobs.
type completeOp struct {
	q       *Queue
	cs      []Completion
	results [][]Enqueued // results[i]: completion i's follow-up jobs
}

func (o *completeOp) size(i int) int {
	n := len(o.cs[i].Result)
	for _, nj := range o.cs[i].Then {
		n += len(nj.Payload) + len(nj.Key) + metaSize(nj.Meta)
	}
	return n
}

func (o *completeOp) add(e *entry, i int, j *index.Job, now int64) {
	c := &o.cs[i]
	e.recs = append(e.recs, wlog.Record{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt), Result: c.Result})
	o.results[i] = o.q.addJobs(e, c.Then, now)
}

// extendOp extends leases by d from the time of the call.
type extendOp struct{ d time.Duration }

func (extendOp) size(int) int { return 0 }

func (o extendOp) add(e *entry, _ int, j *index.Job, now int64) {
	e.recs = append(e.recs, wlog.Record{Kind: wlog.KindExtended, Job: j.ID, At: now, Attempt: int64(j.Attempt), Deadline: addDuration(now, o.d)})
}

// entryBudget is the payload bytes (results and follow-up payloads) that
// changeLeases puts in one entry before it starts another, far below the
// log's entry size limit (at least 64 MiB).
const entryBudget = 16 << 20

// changeLeases writes, for each token of c that names a current lease, the
// records c.op adds for it; an expired lease gets an expiry record instead
// and its error, and an invalid token fails alone and changes nothing.
// Records go into as many entries as entryBudget needs; each token's
// records stay in one entry. It returns one error per token (nil on
// success); the second result is non-nil only when no entry could be
// written.
func (q *Queue) changeLeases(ctx context.Context, c leaseChange) ([]error, error) {
	if err := q.beginWrite(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	ids := make([]uint64, len(c.toks))
	for i := range c.toks {
		ids[i] = c.toks[i].Job
	}
	// Wait for in-flight operations on these jobs and keys before
	// reserving any, so that two calls can never wait on each other.
	for q.anyBusy(ids) || q.keysBusy(c.follow) {
		q.inject(fault.Op{Kind: fault.Wait})
		q.cond.Wait()
		if q.closed {
			return nil, ErrClosed
		}
	}
	now := q.now()
	errs := make([]error, len(c.toks))
	// First reserve every job the tokens name, so that the records built
	// next (follow-up jobs whose keys these very jobs hold, say) see them
	// as this call's own.
	held := make([]*index.Job, len(c.toks))
	expired := make([]bool, len(c.toks))
	seen := make(map[uint64]bool, len(c.toks))
	for i, tok := range c.toks {
		if c.invalid != nil && c.invalid[i] != nil {
			errs[i] = c.invalid[i]
			continue
		}
		if seen[tok.Job] { // the same job twice in one batch
			errs[i] = fmt.Errorf("%w: job %d attempt %d", ErrLeaseLost, tok.Job, tok.Attempt)
			continue
		}
		j := q.idx.Job(tok.Job)
		errs[i] = q.checkLease(j, tok, now)
		expired[i] = errors.Is(errs[i], ErrLeaseExpired)
		if errs[i] == nil || expired[i] {
			seen[tok.Job] = true
			q.idx.Reserve(j)
			held[i] = j
		}
	}
	es := []*entry{{inBatch: map[string]uint64{}}}
	owner := make([][]int, 1) // token positions written in each entry
	used := 0
	for i, j := range held {
		if j == nil {
			continue
		}
		e := es[len(es)-1]
		if expired[i] { // recorded as expired, in the same entry
			e.busy = append(e.busy, j)
			e.recs = append(e.recs, q.expireRecord(j, now))
			continue
		}
		n := c.op.size(i)
		if used > 0 && used+n > entryBudget {
			e = &entry{inBatch: e.inBatch}
			es, owner, used = append(es, e), append(owner, nil), 0
		}
		used += n
		e.busy = append(e.busy, j)
		c.op.add(e, i, j, now)
		owner[len(owner)-1] = append(owner[len(owner)-1], i)
	}
	// Later entries may depend on earlier ones (a follow-up answered as a
	// duplicate of a job an earlier entry creates; a key holder an earlier
	// entry reserved), so every job stays reserved until the last entry is
	// applied, and after a failed entry the later ones are not written:
	// what is committed is always a prefix of the entries.
	var busy []*index.Job
	for _, e := range es {
		busy, e.busy = append(busy, e.busy...), nil
	}
	defer q.unreserve(busy)
	var failed error
	wrote := false
	for k, e := range es {
		if failed == nil && len(e.recs) > 0 {
			if failed = q.commitEntry(e); failed == nil {
				wrote = true
				continue
			}
		} else {
			q.releaseKeys(e.keys)
		}
		for _, i := range owner[k] {
			if failed != nil {
				errs[i] = failed
			}
		}
	}
	if failed != nil && !wrote {
		return nil, failed
	}
	return errs, nil
}

// checkLease reports whether tok names j's current, unexpired lease.
func (q *Queue) checkLease(j *index.Job, tok Token, now int64) error {
	if j == nil || j.State != index.Leased || int(j.Attempt) != tok.Attempt || int(j.Leases()) != tok.Lease {
		return fmt.Errorf("%w: job %d attempt %d (lease %d)", ErrLeaseLost, tok.Job, tok.Attempt, tok.Lease)
	}
	if now >= j.Deadline() {
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
