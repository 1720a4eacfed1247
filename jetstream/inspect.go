package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

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

// Jobs lists jobs in ID order by reading the stream's record messages from
// AfterID on (one read per message: a listing costs what it passes over).
func (q *Queue) Jobs(ctx context.Context, f queue.JobFilter) ([]*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	info, err := q.stream.Info(q.rc(ctx))
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: stream info: %w", err)
	}
	var out []*queue.Job
	for seq := max(f.AfterID+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		raw, err := q.stream.GetMsg(q.rc(ctx), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("walq: jetstream: job %d: %w", seq, err)
		}
		m, ok := parseMeta(raw.Header, raw.Data)
		if !ok || strings.HasPrefix(raw.Subject, q.opts.Name+".s.") {
			continue
		}
		r, _, err := q.getRecord(ctx, seq)
		if err != nil {
			return nil, err
		}
		m.Payload = nil
		j := q.snapshot(seq, &m, r)
		j.Result = nil
		if (f.Queue != "" && j.Queue != f.Queue) || (f.State != "" && j.State != f.State) {
			continue
		}
		out = append(out, j)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out, nil
}

// Dead lists the dead-letter queue (jobs whose state record says dead),
// oldest death first, without payloads.
func (q *Queue) Dead(ctx context.Context, f queue.DeadFilter) ([]*queue.Job, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	keys, err := q.jobs.ListKeys(q.rc(ctx))
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: list jobs: %w", err)
	}
	var out []*queue.Job
	for k := range keys.Keys() {
		id, err := strconv.ParseUint(strings.TrimPrefix(k, "j."), 10, 64)
		if err != nil {
			continue
		}
		r, _, err := q.getRecord(ctx, id)
		if err != nil {
			return nil, err
		}
		if r == nil || r.State != queue.StateDead {
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
