package main

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/walq/walq/bench"
)

// TestPeersVerify runs every peer adapter through small enqueue, batch,
// drain and recovery workloads. Each workload verifies its own result
// (every job stored and completed exactly once), so an adapter that loses,
// duplicates or corrupts a job fails here rather than reporting a number.
// Each trial runs in a process of its own and reports its peak RSS.
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
		// Each trial runs in a child process (this test binary, running
		// this test only), as `go run .` runs them.
		ChildArgs: []string{"-test.run=^TestPeersVerify$"},
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
		if runtime.GOOS == "linux" && r.PeakRSS < 1<<20 {
			t.Errorf("%s %s/%s: peak RSS %v, want that of its child process", r.Workload, r.Target, r.Durability, r.PeakRSS)
		}
		seen[r.Target]++
	}
	for _, tg := range targets {
		if seen[tg.Name] < 4 {
			t.Errorf("%s ran %d of the 4 workloads", tg.Name, seen[tg.Name])
		}
	}
}
