package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/walq/walq/queue"
)

// purgeJob forgets a job: its state record, its record message and, when
// key is set and still names it, its key.
func (q *Queue) purgeJob(ctx context.Context, id uint64, key string) error {
	if key != "" {
		if holder, err := q.keyHolder(ctx, key); err != nil {
			return err
		} else if holder == id {
			if err := q.keys.Purge(q.rc(ctx), keyKey(key)); err != nil {
				return fmt.Errorf("walq: jetstream: key %q: purge: %w", key, err)
			}
		}
	}
	if err := q.stream.DeleteMsg(q.rc(ctx), id); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("walq: jetstream: job %d: purge: %w", id, err)
	}
	if err := q.jobs.Purge(q.rc(ctx), jobKey(id)); err != nil {
		return fmt.Errorf("walq: jetstream: job %d: purge state: %w", id, err)
	}
	return nil
}

// Purge forgets finished jobs (dead, completed, cancelled) with their keys.
// Every job is checked first; the purges themselves are one per job, not
// one atomic write.
func (q *Queue) Purge(ctx context.Context, ids []uint64) error {
	if err := q.check(); err != nil {
		return err
	}
	metas := make([]meta, len(ids))
	for i, id := range ids {
		m, err := q.loadMeta(ctx, id)
		if err != nil {
			return fmt.Errorf("job %d: %w", id, err)
		}
		r, _, err := q.getRecord(ctx, id)
		if err != nil {
			return err
		}
		if r == nil || !r.finished() {
			return fmt.Errorf("%w: job %d is not finished", queue.ErrState, id)
		}
		metas[i] = m
	}
	for i, id := range ids {
		if err := q.purgeJob(ctx, id, metas[i].Key); err != nil {
			return err
		}
		q.publishLocal(queue.Event{Kind: queue.EventPurged, Job: id, Queue: metas[i].Queue, At: q.now()})
	}
	return nil
}

// PurgeDead purges the dead jobs f selects.
func (q *Queue) PurgeDead(ctx context.Context, f queue.DeadFilter) (int, error) {
	dead, err := q.Dead(ctx, f)
	if err != nil {
		return 0, err
	}
	ids := make([]uint64, len(dead))
	for i, j := range dead {
		ids[i] = j.ID
	}
	return len(ids), q.Purge(ctx, ids)
}

// Cancel records a ready or scheduled job as cancelled; its delivery is
// then acknowledged without running. A job leased through this Queue gives
// ErrState; a lease held by another process loses its completion instead
// (first writer wins).
func (q *Queue) Cancel(ctx context.Context, id uint64) error {
	if err := q.check(); err != nil {
		return err
	}
	m, err := q.loadMeta(ctx, id)
	if err != nil {
		return err
	}
	q.mu.Lock()
	_, leased := q.held[id]
	q.mu.Unlock()
	if leased {
		return fmt.Errorf("%w: job %d is leased", queue.ErrState, id)
	}
	r, rev, err := q.getRecord(ctx, id)
	if err != nil {
		return err
	}
	if r == nil {
		r = &record{}
	}
	if r.finished() {
		return fmt.Errorf("%w: job %d is %s", queue.ErrState, id, r.State)
	}
	now := q.now()
	r.State, r.Event, r.At, r.FinishedAt, r.Name = queue.StateCancelled, queue.EventCancelled, now, now, m.Queue
	if _, err := q.putRecord(ctx, id, rev, r); errors.Is(err, errConflict) {
		return fmt.Errorf("%w: job %d changed while cancelling", queue.ErrState, id)
	} else if err != nil {
		return err
	}
	return nil
}

// Requeue moves dead jobs back to pending: the state record starts a new
// generation (attempts reset) and a delivery message naming the job is
// published to the target queue (through a schedule when delayed).
func (q *Queue) Requeue(ctx context.Context, ids []uint64, opts queue.RequeueOptions) error {
	if err := q.check(); err != nil {
		return err
	}
	if opts.Queue != "" {
		if err := queue.CheckQueueName(opts.Queue); err != nil {
			return err
		}
	}
	type item struct {
		m   meta
		r   *record
		rev uint64
	}
	items := make([]item, len(ids))
	for i, id := range ids {
		m, err := q.loadMeta(ctx, id)
		if err != nil {
			return fmt.Errorf("job %d: %w", id, err)
		}
		r, rev, err := q.getRecord(ctx, id)
		if err != nil {
			return err
		}
		if r == nil || r.State != queue.StateDead {
			return fmt.Errorf("%w: job %d is not dead", queue.ErrState, id)
		}
		items[i] = item{m, r, rev}
	}
	now := q.now()
	for i, id := range ids {
		it := items[i]
		r := *it.r
		target := it.m.Queue
		if r.Queue != "" {
			target = r.Queue
		}
		if opts.Queue != "" {
			target = opts.Queue
		}
		r.State, r.Event, r.At, r.FinishedAt = "", queue.EventRequeued, now, time.Time{}
		r.Gen++
		r.Uncounted, r.LeaseBase, r.Attempt = 0, r.LastLease, 0
		r.Queue, r.Name, r.RunAt = target, target, now.Add(opts.Delay)
		r.addHistory(queue.Attempt{Outcome: "requeued", Started: now, Ended: now})
		if _, err := q.putRecord(ctx, id, it.rev, &r); errors.Is(err, errConflict) {
			return fmt.Errorf("%w: job %d changed while requeueing", queue.ErrState, id)
		} else if err != nil {
			return err
		}
		if _, err := q.consumer(ctx, target, it.m.Priority); err != nil {
			return err
		}
		h := nats.Header{}
		h.Set(hdrID, strconv.FormatUint(id, 10))
		h.Set(hdrGen, strconv.Itoa(r.Gen))
		var msg *nats.Msg
		if opts.Delay > 0 && q.sched {
			msg = q.scheduleMsg(target, it.m.Priority, now.Add(opts.Delay), "", h)
		} else {
			msg = nats.NewMsg(q.readySubject(target, it.m.Priority))
			msg.Header = h
		}
		if _, err := q.js.PublishMsg(q.rc(ctx), msg); err != nil {
			return fmt.Errorf("walq: jetstream: job %d: requeue: %w", id, err)
		}
	}
	return nil
}

// RequeueDead requeues the dead jobs f selects.
func (q *Queue) RequeueDead(ctx context.Context, f queue.DeadFilter, opts queue.RequeueOptions) (int, error) {
	dead, err := q.Dead(ctx, f)
	if err != nil {
		return 0, err
	}
	ids := make([]uint64, len(dead))
	for i, j := range dead {
		ids[i] = j.ID
	}
	return len(ids), q.Requeue(ctx, ids, opts)
}

// pauseForever is the pause deadline of a paused queue's consumers.
var pauseForever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Pause pauses the named queue's consumer (the server's consumer pause,
// kept in the consumer's replicated configuration, so it survives
// restarts): no deliveries until Resume.
func (q *Queue) Pause(ctx context.Context, name string) error {
	return q.pause(ctx, name, true)
}

// Resume undoes Pause.
func (q *Queue) Resume(ctx context.Context, name string) error {
	return q.pause(ctx, name, false)
}

func (q *Queue) pause(ctx context.Context, name string, on bool) error {
	if err := q.check(); err != nil {
		return err
	}
	if name == "" {
		name = queue.DefaultQueue
	}
	if err := queue.CheckQueueName(name); err != nil {
		return err
	}
	prios, err := q.priorities(ctx, name, true)
	if err != nil {
		return err
	}
	// Priority 0 first: its consumer's pause is the queue's, the one a
	// consumer created later for a new priority copies.
	for _, p := range append([]int32{0}, prios...) {
		if _, err = q.consumer(ctx, name, p); err != nil {
			return err
		}
		if on {
			_, err = q.js.PauseConsumer(q.rc(ctx), q.opts.Name, q.consumerName(name, p), pauseForever)
		} else {
			_, err = q.js.ResumeConsumer(q.rc(ctx), q.opts.Name, q.consumerName(name, p))
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("walq: jetstream: pause queue %q: %w", name, err)
	}
	return nil
}
