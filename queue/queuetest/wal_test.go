package queuetest_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/queue/queuetest"
)

// walHarness opens the WAL engine (*queue.Queue) in a fresh directory on a
// mock clock, with background maintenance out of the way (retention is
// checked where keys are looked up).
func walHarness() queuetest.Harness {
	options := func(cfg queuetest.Config) *queue.Options {
		mc := clock.NewMock()
		mc.Set(time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC))
		return &queue.Options{
			Clock:               mc,
			MaxAttempts:         cfg.MaxAttempts,
			Backoff:             cfg.Backoff,
			LeaseDuration:       cfg.LeaseDuration,
			KeyRetention:        cfg.KeyRetention,
			Durability:          cfg.Durability,
			Logger:              slog.New(slog.DiscardHandler),
			MaintenanceInterval: 10000 * time.Hour,
		}
	}
	open := func(t *testing.T, dir string, o *queue.Options) *queue.Queue {
		q, err := queue.Open(dir, o)
		if err != nil {
			t.Fatalf("queue.Open: %v", err)
		}
		t.Cleanup(func() {
			if err := q.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return q
	}
	return queuetest.Harness{
		Open: func(t *testing.T, cfg queuetest.Config) queue.Engine {
			return open(t, t.TempDir(), options(cfg))
		},
		Reopen: func(t *testing.T, e queue.Engine, cfg queuetest.Config) queue.Engine {
			q := e.(*queue.Queue)
			o := q.Options()
			if err := q.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, q.Dir(), &o) // the same clock, at the same time
		},
		Caps: queuetest.Caps{
			MockClock:  true,
			Durability: []queue.Durability{queue.Sync, queue.Interval, queue.None},
			History:    true,
			Ordering:   true,
			Events:     true,
		},
		Parallel: true,
	}
}

// TestConformance runs the conformance suite against the WAL engine.
func TestConformance(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, walHarness())
}
