package worker

import (
	"context"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Alert watches a queue's stats and calls Notify when a threshold is
// crossed (once per crossing: it fires again only after the condition has
// cleared).
type Alert struct {
	// DeadAbove alerts when a named queue holds more dead jobs than this.
	// Defaults to 0 (off).
	DeadAbove int
	// OldestReadyAbove alerts when a named queue's oldest ready job has
	// waited longer than this. Defaults to 0 (off).
	OldestReadyAbove time.Duration
	// CompactionFailing alerts when the queue's last compaction failed
	// (a full disk, say: the log then grows without bound). Defaults to
	// false (off).
	CompactionFailing bool
	// Every is how often stats are checked, on the queue's clock. Defaults
	// to 10s.
	Every time.Duration
	// Notify receives alerts. It must not block for long.
	Notify func(AlertEvent)
}

// AlertEvent is one threshold crossing.
type AlertEvent struct {
	// Queue is the named queue.
	Queue string
	// Kind is "dead", "oldest_ready" or "compaction" (Queue is empty).
	Kind string
	// Dead and OldestReady are the values that crossed the threshold.
	Dead        int
	OldestReady time.Duration
	// CompactFailures and CompactError describe a failing compaction.
	CompactFailures int
	CompactError    string
	// At is when it was noticed.
	At time.Time
}

func (a *Alert) watch(ctx context.Context, q queue.Engine, clk clock.Clock) {
	every := a.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	t := clk.Ticker(every)
	defer t.Stop()
	firing := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.check(ctx, q, clk.Now(), firing)
	}
}

// check compares the stats with the thresholds once.
func (a *Alert) check(ctx context.Context, q queue.Engine, now time.Time, firing map[string]bool) {
	st, err := q.Stats(ctx)
	if err != nil || a.Notify == nil {
		return
	}
	for name, qs := range st.Queues {
		a.edge(firing, name, "dead", a.DeadAbove > 0 && qs.Dead > a.DeadAbove,
			AlertEvent{Queue: name, Kind: "dead", Dead: qs.Dead, OldestReady: qs.OldestReady, At: now})
		a.edge(firing, name, "oldest_ready", a.OldestReadyAbove > 0 && qs.OldestReady > a.OldestReadyAbove,
			AlertEvent{Queue: name, Kind: "oldest_ready", Dead: qs.Dead, OldestReady: qs.OldestReady, At: now})
	}
	a.edge(firing, "", "compaction", a.CompactionFailing && st.LastCompactError != "",
		AlertEvent{Kind: "compaction", CompactFailures: st.CompactFailures, CompactError: st.LastCompactError, At: now})
}

func (a *Alert) edge(firing map[string]bool, name, kind string, on bool, ev AlertEvent) {
	key := name + "\x00" + kind
	if on && !firing[key] {
		a.Notify(ev)
	}
	firing[key] = on
}
