package queue

import (
	"errors"
	"time"
)

// RetryDelay returns the delay that RetryAfter or Snooze put in err, and
// whether err came from one of them. Engines other than *Queue use it to
// implement Fail.
func RetryDelay(err error) (time.Duration, bool) {
	var r *retryAfter
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}
