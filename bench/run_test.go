package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// tiny are sizes small enough for every workload to run in a second or two.
var tiny = Sizes{
	EnqueueJobs:      64,
	BatchJobs:        2000,
	DrainJobs:        300,
	RecoverJobs:      2000,
	WriteAmpJobs:     1500,
	MaxDuration:      5 * time.Second,
	LatencyDuration:  200 * time.Millisecond,
	BaselineDuration: 50 * time.Millisecond,
	BaselineBytes:    1 << 20,
}

// TestRunEveryWorkload runs every workload once, tiny, against walq and
// the in-memory double, and checks that each produced a verified number.
func TestRunEveryWorkload(t *testing.T) {
	walq, err := Walq(Sync)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: t.TempDir(), Runs: 1, Sizes: tiny, Targets: []Target{walq, memTarget(faultNone)}, InProcess: true}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range Workloads {
		for _, label := range []string{"walq/sync", "mem/sync"} {
			if w.runtime && label == "mem/sync" && w.kind == kindDrain {
				continue // the double has no runtime: reported as n/a
			}
			res := rep.Find(w.ID, label)
			if w.kind == kindWriteAmp && label == "mem/sync" {
				if res != nil {
					t.Errorf("%s %s: measured a backend without walq's log (%+v)", w.ID, label, res)
				}
				continue // reported as n/a: the table says so
			}
			if w.kind == kindWriteAmp && res != nil && res.Median < 1 {
				t.Errorf("%s %s: %.2f bytes written per payload byte: the log holds every payload at least once", w.ID, label, res.Median)
			}
			if res == nil || res.Median <= 0 || len(res.Samples) != 1 {
				t.Errorf("%s %s: no result (%+v)", w.ID, label, res)
			}
		}
	}
	if res := rep.Find("W7", "walq/sync"); res != nil && (res.Latency == nil || res.Latency.P50 <= 0) {
		t.Errorf("W7 walq/sync: no latency distribution: %+v", res.Latency)
	}
	if rep.Baseline.FsyncRate.Median <= 0 || rep.Baseline.WriteBandwidth.Median <= 0 || len(rep.Baseline.FsyncRate.Samples) != 2 {
		t.Errorf("baseline not measured before and after: %+v", rep.Baseline)
	}
	var out bytes.Buffer
	rep.WriteTable(&out)
	for _, want := range []string{"W1  durable enqueue", "walq/sync", "mem/sync", "no worker runtime", "walq's own log measure", "≤ 2× payload bytes written", "targets (walq, sync)", "raw limits:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunCatchesBrokenBackend checks that a backend breaking its promises
// makes Run fail instead of reporting a number.
func TestRunCatchesBrokenBackend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    fault
		workload string
		want     string
	}{
		{"dropped job", faultDrop, "W1", "acknowledged"},
		{"dropped job in batch", faultDrop, "W3", "acknowledged"},
		{"duplicate delivery", faultDuplicate, "W4", "delivered twice"},
		{"corrupt payload", faultCorrupt, "W4", "corrupt"},
		{"lost completion", faultLoseComplete, "W4", "still pending"},
		{"duplicate at recovery", faultDuplicate, "W5", "still pending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sz := tiny
			sz.LatencyDuration = 50 * time.Millisecond
			cfg := Config{Dir: t.TempDir(), Runs: 3, Sizes: sz, Targets: []Target{memTarget(tc.fault)}, Workloads: []string{tc.workload}, InProcess: true}
			rep, err := Run(context.Background(), cfg, nil)
			if err == nil {
				t.Fatalf("Run succeeded on a broken backend: %+v", rep.Results)
			}
			if rep != nil {
				t.Errorf("Run returned a report with its error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestLatencyCatchesLostJob runs W7 alone on a backend that drops a job:
// the run must end with an error once the grace period passes, not report
// a distribution without it.
func TestLatencyCatchesLostJob(t *testing.T) {
	w, err := workloadByID("W7")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trial{t: memTarget(faultDrop), w: w, sz: tiny, dir: t.TempDir(), rate: 500, basis: "test"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := tr.run(ctx); err == nil {
		t.Fatal("W7 succeeded with a job lost")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Workloads: []string{"W9"}},
		{Durability: []string{"eventually"}},
		{Runs: -1},
	} {
		if _, err := Run(context.Background(), cfg, nil); err == nil {
			t.Errorf("Run(%+v) accepted a bad config", cfg)
		}
	}
}

func TestQuantileAndMedian(t *testing.T) {
	xs := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0.11, 2}, {1, 10}} {
		if got := quantile(xs, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
}

func TestGoals(t *testing.T) {
	rep := &Report{Baseline: Baseline{FsyncRate: Stat{Median: 1000}}}
	add := func(id, target string, v float64, lower bool) {
		rep.Results = append(rep.Results, Result{Workload: id, Target: target, Durability: Sync, Stat: Stat{Median: v}, LowerIsBetter: lower, Pending: 1_000_000})
	}
	add("W1", "walq", 950, false)
	add("W1", "goqite", 500, false)
	add("W2", "walq", 50_000, false)
	add("W3", "walq", 400_000, false)
	add("W3", "bbolt", 200_000, false)
	add("W5", "walq", 1500, true)
	add("W5", "bbolt", 3, true)
	add("W6", "walq", 98, true)
	got := map[string]Goal{}
	for _, g := range rep.Goals() {
		got[g.Workload+" "+g.Want] = g
	}
	check := func(key string, met bool) {
		t.Helper()
		g, ok := got[key]
		if !ok {
			t.Fatalf("no goal %q in %v", key, got)
		}
		if g.Met != met || (g.Gap == "") != met {
			t.Errorf("%s: met %v gap %q, want met %v", key, g.Met, g.Gap, met)
		}
	}
	check("W1 ≥ 0.90× the serial fdatasync rate", true)
	check("W2 ≥ 100,000 jobs/s", false)
	check("W5 ≤ 150 ms for 1,000,000 pending jobs", false)
	check("W3 ≥ 1.5× the bbolt queue in the same run", true)
	check("W6 ≤ 120 B/job", true)
	check("W1 ahead of goqite/sync", true)
	check("W5 ahead of bbolt/sync", false)
}
