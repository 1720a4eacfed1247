package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/walq/walq/queue"
)

// MaxBatch is the most jobs EnqueueBatch takes in one call: the server's
// default limit on the messages of one atomic batch (a delayed job takes
// two: its record and its schedule).
const MaxBatch = 1000

// Enqueue adds a job and returns its ID (the stream sequence of its record
// message) once the server has stored it on a majority of the stream's
// replicas. A held key returns the holder with Duplicate set; see
// queue.Queue.Enqueue.
func (q *Queue) Enqueue(ctx context.Context, job queue.NewJob) (queue.Enqueued, error) {
	res, err := q.enqueue(ctx, []queue.NewJob{job})
	if err != nil {
		return queue.Enqueued{}, err
	}
	return res[0], nil
}

// EnqueueBatch adds jobs in one atomic batch publish: the stream stores all
// of them or none. At most MaxBatch messages (a delayed job counts twice);
// more gives ErrTooLarge.
func (q *Queue) EnqueueBatch(ctx context.Context, jobs []queue.NewJob) ([]queue.Enqueued, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	return q.enqueue(ctx, jobs)
}

// pending is one job of an enqueue being built.
type pending struct {
	meta       meta
	dupOf      int    // index of an earlier job of the batch with the same key, or -1
	holder     uint64 // the key's holder: the answer is a duplicate
	replaceRev uint64 // key record revision to replace (holder purged)
	nuid       string // delayed through a schedule
	id         uint64
	dup        bool
}

func (q *Queue) enqueue(ctx context.Context, jobs []queue.NewJob) ([]queue.Enqueued, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	now := q.now()
	ps := make([]*pending, len(jobs))
	firstKey := map[string]int{}
	for i, j := range jobs {
		p, err := q.prepare(j, now)
		if err != nil {
			return nil, fmt.Errorf("job %d of %d: %w", i, len(jobs), err)
		}
		p.dupOf = -1
		if k := p.meta.Key; k != "" {
			if f, ok := firstKey[k]; ok {
				p.dupOf = f
			} else {
				firstKey[k] = i
			}
		}
		ps[i] = p
	}
	for attempt := 0; ; attempt++ {
		err := q.publish(ctx, ps, now)
		if err == nil {
			break
		}
		if !errors.Is(err, errDupInBatch) || attempt >= 50 {
			return nil, err
		}
		// A keyed job of the batch was published by another producer
		// that has not recorded its key yet: look the keys up again.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	out := make([]queue.Enqueued, len(ps))
	for i, p := range ps {
		switch {
		case p.dupOf >= 0:
			out[i] = queue.Enqueued{ID: ps[p.dupOf].id, Duplicate: true}
		case p.holder != 0:
			out[i] = queue.Enqueued{ID: p.holder, Duplicate: true}
		default:
			out[i] = queue.Enqueued{ID: p.id, Duplicate: p.dup}
		}
	}
	return out, nil
}

func (q *Queue) prepare(j queue.NewJob, now time.Time) (*pending, error) {
	if j.Queue == "" {
		j.Queue = queue.DefaultQueue
	}
	if err := queue.CheckQueueName(j.Queue); err != nil {
		return nil, err
	}
	if len(j.Payload) > q.opts.MaxPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes, limit %d", queue.ErrTooLarge, len(j.Payload), q.opts.MaxPayload)
	}
	if j.MaxAttempts < 0 || j.Delay < 0 || j.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxAttempts, Delay or Timeout", queue.ErrInvalid)
	}
	if j.Group != "" {
		return nil, fmt.Errorf("%w: NewJob.Group: ordered groups are a feature of the WAL engine; the JetStream engine does not order jobs by group", queue.ErrInvalid)
	}
	if j.ReleaseKeyOnDeath {
		return nil, fmt.Errorf("%w: NewJob.ReleaseKeyOnDeath: releasing a dead job's key is a feature of the WAL engine", queue.ErrInvalid)
	}
	if err := queue.CheckMeta(j.Meta); err != nil {
		return nil, err
	}
	m := meta{Queue: j.Queue, Key: j.Key, Payload: j.Payload, MaxAttempts: j.MaxAttempts,
		Priority: j.Priority, Backoff: j.Backoff, Timeout: j.Timeout, EnqueuedAt: now, RunAt: j.RunAt,
		Meta: maps.Clone(j.Meta)}
	if m.MaxAttempts == 0 {
		m.MaxAttempts = q.opts.MaxAttempts
	}
	if m.RunAt.IsZero() && j.Delay > 0 {
		m.RunAt = now.Add(j.Delay)
	}
	if !m.RunAt.After(now) {
		m.RunAt = time.Time{}
	}
	return &pending{meta: m}, nil
}

var errDupInBatch = errors.New("walq: jetstream: batch holds a published key")

// publish looks up the keys, publishes the new jobs' messages (one message,
// or one atomic batch) and records their keys.
func (q *Queue) publish(ctx context.Context, ps []*pending, now time.Time) error {
	for _, p := range ps {
		if p.dupOf < 0 && p.meta.Key != "" {
			if err := q.lookupKey(ctx, p, now); err != nil {
				return err
			}
		}
	}
	var msgs []*nats.Msg
	var fresh []*pending
	for _, p := range ps {
		if p.dupOf >= 0 || p.holder != 0 {
			continue
		}
		// The queue's consumer exists before its first job, so that it
		// never starts from a stream full of finished jobs.
		if _, err := q.consumer(ctx, p.meta.Queue, p.meta.Priority); err != nil {
			return err
		}
		fresh = append(fresh, p)
		if p.meta.RunAt.IsZero() || !q.sched {
			msgs = append(msgs, recordMsg(q.readySubject(p.meta.Queue, p.meta.Priority), &p.meta))
		} else {
			p.nuid = nuid.Next()
			msgs = append(msgs, recordMsg(q.holdSubject(p.nuid), &p.meta))
		}
		if p.meta.Key != "" {
			msgs[len(msgs)-1].Header.Set(jetstream.MsgIDHeader, "walq:"+keyKey(p.meta.Key)+":"+strconv.FormatUint(p.replaceRev, 10))
		}
	}
	for _, p := range fresh { // schedules go after every record
		if p.nuid != "" {
			msgs = append(msgs, q.scheduleMsg(p.meta.Queue, p.meta.Priority, p.meta.RunAt, p.nuid, nil))
		}
	}
	switch {
	case len(msgs) == 0:
		return nil
	case len(msgs) > MaxBatch:
		return fmt.Errorf("%w: %d messages in one batch, limit %d", queue.ErrTooLarge, len(msgs), MaxBatch)
	case len(msgs) == 1:
		ack, err := q.js.PublishMsg(q.rc(ctx), msgs[0])
		if err == nil && ack.Duplicate {
			// The de-duplication window remembers an earlier job of the
			// key; if that job was purged since, publish anew under an
			// ID naming it (racing producers share that ID too).
			if _, gerr := q.loadMeta(ctx, ack.Sequence); errors.Is(gerr, queue.ErrNotFound) {
				msgs[0].Header.Set(jetstream.MsgIDHeader, msgs[0].Header.Get(jetstream.MsgIDHeader)+":"+strconv.FormatUint(ack.Sequence, 10))
				ack, err = q.js.PublishMsg(q.rc(ctx), msgs[0])
			}
		}
		if err != nil {
			return fmt.Errorf("walq: jetstream: publish: %w", err)
		}
		fresh[0].id, fresh[0].dup = ack.Sequence, ack.Duplicate
	default:
		ack, err := jetstreamext.PublishMsgBatch(q.rc(ctx), q.js, msgs)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeBatchDuplicate {
			return errDupInBatch
		}
		if err != nil {
			return fmt.Errorf("walq: jetstream: atomic batch of %d: %w", len(msgs), err)
		}
		// An atomic batch is stored as consecutive sequences ending at
		// ack.Sequence; records come first, in order.
		first := ack.Sequence - uint64(len(msgs)) + 1
		for i, p := range fresh {
			p.id = first + uint64(i)
		}
	}
	for _, p := range fresh {
		if p.meta.Key != "" {
			if err := q.claimKey(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// scheduleMsg builds a message schedule that fires a delivery of the job
// into its queue's ready subject at runAt (whole seconds, rounded up).
func (q *Queue) scheduleMsg(queueName string, prio int32, runAt time.Time, holdNUID string, h nats.Header) *nats.Msg {
	msg := nats.NewMsg(q.schedSubject(queueName, nuid.Next()))
	for k, v := range h {
		msg.Header[k] = v
	}
	at := runAt.Truncate(time.Second)
	if at.Before(runAt) {
		at = at.Add(time.Second)
	}
	msg.Header.Set("Nats-Schedule", "@at "+at.UTC().Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", q.readySubject(queueName, prio))
	msg.Header.Set(hdrRunAt, unixNano(runAt))
	if holdNUID != "" {
		msg.Header.Set(hdrHold, holdNUID)
	}
	return msg
}

// lookupKey finds the key's holder. A finished holder past KeyRetention is
// purged and its key replaced, as in the WAL engine.
func (q *Queue) lookupKey(ctx context.Context, p *pending, now time.Time) error {
	p.holder, p.replaceRev = 0, 0
	e, err := q.keys.Get(q.rc(ctx), keyKey(p.meta.Key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walq: jetstream: key %q: %w", p.meta.Key, err)
	}
	var kr keyRecord
	if err := json.Unmarshal(e.Value(), &kr); err != nil {
		return fmt.Errorf("%w: key %q: %v", queue.ErrCorrupt, p.meta.Key, err)
	}
	r, _, err := q.getRecord(ctx, kr.ID)
	if err != nil {
		return err
	}
	expired := r != nil && (r.State == queue.StateCompleted || r.State == queue.StateCancelled) &&
		!now.Before(r.FinishedAt.Add(q.opts.KeyRetention))
	if !expired {
		if _, err := q.loadMeta(ctx, kr.ID); errors.Is(err, queue.ErrNotFound) {
			expired = true // purged holder
		} else if err != nil {
			return err
		}
	}
	if !expired {
		p.holder = kr.ID
		return nil
	}
	if err := q.purgeJob(ctx, kr.ID, ""); err != nil {
		return err
	}
	p.replaceRev = e.Revision()
	return nil
}

// claimKey records job p.id as the key's holder, first writer wins. A job
// that loses (another producer's job got the key first) is cancelled
// before it can run, and the answer becomes a duplicate of the winner.
func (q *Queue) claimKey(ctx context.Context, p *pending) error {
	val, _ := json.Marshal(keyRecord{ID: p.id})
	var err error
	if p.replaceRev == 0 {
		_, err = q.keys.Create(q.rc(ctx), keyKey(p.meta.Key), val)
	} else {
		_, err = q.keys.Update(q.rc(ctx), keyKey(p.meta.Key), val, p.replaceRev)
	}
	if err == nil {
		return nil
	}
	if !isConflict(err) {
		return fmt.Errorf("walq: jetstream: key %q: record holder: %w", p.meta.Key, err)
	}
	holder, err := q.keyHolder(ctx, p.meta.Key)
	if err != nil {
		return err
	}
	if holder == 0 {
		// The holder was purged between the conflict and the read.
		return fmt.Errorf("walq: jetstream: key %q: holder changed while claiming", p.meta.Key)
	}
	if holder != p.id {
		q.orphan(ctx, p.id)
		p.holder = holder
	}
	return nil
}

func (q *Queue) keyHolder(ctx context.Context, key string) (uint64, error) {
	e, err := q.keys.Get(q.rc(ctx), keyKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("walq: jetstream: key %q: %w", key, err)
	}
	var kr keyRecord
	if err := json.Unmarshal(e.Value(), &kr); err != nil {
		return 0, fmt.Errorf("%w: key %q: %v", queue.ErrCorrupt, key, err)
	}
	return kr.ID, nil
}

// orphan forgets a job that lost its key to another: its record message is
// deleted, so a delivery of it finds no job and is acked without running.
func (q *Queue) orphan(ctx context.Context, id uint64) {
	if err := q.stream.DeleteMsg(q.rc(ctx), id); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		q.opts.Logger.Warn("walq: jetstream: forget a job that lost its key", "job", id, "err", err)
	}
}

// errCodeBatchDuplicate is the server's error code for an atomic batch
// holding a Nats-Msg-Id it has seen (JSAtomicPublishContainsDuplicateMessageErr).
const errCodeBatchDuplicate jetstream.ErrorCode = 10201
