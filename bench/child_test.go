package bench

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestRunInChildProcesses runs workloads of every procedure against walq,
// each trial in a child process (this test binary, started again to run
// only this test), twice, and checks that every row has a verified number
// and a peak RSS per run. W4's second run drains the fixture the first one
// left, so the ledger must cross the process boundary both ways for its
// check to pass. The parent holds 128 MiB, which no child's peak RSS may
// include.
func TestRunInChildProcesses(t *testing.T) {
	walq, err := Walq(Sync)
	if err != nil {
		t.Fatal(err)
	}
	// The parent's own peak must not leak into its children's: Go starts
	// them with vfork, and getrusage's ru_maxrss would report this
	// buffer's 128 MiB for each of them.
	var ballast []byte
	if os.Getenv(childEnv) == "" {
		ballast = make([]byte, 128<<20)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1
		}
	}
	cfg := Config{Dir: t.TempDir(), Runs: 2, Sizes: tiny, Targets: []Target{walq},
		Workloads: []string{"W1", "W3", "W4", "W5", "W6"},
		ChildArgs: []string{"-test.run=^TestRunInChildProcesses$"}}
	rep, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range cfg.Workloads {
		res := rep.Find(id, "walq/sync")
		if res == nil || res.Median <= 0 || len(res.Samples) != 2 {
			t.Fatalf("%s: no result (%+v)", id, res)
		}
		if runtime.GOOS != "linux" {
			continue
		}
		if len(res.PeakRSSRuns) != 2 || res.PeakRSS < 1<<20 || res.PeakRSS > 96<<20 {
			t.Errorf("%s: peak RSS %v over runs %v, want one per run, each between 1 and 96 MiB", id, res.PeakRSS, res.PeakRSSRuns)
		}
	}
	runtime.KeepAlive(ballast)
	if runtime.GOOS == "linux" {
		var out bytes.Buffer
		rep.WriteTable(&out)
		if !strings.Contains(out.String(), "peak RSS") || !strings.Contains(out.String(), " MiB") {
			t.Errorf("table lacks the peak RSS column:\n%s", out.String())
		}
	}
}

// TestRunChildError checks that a trial failing in its child process
// fails the run with the child's error: here the child, started with a
// configuration that lacks the parent's target, cannot find it.
func TestRunChildError(t *testing.T) {
	durability := Sync
	if os.Getenv(childEnv) != "" {
		durability = None // the child's configuration differs
	}
	walq, err := Walq(durability)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: t.TempDir(), Runs: 1, Sizes: tiny, Targets: []Target{walq}, Workloads: []string{"W1"},
		ChildArgs: []string{"-test.run=^TestRunChildError$"}}
	_, err = Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), `no target "walq/sync"`) {
		t.Fatalf("Run: error %v, want the child's: no target \"walq/sync\"", err)
	}
}

// TestFixtureStateRoundTrip checks that a fixture's bookkeeping survives
// the trip to a child process and back: counts, deliveries and the first
// problem found, so that a job delivered again in a later run is caught.
func TestFixtureStateRoundTrip(t *testing.T) {
	fx := newFixture(Target{}, t.TempDir(), 10)
	fx.enqueued, fx.pending = 10, 7
	for _, seq := range []int{1, 4, 9} {
		fx.led.mark(fx.led.payload(seq, 0))
	}
	var got fixture
	got.restore(fx.state())
	if got.dir != fx.dir || got.enqueued != 10 || got.pending != 7 || got.led.Done() != 3 || got.led.nonce != fx.led.nonce {
		t.Fatalf("restored %+v, done %d; want %+v, done 3", got, got.led.Done(), *fx)
	}
	if err := got.led.check(10, 7); err != nil {
		t.Fatalf("check after restore: %v", err)
	}
	got.led.mark(fx.led.payload(4, 0))
	var again fixture
	again.restore(got.state())
	if err := again.led.check(10, 7); err == nil || !strings.Contains(err.Error(), "job 4 delivered twice") {
		t.Fatalf("check after a repeated delivery: %v, want job 4 delivered twice", err)
	}
}
