package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestAlertEdges drives Alert.check step by step: each threshold fires once
// when crossed and again only after it has cleared.
func TestAlertEdges(t *testing.T) {
	t.Parallel()
	type step struct {
		do   func(t *testing.T, q *queue.Queue, clk *testClock)
		want string // the notifications of the check that follows
	}
	kill := func(n int) func(*testing.T, *queue.Queue, *testClock) {
		return func(t *testing.T, q *queue.Queue, _ *testClock) {
			for range n {
				enqueue(t, q, queue.NewJob{Queue: "mail"})
				l, err := q.TryLease(t.Context(), "mail")
				if err != nil {
					t.Fatal(err)
				}
				if err := q.Fail(t.Context(), l.Token, queue.Permanent(errors.New("550"))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	purge := func(t *testing.T, q *queue.Queue, _ *testClock) {
		if _, err := q.PurgeDead(t.Context(), queue.DeadFilter{}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(d time.Duration) func(*testing.T, *queue.Queue, *testClock) {
		return func(_ *testing.T, _ *queue.Queue, clk *testClock) { clk.Add(d) }
	}
	enq := func(t *testing.T, q *queue.Queue, _ *testClock) { enqueue(t, q, queue.NewJob{Queue: "reports"}) }
	drain := func(t *testing.T, q *queue.Queue, _ *testClock) {
		for {
			l, err := q.TryLease(t.Context(), "reports")
			if errors.Is(err, queue.ErrNoJob) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Complete(t.Context(), l.Token, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	nothing := func(*testing.T, *queue.Queue, *testClock) {}

	for _, tc := range []struct {
		name  string
		alert Alert
		steps []step
	}{
		{"dead above", Alert{DeadAbove: 1}, []step{
			{kill(1), ""}, // at the threshold, not above
			{kill(1), "mail dead 2"},
			{nothing, ""}, // still above: no repeat
			{kill(1), ""},
			{purge, ""}, // cleared
			{kill(2), "mail dead 2"},
		}},
		{"oldest ready above", Alert{OldestReadyAbove: time.Minute}, []step{
			{enq, ""},
			{wait(time.Minute), ""},
			{wait(time.Second), "reports oldest_ready 1m1s"},
			{wait(time.Hour), ""},
			{drain, ""},
			{enq, ""},
			{wait(2 * time.Minute), "reports oldest_ready 2m0s"},
		}},
		{"off by default", Alert{}, []step{
			{kill(3), ""},
			{enq, ""},
			{wait(24 * time.Hour), ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, clk := openQueue(t, nil)
			var got []string
			a := tc.alert
			a.Notify = func(ev AlertEvent) {
				s := fmt.Sprintf("%s %s", ev.Queue, ev.Kind)
				if ev.Kind == "dead" {
					s += fmt.Sprintf(" %d", ev.Dead)
				} else {
					s += " " + ev.OldestReady.String()
				}
				if !ev.At.Equal(clk.Now()) {
					t.Errorf("alert At %v, want the check's time %v", ev.At, clk.Now())
				}
				got = append(got, s)
			}
			firing := map[string]bool{}
			for i, s := range tc.steps {
				s.do(t, q, clk)
				got = got[:0]
				a.check(t.Context(), q, clk.Now(), firing)
				if strings.Join(got, "; ") != s.want {
					t.Errorf("step %d: notified %q, want %q", i, strings.Join(got, "; "), s.want)
				}
			}
		})
	}
}

// TestAlertWatch runs the alert the way the runtime does, on a ticker of
// the queue's clock.
func TestAlertWatch(t *testing.T) {
	t.Parallel()
	q, clk := openQueue(t, nil)
	const every = 7 * time.Second // distinct from any heartbeat period
	alerts := make(chan AlertEvent, 16)
	rt := startRuntime(t, q, &Options{Alert: &Alert{
		OldestReadyAbove: time.Minute,
		Every:            every,
		Notify:           func(ev AlertEvent) { alerts <- ev },
	}}, nil)
	enqueue(t, q, queue.NewJob{Queue: "unhandled"})
	clk.waitTickers(t, every, 1)
	// Ten ticks: whichever the watcher takes last, it checks at or after
	// the clock reached the tick's time, and the last is at 70s.
	clk.Add(70 * time.Second)
	ev := receive(t, alerts, "alert")
	if ev.Queue != "unhandled" || ev.Kind != "oldest_ready" || ev.OldestReady <= time.Minute {
		t.Errorf("alert %+v, want oldest_ready on queue unhandled above 1m", ev)
	}
	// Stop waits for the watcher: after it, every alert has been sent.
	if err := rt.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-alerts:
		t.Errorf("second alert for one crossing: %+v", ev)
	default:
	}
}

// TestAlertCompaction fires once when the queue reports a failing
// compaction and again only after one succeeded. A read-only queue reports
// the writer's failures from the status file the writer keeps, which this
// test writes by hand.
func TestAlertCompaction(t *testing.T) {
	t.Parallel()
	q, clk := openQueue(t, nil)
	dir := q.Dir()
	ro, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var got []string
	a := Alert{CompactionFailing: true, Notify: func(ev AlertEvent) {
		got = append(got, fmt.Sprintf("%s %d %s", ev.Kind, ev.CompactFailures, ev.CompactError))
	}}
	status := filepath.Join(dir, "COMPACTION-FAILED")
	firing := map[string]bool{}
	for i, s := range []struct {
		file string // the status file's content, "" for none
		want string
	}{
		{"", ""},
		{`{"failures":1,"error":"walq: compact: disk full","at":"2030-01-01T00:00:00Z"}`, "compaction 1 walq: compact: disk full"},
		{`{"failures":2,"error":"walq: compact: disk full","at":"2030-01-01T00:01:00Z"}`, ""},
		{"", ""},
		{`{"failures":3,"error":"walq: compact: disk full","at":"2030-01-01T00:02:00Z"}`, "compaction 3 walq: compact: disk full"},
	} {
		os.Remove(status)
		if s.file != "" {
			if err := os.WriteFile(status, []byte(s.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got = got[:0]
		a.check(t.Context(), ro, clk.Now(), firing)
		if strings.Join(got, "; ") != s.want {
			t.Errorf("step %d: notified %q, want %q", i, strings.Join(got, "; "), s.want)
		}
	}
}
