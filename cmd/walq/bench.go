package main

import "fmt"

var benchCmd = &command{
	name:    "bench",
	args:    "[DIR]",
	group:   "Other",
	summary: "measure enqueue and lease throughput (see bench/)",
	help: `Measure the queue's throughput and latency on this machine. The benchmark
suite lives in the repository's bench/ directory for now; this command will
run it directly once it is wired in (see the benchmark issue).`,
	example: `walq bench`,
	run:     runBench,
}

func runBench(a *app, c *command, args []string) error {
	fs := flagSet(c)
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q", pos[1])
	}
	return bench(a, pos)
}

// bench runs the benchmarks. It is a stub until package bench exports its
// entry point (bench.Run, per bench/doc.go); then this becomes a call to it
// with a.ctx, a.stdout and the arguments.
func bench(a *app, pos []string) error {
	fmt.Fprintln(a.stdout, "walq bench: the benchmarks live in bench/ for now; from a clone of the repository run:")
	fmt.Fprintln(a.stdout, "  go test -run '^$' -bench . -benchmem ./bench/      # hot paths")
	fmt.Fprintln(a.stdout, "  cd bench/peers && go run .                          # walq next to its peers")
	return nil
}
