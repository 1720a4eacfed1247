// Command peers runs walq's benchmark workloads against walq and the queues
// a Go developer would pick instead — goqite on SQLite, a hand-written
// queue on bbolt, River on SQLite — side by side in one run on one disk,
// prints a table of medians with ratios, and writes BENCHMARKS.md and an
// SVG chart.
//
//	cd bench/peers && go run . [--quick] [--workloads W1,W2] [--peers walq,goqite,bbolt,river] [--runs 3]
//
// It lives in its own module so that the walq library's go.mod never
// depends on the peers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/walq/walq/bench"
)

// peer opens one backend in the durability classes it has.
type peer struct {
	name    string
	classes []string
	target  func(durability string) bench.Target
}

var peers = []peer{
	{"walq", []string{bench.Sync, bench.Relaxed, bench.None}, walqTarget},
	{"goqite", []string{bench.Sync, bench.Relaxed}, goqiteTarget},
	{"bbolt", []string{bench.Sync, bench.None}, bboltTarget},
	{"river", []string{bench.Sync, bench.Relaxed}, riverTarget},
}

// slowFill names the backends whose API fills W5's million pending jobs
// too slowly for a run of a few minutes (goqite's random text keys and
// River's per-row inserts manage a few thousand rows/s here): they are
// opened with fewer pending jobs. Their open does not replay anything, so
// the count hardly matters to W5, and W6's per-job figure is per job.
var slowFill = map[string]bool{"goqite": true, "river": true}

func walqTarget(durability string) bench.Target {
	t, err := bench.Walq(durability)
	if err != nil {
		panic(err) // classes above are walq's
	}
	return t
}

// options are the command's flags.
type options struct {
	quick      bool
	workloads  string
	peers      string
	durability string
	runs       int
	dir        string
	markdown   string
	chart      string
	json       string
	render     string
	write      bool
	sizes      bench.Sizes
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "small sizes and 1 run: finishes in under a minute (does not write BENCHMARKS.md unless --write)")
	flag.StringVar(&o.workloads, "workloads", "", "comma-separated workload IDs (W1,W2-8,W2,W3,W4,W4rt,W5,W6,W7); default all")
	flag.StringVar(&o.peers, "peers", "walq,goqite,bbolt,river", "comma-separated backends")
	flag.StringVar(&o.durability, "durability", "", "comma-separated durability classes (sync, relaxed, none); W5–W7 run in the first (default sync,relaxed, or sync with --quick)")
	flag.IntVar(&o.runs, "runs", 0, "runs per row (default 3, or 1 with --quick)")
	flag.StringVar(&o.dir, "dir", "", "directory to benchmark in (default the system temp dir)")
	flag.StringVar(&o.markdown, "md", "../../BENCHMARKS.md", "where to write the Markdown report")
	flag.StringVar(&o.chart, "svg", "../chart.svg", "where to write the SVG chart")
	flag.StringVar(&o.json, "json", "results.json", "where to write the report's data, for --render")
	flag.StringVar(&o.render, "render", "", "render BENCHMARKS.md and the chart from a saved --json file instead of running")
	flag.BoolVar(&o.write, "write", false, "write BENCHMARKS.md and the chart even with --quick")
	flag.IntVar(&o.sizes.EnqueueJobs, "enqueue-jobs", 0, "most jobs W1 and W2 enqueue per run (default 30000, 5000 with --quick)")
	flag.IntVar(&o.sizes.BatchJobs, "batch-jobs", 0, "most jobs W3 enqueues per run (default 300000, 50000 with --quick)")
	flag.IntVar(&o.sizes.DrainJobs, "drain-jobs", 0, "jobs W4 pre-enqueues and drains (default 100000, 20000 with --quick)")
	flag.IntVar(&o.sizes.RecoverJobs, "recover-jobs", 0, "pending jobs W5 and W6 open for walq and bbolt (default 200000, 100000 with --quick)")
	flag.IntVar(&o.sizes.RecoverLargeJobs, "recover-large-jobs", 0, "pending jobs W5L and W6L open for walq and bbolt (default 1000000, 300000 with --quick)")
	flag.DurationVar(&o.sizes.MaxDuration, "max-duration", 0, "cap on the timed part of one run of W1–W4 (default 2s, 0.5s with --quick)")
	flag.Parse()
	if err := run(o, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

func run(o options, args []string) error {
	if o.render != "" {
		return render(o)
	}
	if o.durability == "" {
		o.durability = "sync,relaxed"
		if o.quick {
			o.durability = "sync"
		}
	}
	targets, err := buildTargets(split(o.peers), split(o.durability))
	if err != nil {
		return err
	}
	for i := range targets {
		if slowFill[targets[i].Name] {
			targets[i].MaxPending = 100_000
			if o.quick {
				targets[i].MaxPending = 20_000
			}
		}
	}
	cfg := bench.Config{Dir: o.dir, Workloads: split(o.workloads), Targets: targets, Runs: o.runs, Quick: o.quick, Sizes: o.sizes}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, cfg, progressWriter{start: time.Now()})
	if err != nil {
		return err
	}
	fmt.Println()
	rep.WriteTable(os.Stdout)
	if o.quick && !o.write {
		fmt.Fprintln(os.Stderr, "quick run: BENCHMARKS.md and the chart left as they are (pass --write to replace them)")
		return nil
	}
	command := "cd bench/peers && go run ."
	if len(args) > 0 {
		command += " " + strings.Join(args, " ")
	}
	data, err := json.MarshalIndent(saved{Command: command, Report: rep}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.json, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return write(o, rep, command)
}

// saved is what --json writes and --render reads.
type saved struct {
	Command string
	Report  *bench.Report
}

// render rewrites BENCHMARKS.md and the chart from a saved run, for when
// only the hand-written analysis or the layout changed.
func render(o options) error {
	data, err := os.ReadFile(o.render)
	if err != nil {
		return err
	}
	var s saved
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s: %w", o.render, err)
	}
	return write(o, s.Report, s.Command)
}

func write(o options, rep *bench.Report, command string) error {
	if err := os.WriteFile(o.chart, chartSVG(rep), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(o.markdown, markdown(rep, command), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", o.markdown, o.chart)
	return nil
}

// buildTargets returns a target per durability class (in the order given)
// and peer, skipping classes a peer has no mode for.
func buildTargets(names, classes []string) ([]bench.Target, error) {
	for _, n := range names {
		if !slices.ContainsFunc(peers, func(p peer) bool { return p.name == n }) {
			return nil, fmt.Errorf("unknown peer %q (want walq, goqite, bbolt or river)", n)
		}
	}
	var ts []bench.Target
	for _, c := range classes {
		if c != bench.Sync && c != bench.Relaxed && c != bench.None {
			return nil, fmt.Errorf("unknown durability %q (want sync, relaxed or none)", c)
		}
		for _, p := range peers {
			if slices.Contains(names, p.name) && slices.Contains(p.classes, c) {
				ts = append(ts, p.target(c))
			}
		}
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("no peer runs in durability %s", strings.Join(classes, ","))
	}
	return ts, nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// progressWriter prefixes progress lines with the time since the start.
type progressWriter struct{ start time.Time }

func (p progressWriter) Write(b []byte) (int, error) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s", time.Since(p.start).Seconds(), b)
	return len(b), nil
}
