package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/walq/walq/queue"
)

// pollWait bounds one blocking fetch, so that Lease notices ctx and Close.
const pollWait = 500 * time.Millisecond

// Lease waits until a job of the named queue is delivered by its consumer
// and returns it leased for Options.LeaseDuration (the consumer's AckWait).
// Jobs are taken in stream order (priorities are not supported; see
// README.md).
func (q *Queue) Lease(ctx context.Context, name string) (*queue.Lease, error) {
	ls, err := q.lease(ctx, name, 1, true)
	if err != nil {
		return nil, err
	}
	return ls[0], nil
}

// TryLease leases a delivered job, or returns ErrNoJob if the consumer has
// none ready.
func (q *Queue) TryLease(ctx context.Context, name string) (*queue.Lease, error) {
	ls, err := q.lease(ctx, name, 1, false)
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, queue.ErrNoJob
	}
	return ls[0], nil
}

// LeaseN waits until at least one job is ready and leases up to n in one
// pull request.
func (q *Queue) LeaseN(ctx context.Context, name string, n int) ([]*queue.Lease, error) {
	return q.lease(ctx, name, n, true)
}

// TryLeaseN leases up to n ready jobs without waiting.
func (q *Queue) TryLeaseN(ctx context.Context, name string, n int) ([]*queue.Lease, error) {
	return q.lease(ctx, name, n, false)
}

func (q *Queue) lease(ctx context.Context, name string, n int, wait bool) ([]*queue.Lease, error) {
	if name == "" {
		name = queue.DefaultQueue
	}
	if err := queue.CheckQueueName(name); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("%w: lease count %d", queue.ErrInvalid, n)
	}
	if err := q.check(); err != nil {
		return nil, err
	}
	var unavailable time.Time
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ls, err := q.leaseOnce(ctx, name, n, wait)
		if errors.Is(err, nats.ErrNoResponders) {
			// A consumer has no leader yet (just created, or failing
			// over): wait for one, up to RequestTimeout.
			if unavailable.IsZero() {
				unavailable = time.Now()
			}
			if time.Since(unavailable) > q.opts.RequestTimeout {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-q.done:
				return nil, queue.ErrClosed
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		unavailable = time.Time{}
		if ctx.Err() != nil {
			// The caller gave up while the fetch ran: give the jobs back
			// uncounted, as the WAL engine would never have leased them.
			for _, l := range ls {
				if rerr := q.Release(context.WithoutCancel(ctx), l.Token); rerr != nil {
					q.opts.Logger.Debug("walq: jetstream: release after cancel", "job", l.Token.Job, "err", rerr)
				}
			}
			return nil, ctx.Err()
		}
		if err != nil || len(ls) > 0 || !wait {
			return ls, err
		}
		select {
		case <-q.done:
			return nil, queue.ErrClosed
		default:
		}
	}
}

// leaseOnce takes what the queue's consumers have ready, highest priority
// first, and, if there is nothing and wait is set, waits a moment for a
// delivery: up to pollWait on a queue of one priority, prioPollWait (then
// another look at every priority) on one of several.
func (q *Queue) leaseOnce(ctx context.Context, name string, n int, wait bool) ([]*queue.Lease, error) {
	prios, err := q.priorities(ctx, name, false)
	if err != nil {
		return nil, err
	}
	prios = append(prios, 0)
	slices.SortFunc(prios, func(a, b int32) int { return cmp.Compare(b, a) })
	var out []*queue.Lease
	for _, p := range prios {
		c, err := q.consumer(ctx, name, p)
		if err != nil {
			return out, err
		}
		start := q.now()
		msgs, err := fetch(c, n-len(out), 0)
		// Deliveries in hand are resolved whatever happens to ctx: one
		// left unresolved would come back with its attempt counted.
		ls, rerr := q.resolveAll(context.WithoutCancel(ctx), name, msgs, start)
		out = append(out, ls...)
		if err == nil {
			err = rerr
		}
		if err != nil || len(out) == n {
			return out, err
		}
	}
	if len(out) > 0 || !wait {
		return out, nil
	}
	maxWait := pollWait
	if len(prios) > 1 {
		maxWait = prioPollWait
	}
	c, err := q.consumer(ctx, name, prios[0])
	if err != nil {
		return nil, err
	}
	start := q.now()
	msgs, err := fetch(c, 1, maxWait)
	if err != nil {
		return nil, err
	}
	return q.resolveAll(context.WithoutCancel(ctx), name, msgs, start)
}

// prioPollWait bounds a blocking fetch on one priority of a queue that has
// several, after which every priority is looked at again.
const prioPollWait = 50 * time.Millisecond

// fetch pulls up to n messages, waiting up to maxWait for the first (0:
// not at all), and reads the batch to its end so that no delivery is
// left unread.
func fetch(c jetstream.Consumer, n int, maxWait time.Duration) ([]jetstream.Msg, error) {
	var b jetstream.MessageBatch
	var err error
	if maxWait == 0 {
		b, err = c.FetchNoWait(n)
	} else {
		b, err = c.Fetch(n, jetstream.FetchMaxWait(maxWait))
	}
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: fetch: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		return msgs, fmt.Errorf("walq: jetstream: fetch: %w", err)
	}
	return msgs, nil
}

// resolveAll turns deliveries into leases, concurrently (each reads the
// job's state record), keeping delivery order.
func (q *Queue) resolveAll(ctx context.Context, name string, msgs []jetstream.Msg, start time.Time) ([]*queue.Lease, error) {
	hs := make([]*held, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hs[i], errs[i] = q.resolve(ctx, name, m, start)
		}()
	}
	wg.Wait()
	var ls []*queue.Lease
	for i, h := range hs {
		if errs[i] != nil {
			// A transient failure (a failover): the delivery comes back
			// shortly, and is remembered so that it does not count as an
			// attempt (see resolve).
			if md, err := msgs[i].Metadata(); err == nil {
				q.mu.Lock()
				q.unresolved[md.Sequence.Stream]++
				q.mu.Unlock()
			}
			_ = msgs[i].NakWithDelay(100 * time.Millisecond)
			continue
		}
		if h == nil {
			continue
		}
		q.mu.Lock()
		q.held[h.tok.Job] = h
		q.mu.Unlock()
		if h.tok.Attempt >= h.meta.MaxAttempts {
			q.armExpiry(h)
		}
		ls = append(ls, &queue.Lease{Job: q.jobOf(h.tok.Job, &h.meta, &h.rec, queue.StateLeased, h), Token: h.tok, Deadline: h.deadline})
	}
	if len(ls) == 0 {
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	return ls, nil
}

// resolve reads what a delivery is: a lease to hand out, or (nil, nil) for
// a delivery that is acknowledged without running — its job finished,
// cancelled, purged, of another generation, without its key, or out of
// attempts (then it is dead).
func (q *Queue) resolve(ctx context.Context, name string, m jetstream.Msg, start time.Time) (*held, error) {
	md, err := m.Metadata()
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: delivery: %w", err)
	}
	h := m.Headers()
	id := md.Sequence.Stream
	var mt meta
	var ok bool
	switch {
	case h.Get(hdrID) != "":
		id, _ = strconv.ParseUint(h.Get(hdrID), 10, 64)
		mt, err = q.loadMeta(ctx, id)
		ok = err == nil
	case h.Get(hdrHold) != "":
		raw, gerr := q.stream.GetLastMsgForSubject(q.rc(ctx), q.holdSubject(h.Get(hdrHold)))
		if gerr == nil {
			id = raw.Sequence
			mt, ok = parseMeta(raw.Header, raw.Data)
		} else if !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return nil, gerr
		}
	default:
		mt, ok = parseMeta(h, m.Data())
	}
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		return nil, err
	}
	if !ok { // purged or orphaned
		return nil, q.drop(ctx, m, md.Sequence.Stream, id)
	}
	r, rev, err := q.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = &record{}
	}
	gen, _ := strconv.Atoi(h.Get(hdrGen))
	if r.finished() || r.Gen != gen {
		return nil, q.drop(ctx, m, md.Sequence.Stream, id)
	}
	now := q.now()
	q.mu.Lock()
	failed := q.unresolved[md.Sequence.Stream]
	q.mu.Unlock()
	if failed > 0 {
		// Deliveries this process could not resolve did not run: make
		// them uncounted before counting this one.
		r.Uncounted += failed
		r.Event, r.At = "", now
		if rev, err = q.putRecord(ctx, id, rev, r); err != nil {
			return nil, err
		}
		q.mu.Lock()
		q.unresolved[md.Sequence.Stream] -= failed
		if q.unresolved[md.Sequence.Stream] <= 0 {
			delete(q.unresolved, md.Sequence.Stream)
		}
		q.mu.Unlock()
	}
	if gen == 0 && mt.RunAt.After(now) && int(md.NumDelivered) > r.Uncounted {
		// Early (no message schedules): back when due, uncounted.
		r.Uncounted++
		r.Event, r.At = "", now
		if _, err := q.putRecord(ctx, id, rev, r); err != nil {
			return nil, err
		}
		return nil, m.NakWithDelay(mt.RunAt.Sub(now))
	}
	if mt.Key != "" {
		holder, err := q.keyHolder(ctx, mt.Key)
		if err != nil {
			return nil, err
		}
		if holder == 0 {
			p := &pending{meta: mt, id: id}
			if err := q.claimKey(ctx, p); err != nil {
				return nil, err
			}
			holder = id
			if p.holder != 0 {
				holder = p.holder
			}
		}
		if holder != id {
			q.orphan(ctx, id)
			return nil, q.drop(ctx, m, md.Sequence.Stream, id)
		}
	}
	attempt := int(md.NumDelivered) - r.Uncounted
	lease := r.LeaseBase + int(md.NumDelivered)
	if attempt > mt.MaxAttempts {
		// The last attempt's lease expired: the job is dead.
		r.State, r.Event, r.At, r.FinishedAt = queue.StateDead, queue.EventDead, now, now
		r.Attempt, r.LastLease = mt.MaxAttempts, lease-1
		r.LastError = "lease expired"
		r.addHistory(queue.Attempt{Number: mt.MaxAttempts, Lease: lease - 1, Outcome: "expired", Error: "lease expired", Ended: now})
		if _, err := q.putRecord(ctx, id, rev, r); err != nil {
			if errors.Is(err, errConflict) {
				return nil, nil // someone else decided; the delivery comes back if needed
			}
			return nil, err
		}
		return nil, m.Term()
	}
	if r.Queue != "" {
		mt.Queue = r.Queue
	}
	return &held{msg: m, tok: queue.Token{Job: id, Attempt: attempt, Lease: lease},
		deadline: start.Add(q.opts.LeaseDuration), started: now, queue: name, rev: rev, rec: *r, meta: mt}, nil
}

// drop acknowledges a delivery that will not run and removes it from the
// stream if it is not the job's record.
func (q *Queue) drop(ctx context.Context, m jetstream.Msg, seq, id uint64) error {
	if err := m.Term(); err != nil {
		return fmt.Errorf("walq: jetstream: ack: %w", err)
	}
	q.forgetDelivery(ctx, seq, id)
	return nil
}

// forgetDelivery deletes a delivery message that is not a job's record once
// it is acknowledged: a requeue's or a fired schedule's.
func (q *Queue) forgetDelivery(ctx context.Context, seq, id uint64) {
	if seq == id {
		return
	}
	if err := q.stream.DeleteMsg(q.rc(ctx), seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		q.opts.Logger.Warn("walq: jetstream: delete an acknowledged delivery", "seq", seq, "job", id, "err", err)
	}
}

// jobOf builds a job snapshot.
func (q *Queue) jobOf(id uint64, m *meta, r *record, st queue.JobState, h *held) *queue.Job {
	j := &queue.Job{ID: id, Queue: m.Queue, Key: m.Key, Payload: m.Payload, State: st,
		MaxAttempts: m.MaxAttempts, Priority: m.Priority, RunAt: m.RunAt, EnqueuedAt: m.EnqueuedAt,
		Timeout: m.Timeout, Meta: maps.Clone(m.Meta)}
	if j.RunAt.IsZero() {
		j.RunAt = m.EnqueuedAt
	}
	if r != nil {
		if r.Queue != "" {
			j.Queue = r.Queue
		}
		j.Attempt, j.LastError, j.FinishedAt = r.Attempt, r.LastError, r.FinishedAt
		j.Result, j.HasResult = r.Result, r.HasResult
		j.History, j.HistoryDropped = append([]queue.Attempt(nil), r.History...), r.Dropped
		if !r.RunAt.IsZero() {
			j.RunAt = r.RunAt
		}
	}
	if h != nil {
		j.Attempt, j.LeaseDeadline = h.tok.Attempt, h.deadline
		j.History = append(j.History, queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started})
	}
	return j
}

// armExpiry makes this Queue dead-letter a job whose last attempt's lease
// runs out while it holds it, so that the job is dead (and Wait answers)
// without waiting for the next delivery to notice. A process that dies
// leaves that to the next delivery (see resolve).
func (q *Queue) armExpiry(h *held) {
	q.mu.Lock()
	d := h.deadline.Sub(q.now())
	q.mu.Unlock()
	time.AfterFunc(d, func() {
		q.mu.Lock()
		if q.closed || q.held[h.tok.Job] != h {
			q.mu.Unlock()
			return
		}
		if q.now().Before(h.deadline) { // extended
			q.mu.Unlock()
			q.armExpiry(h)
			return
		}
		delete(q.held, h.tok.Job)
		q.mu.Unlock()
		ctx := context.Background()
		now := q.now()
		r := h.rec
		r.History = append([]queue.Attempt(nil), h.rec.History...)
		r.State, r.Event, r.At, r.FinishedAt, r.Name = queue.StateDead, queue.EventDead, now, now, h.meta.Queue
		r.Attempt, r.LastLease, r.LastError = h.tok.Attempt, h.tok.Lease, "lease expired"
		r.addHistory(queue.Attempt{Number: h.tok.Attempt, Lease: h.tok.Lease, Started: h.started, Ended: now, Outcome: "expired", Error: "lease expired"})
		if _, err := q.putRecord(q.rc(ctx), h.tok.Job, h.rev, &r); err != nil {
			return // another writer decided, or the next delivery will
		}
		if err := h.msg.Term(); err != nil {
			q.opts.Logger.Debug("walq: jetstream: term", "job", h.tok.Job, "err", err)
		}
	})
}
