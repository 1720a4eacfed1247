package jetstream

import (
	"context"
	"time"

	"github.com/walq/walq/queue"
)

// maintain enforces retention every MaintenanceInterval until Close.
func (q *Queue) maintain() {
	defer q.wg.Done()
	t := time.NewTicker(q.opts.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-q.bgCtx.Done():
			return
		case <-t.C:
			if _, err := q.enforceRetention(q.bgCtx); err != nil && q.bgCtx.Err() == nil {
				q.opts.Logger.Warn("walq: jetstream: retention", "err", err)
			}
		}
	}
}

// enforceRetention purges completed and cancelled jobs whose KeyRetention
// has passed, as the WAL engine's maintenance does, and returns how many.
func (q *Queue) enforceRetention(ctx context.Context) (int, error) {
	recs, err := q.allRecords(ctx)
	if err != nil {
		return 0, err
	}
	now := q.now()
	n := 0
	for id, r := range recs {
		if (r.State != queue.StateCompleted && r.State != queue.StateCancelled) ||
			now.Before(r.FinishedAt.Add(q.opts.KeyRetention)) {
			continue
		}
		m, err := q.loadMeta(q.rc(ctx), id)
		if err != nil && err != queue.ErrNotFound {
			return n, err
		}
		if err := q.purgeJob(ctx, id, m.Key); err != nil {
			return n, err
		}
		q.publishLocal(queue.Event{Kind: queue.EventPurged, Job: id, Queue: m.Queue, At: now})
		n++
	}
	return n, nil
}
