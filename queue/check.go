package queue

import "fmt"

// check verifies the queue's invariants (the index's, plus that no job is
// left reserved and no key held when no call is in flight). Tests call it
// when they close a queue.
func (q *Queue) check() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.idx.Check(); err != nil {
		return err
	}
	for _, j := range q.idx.Jobs() {
		if j.Busy {
			return fmt.Errorf("job %d left reserved", j.ID)
		}
	}
	if len(q.inflight) != 0 {
		return fmt.Errorf("%d entries left in flight", len(q.inflight))
	}
	if len(q.keys) != 0 {
		return fmt.Errorf("%d idempotency keys left held", len(q.keys))
	}
	if q.nextID < q.idx.NextID() {
		return fmt.Errorf("next ID %d is below the index's %d", q.nextID, q.idx.NextID())
	}
	return nil
}
