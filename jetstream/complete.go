package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walq/walq/queue"
)

// take returns the lease tok names if this Queue handed it out and it has
// not expired.
func (q *Queue) take(tok queue.Token) (*held, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.held[tok.Job]
	if h == nil || h.tok != tok {
		return nil, queue.ErrLeaseLost
	}
	if !q.now().Before(h.deadline) {
		delete(q.held, tok.Job)
		return nil, queue.ErrLeaseExpired
	}
	return h, nil
}

func (q *Queue) forget(h *held) {
	q.mu.Lock()
	if q.held[h.tok.Job] == h {
		delete(q.held, h.tok.Job)
	}
	q.mu.Unlock()
}

// end records the end of a lease's attempt in the job's state record,
// first writer wins: the write is conditional on the revision read when
// the job was leased. If another writer got there first (a cancel, or a
// redelivery's holder after this lease expired on the server), the
// attempt is lost: ErrLeaseLost, and nothing is changed.
func (q *Queue) end(ctx context.Context, h *held, change func(r *record)) (*record, error) {
	r := h.rec
	r.History = append([]queue.Attempt(nil), h.rec.History...)
	change(&r)
	r.Name = h.meta.Queue
	_, err := q.putRecord(ctx, h.tok.Job, h.rev, &r)
	if err != nil && !errors.Is(err, errConflict) {
		// The reply was lost (a failover, a timeout): the write may have
		// landed. Read it back to tell.
		if cur, _, rerr := q.getRecord(context.WithoutCancel(ctx), h.tok.Job); rerr == nil && cur != nil &&
			cur.LastLease == r.LastLease && cur.Event == r.Event && cur.At.Equal(r.At) {
			err = nil
		}
	}
	if errors.Is(err, errConflict) {
		q.forget(h)
		return nil, queue.ErrLeaseLost
	}
	if err != nil {
		return nil, err
	}
	q.forget(h)
	return &r, nil
}

// Complete records the completion (with result) in the job's state record,
// first writer wins, and then acknowledges the delivery: a redelivery of a
// job already complete is acknowledged without running.
func (q *Queue) Complete(ctx context.Context, tok queue.Token, result []byte) error {
	h, err := q.take(tok)
	if err != nil {
		return err
	}
	return q.complete(ctx, h, result)
}

func (q *Queue) complete(ctx context.Context, h *held, result []byte) error {
	if len(result) > q.opts.MaxPayload {
		return fmt.Errorf("%w: result of %d bytes, limit %d", queue.ErrTooLarge, len(result), q.opts.MaxPayload)
	}
	now := q.now()
	_, err := q.end(ctx, h, func(r *record) {
		r.State, r.Event, r.At, r.FinishedAt = queue.StateCompleted, queue.EventCompleted, now, now
		r.Attempt, r.LastLease = h.tok.Attempt, h.tok.Lease
		r.Result, r.HasResult = result, result != nil
		r.addHistory(queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started, Ended: now, Outcome: "completed"})
	})
	if err != nil {
		return err
	}
	q.ack(ctx, h)
	return nil
}

// ack acknowledges a finished lease's delivery. The outcome is already
// durable in the state record, so a lost ack costs a redelivery that is
// acknowledged without running, not a second run.
func (q *Queue) ack(ctx context.Context, h *held) {
	if err := h.msg.Ack(); err != nil {
		q.opts.Logger.Debug("walq: jetstream: ack", "job", h.tok.Job, "err", err)
	}
	if md, err := h.msg.Metadata(); err == nil {
		q.forgetDelivery(ctx, md.Sequence.Stream, h.tok.Job)
	}
}

// CompleteBatch completes each lease in turn; each completion stands alone.
func (q *Queue) CompleteBatch(ctx context.Context, cs []queue.Completion) ([]error, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	errs := make([]error, len(cs))
	for i, c := range cs {
		if len(c.Then) > 0 {
			_, errs[i] = q.CompleteAndEnqueue(ctx, c.Token, c.Result, c.Then)
		} else {
			errs[i] = q.Complete(ctx, c.Token, c.Result)
		}
	}
	return errs, nil
}

// CompleteAndEnqueue enqueues the follow-up jobs, then completes the
// lease. The two are not one atomic write: a follow-up without a key gets
// the key "walq:then:<job>:<lease>:<i>", so that a retry after a crash
// between them finds the follow-ups instead of doubling them.
func (q *Queue) CompleteAndEnqueue(ctx context.Context, tok queue.Token, result []byte, then []queue.NewJob) ([]queue.Enqueued, error) {
	h, err := q.take(tok)
	if err != nil {
		return nil, err
	}
	jobs := make([]queue.NewJob, len(then))
	for i, j := range then {
		if j.Key == "" {
			j.Key = fmt.Sprintf("walq:then:%d:%d:%d", tok.Job, tok.Lease, i)
		}
		jobs[i] = j
	}
	var out []queue.Enqueued
	if len(jobs) > 0 {
		if out, err = q.EnqueueBatch(ctx, jobs); err != nil {
			return nil, err
		}
	}
	if err := q.complete(ctx, h, result); err != nil {
		return nil, err
	}
	return out, nil
}

// Fail ends the attempt with err: NakWithDelay after the backoff (or the
// RetryAfter delay), Term into the dead-letter queue for Permanent or the
// last attempt, NakWithDelay uncounted for Snooze.
func (q *Queue) Fail(ctx context.Context, tok queue.Token, ferr error) error {
	h, err := q.take(tok)
	if err != nil {
		return err
	}
	now := q.now()
	msg := ""
	if ferr != nil {
		msg = ferr.Error()
	}
	d, explicit := queue.RetryDelay(ferr)
	switch {
	case queue.IsSnooze(ferr):
		return q.giveBack(ctx, h, d)
	case queue.IsPermanent(ferr) || h.tok.Attempt >= h.meta.MaxAttempts:
		_, err := q.end(ctx, h, func(r *record) {
			r.State, r.Event, r.At, r.FinishedAt = queue.StateDead, queue.EventDead, now, now
			r.Attempt, r.LastLease, r.LastError = h.tok.Attempt, h.tok.Lease, msg
			r.addHistory(queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started, Ended: now, Outcome: "dead", Error: msg})
		})
		if err != nil {
			return err
		}
		if err := h.msg.Term(); err != nil {
			q.opts.Logger.Debug("walq: jetstream: term", "job", h.tok.Job, "err", err)
		}
		return nil
	}
	if !explicit {
		b := q.opts.Backoff
		if h.meta.Backoff != nil {
			b.Base, b.Cap = h.meta.Backoff.Base, h.meta.Backoff.Cap
		}
		d = b.Delay(h.tok.Attempt, q.opts.Rand())
	}
	_, err = q.end(ctx, h, func(r *record) {
		r.Event, r.At, r.RunAt = queue.EventRetrying, now, now.Add(d)
		r.Attempt, r.LastLease, r.LastError = h.tok.Attempt, h.tok.Lease, msg
		r.addHistory(queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started, Ended: now, Outcome: "failed", Error: msg})
	})
	if err != nil {
		return err
	}
	return q.nak(h, d)
}

func (q *Queue) nak(h *held, d time.Duration) error {
	if err := h.msg.NakWithDelay(d); err != nil {
		return fmt.Errorf("walq: jetstream: job %d: nak: %w", h.tok.Job, err)
	}
	return nil
}

// giveBack ends the attempt uncounted (Release, Snooze): the record's
// Uncounted goes up by one, then NakWithDelay(d).
func (q *Queue) giveBack(ctx context.Context, h *held, d time.Duration) error {
	now := q.now()
	_, err := q.end(ctx, h, func(r *record) {
		r.Uncounted++
		r.Event, r.At, r.RunAt = queue.EventReleased, now, now.Add(d)
		r.LastLease = h.tok.Lease
		r.addHistory(queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started, Ended: now, Outcome: "released"})
	})
	if err != nil {
		return err
	}
	return q.nak(h, d)
}

// Release gives the lease back without counting the attempt.
func (q *Queue) Release(ctx context.Context, tok queue.Token) error {
	h, err := q.take(tok)
	if err != nil {
		return err
	}
	return q.giveBack(ctx, h, 0)
}

// Extend sends InProgress, which restarts the delivery's AckWait: the new
// deadline is now + Options.LeaseDuration whatever d is (JetStream has no
// per-delivery AckWait; d larger than the lease duration is served by
// extending again, as the worker runtime's heartbeat does).
func (q *Queue) Extend(ctx context.Context, tok queue.Token, d time.Duration) (time.Time, error) {
	if d < 0 {
		return time.Time{}, fmt.Errorf("%w: Extend by %v", queue.ErrInvalid, d)
	}
	h, err := q.take(tok)
	if err != nil {
		return time.Time{}, err
	}
	start := q.now()
	if err := h.msg.InProgress(); err != nil {
		return time.Time{}, fmt.Errorf("walq: jetstream: job %d: in progress: %w", tok.Job, err)
	}
	dl := start.Add(q.opts.LeaseDuration)
	q.mu.Lock()
	if q.held[tok.Job] == h {
		h.deadline = dl
	}
	q.mu.Unlock()
	return dl, nil
}

// ExtendBatch extends each lease in turn.
func (q *Queue) ExtendBatch(ctx context.Context, toks []queue.Token, d time.Duration) ([]error, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	if d < 0 {
		return nil, fmt.Errorf("%w: Extend by %v", queue.ErrInvalid, d)
	}
	errs := make([]error, len(toks))
	for i, t := range toks {
		_, errs[i] = q.Extend(ctx, t, d)
	}
	return errs, nil
}
