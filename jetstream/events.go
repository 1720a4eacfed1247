package jetstream

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/walq/walq/queue"
)

// Subscribe streams job transitions from a watch of the jobs bucket
// (completed, retrying, dead, released, requeued, cancelled, from every
// process) and from a stream consumer of new record messages (enqueued).
// Leases are not written anywhere, so there are no leased or expired
// events. Events of one job from the two watches may arrive out of order
// (a completed event before its job's enqueued event).
func (q *Queue) Subscribe(buffer int) *queue.Subscription {
	s := q.bc.Subscribe(buffer)
	q.mu.Lock()
	start := !q.watching && !q.closed
	q.watching = true
	ctx := q.bgCtx
	q.mu.Unlock()
	if start {
		// Both watches are in place before Subscribe returns, so that a
		// change made after it is seen.
		ready := make(chan struct{}, 2)
		q.wg.Add(2)
		go q.watchRecords(ctx, ready)
		go q.watchEnqueues(ctx, ready)
		<-ready
		<-ready
	}
	return s
}

func (q *Queue) publishLocal(ev queue.Event) { q.bc.Publish(ev) }

func (q *Queue) watchRecords(ctx context.Context, ready chan<- struct{}) {
	defer q.wg.Done()
	w, err := q.jobs.WatchAll(ctx, jetstream.UpdatesOnly())
	ready <- struct{}{}
	if err != nil {
		if ctx.Err() == nil {
			q.opts.Logger.Warn("walq: jetstream: watch jobs", "err", err)
		}
		return
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var r record
			if json.Unmarshal(e.Value(), &r) != nil || r.Event == "" {
				continue
			}
			id, _ := strconv.ParseUint(strings.TrimPrefix(e.Key(), "j."), 10, 64)
			ev := queue.Event{Kind: r.Event, Job: id, Queue: r.Name, Attempt: r.Attempt, At: r.At, Error: r.LastError}
			if r.Event == queue.EventRetrying || r.Event == queue.EventReleased || r.Event == queue.EventRequeued {
				ev.NextRunAt = r.RunAt
			}
			if n := len(r.History); n > 0 && !r.History[n-1].Started.IsZero() {
				ev.Duration = r.History[n-1].Ended.Sub(r.History[n-1].Started)
			}
			q.bc.Publish(ev)
		}
	}
}

func (q *Queue) watchEnqueues(ctx context.Context, ready chan<- struct{}) {
	defer q.wg.Done()
	sent := false
	defer func() {
		if !sent {
			ready <- struct{}{}
		}
	}()
	c, err := q.js.OrderedConsumer(ctx, q.opts.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{q.opts.Name + ".q.>", q.opts.Name + ".h.>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		if ctx.Err() == nil {
			q.opts.Logger.Warn("walq: jetstream: watch enqueues", "err", err)
		}
		return
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		mt, ok := parseMeta(m.Headers(), nil)
		if !ok {
			return
		}
		md, err := m.Metadata()
		if err != nil {
			return
		}
		q.bc.Publish(queue.Event{Kind: queue.EventEnqueued, Job: md.Sequence.Stream, Queue: mt.Queue, At: mt.EnqueuedAt})
	})
	ready <- struct{}{}
	sent = true
	if err != nil {
		q.opts.Logger.Warn("walq: jetstream: watch enqueues", "err", err)
		return
	}
	<-ctx.Done()
	cc.Stop()
}
