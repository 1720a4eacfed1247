package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/walq/walq/bench"
)

// writeBenchTable prints a bench report for the machine it ran on: the
// machine and its raw limits, then per workload the median, the range
// over runs, the details and the ratio to the raw limit. It judges
// nothing against walq's targets: those belong to the project's reference
// runs (BENCHMARKS.md), not to the user's disk; bench.Report.WriteTable
// prints them for that.
func writeBenchTable(w io.Writer, rep *bench.Report) {
	m := rep.Machine
	fmt.Fprintf(w, "walq bench · %s · %s/%s · %d CPUs · %s", rep.Date.Format("2006-01-02 15:04 MST"), m.OS, m.Arch, m.CPUs, m.GoVersion)
	if m.Kernel != "" {
		fmt.Fprintf(w, " · kernel %s", m.Kernel)
	}
	mode := ""
	if rep.Quick {
		mode = " (quick: small sizes)"
	}
	fmt.Fprintf(w, "\n%d run(s) per row%s, medians; every row and baseline in %s\n", rep.Runs, mode, m.Dir)
	b := rep.Baseline
	fmt.Fprintf(w, "raw limits of this disk: %s fdatasync/s (serial 256 B append+fdatasync; p50 %s ms, p99 %s ms) · %s MB/s sequential write\n\n",
		benchNum(b.FsyncRate.Median), benchMs(b.FsyncP50), benchMs(b.FsyncP99), benchNum(b.WriteBandwidth.Median/1e6))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	var seen []string
	for i := range rep.Results {
		id := rep.Results[i].Workload
		if slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		writeBenchBlock(tw, rep, id)
	}
	tw.Flush()
	fmt.Fprintln(w, "Peak RSS is the VmHWM of the process that ran the run (each run has its own; median over")
	fmt.Fprintln(w, "runs; the harness's payloads and ledger included). Ratios compare walq with this disk's own")
	fmt.Fprintln(w, "limits. The project's targets, and runs on reference machines to compare with, are in BENCHMARKS.md.")
}

// writeBenchBlock prints one workload's rows.
func writeBenchBlock(tw *tabwriter.Writer, rep *bench.Report, id string) {
	first := true
	for i := range rep.Results {
		res := &rep.Results[i]
		if res.Workload != id {
			continue
		}
		if first {
			// A line without tabs ends tabwriter's column block.
			fmt.Fprintf(tw, "%s  %s\n", id, res.Title)
			fmt.Fprintf(tw, "  backend\tmedian\tmin … max\tpeak RSS\tdetail\tvs raw limit\n")
			first = false
		}
		if res.Skipped != "" {
			fmt.Fprintf(tw, "  %s\tn/a\t\t\t%s\t\n", res.Label(), res.Skipped)
			continue
		}
		lo, hi := slices.Min(res.Samples), slices.Max(res.Samples)
		fmt.Fprintf(tw, "  %s\t%s %s\t%s … %s\t%s\t%s\t%s\n", res.Label(), benchNum(res.Median), res.Unit, benchNum(lo), benchNum(hi),
			res.PeakRSSText(), benchDetail(res), rep.VsRaw(res))
	}
	fmt.Fprintln(tw)
}

// benchDetail says what a row's median was measured over.
func benchDetail(res *bench.Result) string {
	switch {
	case res.Latency != nil:
		l := res.Latency
		return fmt.Sprintf("p50 %s · p99 %s · p99.9 %s ms · %s/s offered (%s), %s achieved",
			benchMs(l.P50), benchMs(l.P99), benchMs(l.P999), benchNum(l.Offered), l.Basis, benchNum(l.Achieved))
	case res.Workload == "W6":
		return fmt.Sprintf("heap, at %s pending jobs; resident %s B/job", benchNum(float64(res.Pending)), benchNum(res.RSSPerJob))
	case res.Workload == "W5":
		return benchNum(float64(res.Pending)) + " pending jobs"
	}
	return ""
}

// benchNum formats a value with thousands separators, or with a few
// significant digits when small.
func benchNum(v float64) string {
	switch a := math.Abs(v); {
	case v == 0:
		return "0"
	case a >= 1000:
		s := strconv.FormatInt(int64(math.Round(a)), 10)
		var b strings.Builder
		if v < 0 {
			b.WriteByte('-')
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// benchMs formats a duration in milliseconds.
func benchMs(d time.Duration) string { return benchNum(float64(d) / float64(time.Millisecond)) }
