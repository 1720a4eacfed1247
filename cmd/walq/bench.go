package main

import (
	"strings"

	"github.com/walq/walq/bench"
)

var benchCmd = &command{
	name:    "bench",
	args:    "[DIR]",
	group:   "Other",
	summary: "measure walq's throughput, latency, recovery and memory on this disk",
	help: `Measure walq on this machine: durable enqueue with 1 and 64 producers (W1,
W2), batch enqueue (W3), lease + complete with a plain loop and with the
worker runtime (W4, W4rt), opening a directory of pending jobs (W5), heap
bytes per pending job (W6), enqueue-to-handler latency at half of W2's
rate (W7) and compaction's write amplification, log bytes written per
payload byte, steady and with 10% of jobs retrying (W8, W8r). The disk's
own limits (serial append+fdatasync, sequential write) are measured in the
same directory in the same run, and every row
is reported as a median and as a ratio to them. Each run of each workload
runs in a child process of its own, and its row shows that process's peak
RSS (VmHWM, Linux only).

Every workload verifies its result (every job stored and completed exactly
once) so a broken run reports an error, not a number. The benchmark works
in a temporary directory under DIR (default: the system temp dir) and
removes it. A full run takes a few minutes; --quick takes under one.

The side-by-side comparison with goqite, bbolt and River lives in the
repository's nested module: cd bench/peers && go run .`,
	example: `walq bench --quick
walq bench --workloads W1,W2 --durability sync,relaxed /mnt/ssd
walq bench --workloads W5 --recover-jobs 200000
walq bench --json > bench.json`,
	run: runBench,
}

func runBench(a *app, c *command, args []string) error {
	fs := flagSet(c)
	quick := fs.Bool("quick", false, "small sizes and one run: finishes in under a minute")
	workloads := fs.String("workloads", "", "comma-separated workload IDs ("+workloadIDs()+"); default all")
	durability := fs.String("durability", bench.Sync, "comma-separated durability modes: sync, relaxed (Interval), none")
	runs := fs.Int("runs", 0, "runs per workload; tables show the median (default 3, or 1 with --quick)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	var sz bench.Sizes
	fs.IntVar(&sz.EnqueueJobs, "enqueue-jobs", 0, "most jobs W1 and W2 enqueue per run (default 30000, 5000 with --quick)")
	fs.IntVar(&sz.BatchJobs, "batch-jobs", 0, "most jobs W3 enqueues per run (default 300000, 50000 with --quick)")
	fs.IntVar(&sz.DrainJobs, "drain-jobs", 0, "jobs W4 pre-enqueues and drains (default 100000, 20000 with --quick)")
	fs.IntVar(&sz.RecoverJobs, "recover-jobs", 0, "pending jobs W5 and W6 open (default 200000, 100000 with --quick)")
	fs.IntVar(&sz.RecoverLargeJobs, "recover-large-jobs", 0, "pending jobs W5L and W6L open (default 1000000, 300000 with --quick)")
	fs.DurationVar(&sz.MaxDuration, "max-duration", 0, "cap on the timed part of one run of W1–W4 (default 2s, 0.5s with --quick)")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	cfg := bench.Config{Quick: *quick, Runs: *runs, Workloads: splitList(*workloads), Durability: splitList(*durability), Sizes: sz}
	switch len(pos) {
	case 0:
	case 1:
		cfg.Dir = pos[0]
	default:
		return usagef("unexpected argument %q after DIR", pos[1])
	}
	if *runs < 0 {
		return usagef("--runs must be positive, not %d", *runs)
	}
	for _, d := range cfg.Durability {
		if _, err := bench.Walq(d); err != nil {
			return usagef("invalid value %q for --durability: want sync, relaxed or none", d)
		}
	}
	rep, err := bench.Run(a.ctx, cfg, a.stderr)
	if err != nil {
		if a.ctx.Err() != nil {
			return a.ctx.Err()
		}
		return err
	}
	if *asJSON {
		return writeJSON(a.stdout, rep)
	}
	rep.WriteMachineTable(a.stdout)
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// workloadIDs lists the benchmark's workload IDs for the help text.
func workloadIDs() string {
	var ids []string
	for _, w := range bench.Workloads {
		ids = append(ids, w.ID)
	}
	return strings.Join(ids, ", ")
}
