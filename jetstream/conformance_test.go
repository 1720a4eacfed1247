package jetstream

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/queue/queuetest"
)

// TestConformance runs the engine conformance suite against the JetStream
// engine on an in-process 3-node cluster (R3), each test on a stream and
// buckets of its own.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t)
	nc := connect(t, c.urls())
	var n atomic.Int64
	open := func(t *testing.T, name string, cfg queuetest.Config) queue.Engine {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q, err := Open(ctx, nc, &Options{Name: name, Replicas: 3, MaxAttempts: cfg.MaxAttempts,
			Backoff: cfg.Backoff, LeaseDuration: cfg.LeaseDuration, KeyRetention: cfg.KeyRetention})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	queuetest.Run(t, queuetest.Harness{
		Open: func(t *testing.T, cfg queuetest.Config) queue.Engine {
			return open(t, fmt.Sprint("C", n.Add(1)), cfg)
		},
		Reopen: func(t *testing.T, e queue.Engine, cfg queuetest.Config) queue.Engine {
			e.Close()
			return open(t, e.(*Queue).opts.Name, cfg)
		},
		// No mock clock (the servers' time), no full history (expired
		// leases are not written anywhere), no priorities, no leased or
		// expired events: see README.md.
		Caps:     queuetest.Caps{},
		Unit:     200 * time.Millisecond,
		Patience: 10 * time.Second,
	})
}
