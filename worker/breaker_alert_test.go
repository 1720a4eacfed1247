package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestAlertBreaker checks that Alert.BreakerOpen notifies once when a
// queue's breaker opens, and again only after it has closed and reopened.
func TestAlertBreaker(t *testing.T) {
	t.Parallel()
	q, clk := openQueue(t, &queue.Options{Breakers: map[string]queue.Breaker{"api": {Failures: 1, Cooldown: time.Minute}}})
	var got []AlertEvent
	a := Alert{BreakerOpen: true, Notify: func(ev AlertEvent) { got = append(got, ev) }}
	firing := map[string]bool{}
	check := func(want int) {
		t.Helper()
		a.check(t.Context(), q, clk.Now(), firing)
		if len(got) != want {
			t.Fatalf("%d alerts, want %d: %+v", len(got), want, got)
		}
	}
	lease := func() *queue.Lease {
		t.Helper()
		l, err := q.TryLease(t.Context(), "api")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for range 3 {
		enqueue(t, q, queue.NewJob{Queue: "api"})
	}
	check(0)
	if err := q.Fail(t.Context(), lease().Token, errors.New("503")); err != nil {
		t.Fatal(err)
	}
	check(1)
	if ev := got[0]; ev.Queue != "api" || ev.Kind != "breaker" || ev.Breaker.State != queue.BreakerOpen {
		t.Fatalf("alert %+v", ev)
	}
	check(1) // still open: no repeat
	clk.Add(time.Minute)
	if err := q.Complete(t.Context(), lease().Token, nil); err != nil { // the probe closes it
		t.Fatal(err)
	}
	check(1)
	if err := q.Fail(t.Context(), lease().Token, errors.New("503")); err != nil {
		t.Fatal(err)
	}
	check(2)
}
