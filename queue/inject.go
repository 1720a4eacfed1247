package queue

import "github.com/walq/walq/internal/fault"

// inject asks the fault injector a test registered for the queue's
// directory (see internal/fault) about a step: the error fails the step
// where the step's kind says it can, and the call may block to delay it.
// Without an injector, which is always so outside tests, it returns nil at
// once.
func (q *Queue) inject(op fault.Op) error {
	if q.faults == nil {
		return nil
	}
	return q.faults.MaybeError(op)
}
