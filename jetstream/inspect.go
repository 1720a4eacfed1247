package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/walq/walq/queue"
)

// Get returns a snapshot of the job: its record message and state record.
// A job counts as leased only while this Queue holds its lease; one leased
// by another process shows as ready.
func (q *Queue) Get(ctx context.Context, id uint64) (*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	m, err := q.loadMeta(ctx, id)
	if err != nil {
		return nil, err
	}
	r, _, err := q.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	return q.snapshot(id, &m, r), nil
}

func (q *Queue) snapshot(id uint64, m *meta, r *record) *queue.Job {
	q.mu.Lock()
	h := q.held[id]
	q.mu.Unlock()
	if r != nil && r.finished() {
		return q.jobOf(id, m, r, r.State, nil)
	}
	if h != nil && q.now().Before(h.deadline) {
		return q.jobOf(id, m, r, queue.StateLeased, h)
	}
	j := q.jobOf(id, m, r, queue.StateReady, nil)
	if j.RunAt.After(q.now()) {
		j.State = queue.StateScheduled
	}
	return j
}

// GetByKey returns the job holding key.
func (q *Queue) GetByKey(ctx context.Context, key string) (*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	id, err := q.keyHolder(ctx, key)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, queue.ErrNotFound
	}
	return q.Get(ctx, id)
}

// Jobs lists jobs in ID order: one pass of an ordered consumer (headers
// only) over the stream's record messages from AfterID on, and one pass of
// a watch over the jobs bucket for their states (a Get per job instead
// when Limit is small).
func (q *Queue) Jobs(ctx context.Context, f queue.JobFilter) ([]*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	var recs map[uint64]*record
	if f.Limit == 0 || f.Limit > 64 {
		var err error
		if recs, err = q.allRecords(ctx); err != nil {
			return nil, err
		}
	}
	var out []*queue.Job
	err := q.scan(ctx, f.AfterID+1, func(id uint64, m *meta) (bool, error) {
		r, ok := recs[id]
		if recs == nil {
			var err error
			if r, _, err = q.getRecord(q.rc(ctx), id); err != nil {
				return false, err
			}
		} else if !ok {
			r = nil
		}
		j := q.snapshot(id, m, r)
		j.Result = nil
		if (f.Queue != "" && j.Queue != f.Queue) || (f.State != "" && j.State != f.State) {
			return true, nil
		}
		out = append(out, j)
		return f.Limit == 0 || len(out) < f.Limit, nil
	})
	return out, err
}

// scan calls fn for every job record message from sequence from on, in
// order, without payloads, until fn returns false.
func (q *Queue) scan(ctx context.Context, from uint64, fn func(id uint64, m *meta) (bool, error)) error {
	info, err := q.stream.Info(q.rc(ctx))
	if err != nil {
		return fmt.Errorf("walq: jetstream: stream info: %w", err)
	}
	last := info.State.LastSeq
	if from > last || info.State.Msgs == 0 {
		return nil
	}
	c, err := q.js.OrderedConsumer(q.rc(ctx), q.opts.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{q.opts.Name + ".q.>", q.opts.Name + ".h.>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
		HeadersOnly:    true,
	})
	if err != nil {
		return fmt.Errorf("walq: jetstream: scan: %w", err)
	}
	// The ordered consumer may sit on a follower that lags the leader,
	// whose last sequence Info gave: read on until that sequence, or
	// until a short wait brings nothing (the last message is outside the
	// filter, or deleted).
	start := time.Now()
	var seen uint64
	idle := false
	for seen < last {
		var b jetstream.MessageBatch
		if idle {
			b, err = c.Fetch(1000, jetstream.FetchMaxWait(100*time.Millisecond))
		} else {
			b, err = c.FetchNoWait(1000)
		}
		if errors.Is(err, nats.ErrNoResponders) && time.Since(start) < q.opts.RequestTimeout {
			time.Sleep(20 * time.Millisecond) // the consumer is being placed
			continue
		}
		if err != nil {
			return fmt.Errorf("walq: jetstream: scan: %w", err)
		}
		n := 0
		for msg := range b.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("walq: jetstream: scan: %w", err)
			}
			seen = md.Sequence.Stream
			if m, ok := parseMeta(msg.Headers(), nil); ok {
				more, err := fn(md.Sequence.Stream, &m)
				if err != nil || !more {
					return err
				}
			}
		}
		if err := b.Error(); errors.Is(err, nats.ErrNoResponders) && n == 0 && time.Since(start) < q.opts.RequestTimeout {
			time.Sleep(20 * time.Millisecond) // the consumer is being placed
			continue
		} else if err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("walq: jetstream: scan: %w", err)
		}
		if n == 0 {
			if idle {
				return nil
			}
			idle = true
		} else {
			idle = false
		}
	}
	return nil
}

// allRecords reads every job state record in one pass of a watch. The
// watch's consumer may sit on a follower that lags the leader: it reads
// on until it has seen the bucket's last revision, as the leader gives it.
func (q *Queue) allRecords(ctx context.Context) (map[uint64]*record, error) {
	st, err := q.js.Stream(q.rc(ctx), "KV_"+q.opts.Name+"_jobs")
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: read jobs: %w", err)
	}
	last := st.CachedInfo().State.LastSeq
	wctx, cancel := context.WithTimeout(ctx, q.opts.RequestTimeout*6)
	defer cancel()
	w, err := q.jobs.WatchAll(wctx, jetstream.IncludeHistory())
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: read jobs: %w", err)
	}
	defer w.Stop()
	recs := map[uint64]*record{}
	var seen uint64
	initial := true
	for initial || seen < last {
		var e jetstream.KeyValueEntry
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("walq: jetstream: read jobs: %w", wctx.Err())
		case u, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("walq: jetstream: read jobs: watch ended")
			}
			e = u
		}
		if e == nil {
			initial = false
			continue
		}
		seen = max(seen, e.Revision())
		id, err := strconv.ParseUint(strings.TrimPrefix(e.Key(), "j."), 10, 64)
		if err != nil {
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			delete(recs, id)
			continue
		}
		var r record
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("%w: job %d: state record: %v", queue.ErrCorrupt, id, err)
		}
		recs[id] = &r
	}
	return recs, nil
}

// Dead lists the dead-letter queue (jobs whose state record says dead),
// oldest death first, without payloads.
func (q *Queue) Dead(ctx context.Context, f queue.DeadFilter) ([]*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	recs, err := q.allRecords(ctx)
	if err != nil {
		return nil, err
	}
	var out []*queue.Job
	for id, r := range recs {
		if r.State != queue.StateDead {
			continue
		}
		m, err := q.loadMeta(ctx, id)
		if errors.Is(err, queue.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m.Payload = nil
		j := q.jobOf(id, &m, r, queue.StateDead, nil)
		if (f.Queue != "" && j.Queue != f.Queue) || !strings.Contains(j.LastError, f.ErrorContains) ||
			(!f.Before.IsZero() && !j.FinishedAt.Before(f.Before)) || (!f.After.IsZero() && !j.FinishedAt.After(f.After)) {
			continue
		}
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].FinishedAt.Equal(out[b].FinishedAt) {
			return out[a].FinishedAt.Before(out[b].FinishedAt)
		}
		return out[a].ID < out[b].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Stats counts jobs per queue from a listing (see Jobs) and reads each
// queue's consumer for its paused flag. Metrics and Log stay zero.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	jobs, err := q.Jobs(ctx, queue.JobFilter{})
	if err != nil {
		return queue.Stats{}, err
	}
	st := queue.Stats{Queues: map[string]queue.QueueStats{}}
	for _, j := range jobs {
		s := st.Queues[j.Queue]
		switch j.State {
		case queue.StateReady:
			s.Ready++
		case queue.StateScheduled:
			s.Scheduled++
		case queue.StateLeased:
			s.Leased++
		case queue.StateCompleted:
			s.Completed++
		case queue.StateDead:
			s.Dead++
		case queue.StateCancelled:
			s.Cancelled++
		}
		st.Queues[j.Queue] = s
	}
	for name, s := range st.Queues {
		c, err := q.js.Consumer(q.rc(ctx), q.opts.Name, q.consumerName(name, 0))
		if err != nil {
			continue
		}
		if info, err := c.Info(q.rc(ctx)); err == nil {
			s.Paused = info.Paused
		}
		st.Queues[name] = s
	}
	return st, nil
}

// Wait watches the job's state record until the job finishes.
func (q *Queue) Wait(ctx context.Context, id uint64) ([]byte, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	if _, err := q.loadMeta(ctx, id); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := q.jobs.Watch(wctx, jobKey(id))
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: watch job %d: %w", id, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
			return nil, queue.ErrClosed
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("walq: jetstream: watch job %d ended", id)
			}
			if e == nil {
				continue // end of the initial values
			}
			if e.Operation() != jetstream.KeyValuePut {
				return nil, queue.ErrNotFound
			}
			var r record
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				return nil, fmt.Errorf("%w: job %d: state record: %v", queue.ErrCorrupt, id, err)
			}
			switch r.State {
			case queue.StateCompleted:
				return r.Result, nil
			case queue.StateCancelled:
				return nil, queue.ErrCancelled
			case queue.StateDead:
				return nil, &queue.DeadError{ID: id, Attempts: r.Attempt, Reason: r.LastError, At: r.FinishedAt}
			}
		}
	}
}
