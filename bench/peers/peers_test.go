package main

import (
	"context"
	"testing"
	"time"

	"github.com/walq/walq/bench"
)

// TestPeersVerify runs every peer adapter through small enqueue, batch,
// drain and recovery workloads. Each workload verifies its own result
// (every job stored and completed exactly once), so an adapter that loses,
// duplicates or corrupts a job fails here rather than reporting a number.
func TestPeersVerify(t *testing.T) {
	targets, err := buildTargets([]string{"walq", "goqite", "bbolt", "river"}, []string{bench.Sync})
	if err != nil {
		t.Fatal(err)
	}
	for i := range targets {
		targets[i].MaxPending = 500
	}
	cfg := bench.Config{
		Dir:       t.TempDir(),
		Workloads: []string{"W1", "W3", "W4", "W5"},
		Targets:   targets,
		Runs:      1,
		Quick:     true,
		Sizes: bench.Sizes{
			EnqueueJobs: 200, BatchJobs: 2_000, DrainJobs: 500, RecoverJobs: 500,
			MaxDuration: 300 * time.Millisecond, BaselineDuration: 50 * time.Millisecond, BaselineBytes: 1 << 20,
		},
	}
	rep, err := bench.Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range rep.Results {
		if r.Skipped != "" {
			t.Logf("%s %s/%s skipped: %s", r.Workload, r.Target, r.Durability, r.Skipped)
			seen[r.Target]++
			continue
		}
		if r.Median <= 0 || len(r.Samples) != 1 {
			t.Errorf("%s %s/%s: median %v over %d samples", r.Workload, r.Target, r.Durability, r.Median, len(r.Samples))
		}
		seen[r.Target]++
	}
	for _, tg := range targets {
		if seen[tg.Name] < 4 {
			t.Errorf("%s ran %d of the 4 workloads", tg.Name, seen[tg.Name])
		}
	}
}
