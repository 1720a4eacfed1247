package queue

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		err  error
		d    time.Duration
		want bool
	}{
		{RetryAfter(3*time.Second, errors.New("x")), 3 * time.Second, true},
		{fmt.Errorf("wrapped: %w", Snooze(time.Minute)), time.Minute, true},
		{errors.New("plain"), 0, false},
		{Permanent(errors.New("p")), 0, false},
	} {
		d, ok := RetryDelay(tc.err)
		if d != tc.d || ok != tc.want {
			t.Errorf("RetryDelay(%v) = %v, %v; want %v, %v", tc.err, d, ok, tc.d, tc.want)
		}
	}
}
