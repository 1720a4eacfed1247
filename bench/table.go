package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Goal is one of walq's targets (issues 8 and 14), judged against walq's results in
// the first durability class run (Sync by default).
type Goal struct {
	// Workload is the workload judged.
	Workload string
	// Want states the target; Got the measured value in the same terms.
	Want, Got string
	// Met reports whether the target is reached; Gap says by how much it
	// is missed ("" when met).
	Met bool
	Gap string
}

// Goals judges walq's targets: absolute ones first, then "ahead of every
// peer" for each workload a peer ran in the same durability class.
func (rep *Report) Goals() []Goal {
	if len(rep.Results) == 0 {
		return nil
	}
	class := rep.Results[0].Durability
	label := "walq/" + class
	var gs []Goal
	higher := func(id, want string, got, limit float64, gotText string) {
		if res := rep.Find(id, label); res != nil && got > 0 {
			g := Goal{Workload: id, Want: want, Got: gotText, Met: got >= limit}
			if !g.Met {
				g.Gap = fmt.Sprintf("short by %.0f%% (needs %.2f× more)", 100*(1-got/limit), limit/got)
			}
			gs = append(gs, g)
		}
	}
	lower := func(id, want string, got, limit float64, gotText string) {
		if res := rep.Find(id, label); res != nil && got > 0 {
			g := Goal{Workload: id, Want: want, Got: gotText, Met: got <= limit}
			if !g.Met {
				g.Gap = fmt.Sprintf("over by %.0f%% (needs %.2f× less)", 100*(got/limit-1), got/limit)
			}
			gs = append(gs, g)
		}
	}
	val := func(id string) float64 {
		if res := rep.Find(id, label); res != nil {
			return res.Median
		}
		return 0
	}
	if fs := rep.Baseline.FsyncRate.Median; fs > 0 {
		higher("W1", "≥ 0.90× the serial fdatasync rate", val("W1")/fs, 0.90, fmt.Sprintf("%.2f× (%s jobs/s vs %s/s)", val("W1")/fs, num(val("W1")), num(fs)))
	}
	higher("W2", "≥ 100,000 jobs/s", val("W2"), 100_000, num(val("W2"))+" jobs/s")
	if b := rep.Find("W3", "bbolt/"+class); b != nil && b.Skipped == "" && b.Median > 0 {
		higher("W3", "≥ 1.5× the bbolt queue in the same run", val("W3")/b.Median, 1.5,
			fmt.Sprintf("%.2f× (%s vs %s jobs/s)", val("W3")/b.Median, num(val("W3")), num(b.Median)))
	} else {
		higher("W3", "≥ 600,000 jobs/s", val("W3"), 600_000, num(val("W3"))+" jobs/s")
	}
	higher("W4rt", "≥ 20,000 jobs/s", val("W4rt"), 20_000, num(val("W4rt"))+" jobs/s")
	for _, id := range []string{"W5", "W5L"} {
		if res := rep.Find(id, label); res != nil && res.Pending > 0 {
			// 25 ms for 200,000 pending jobs, 150 ms per million beyond.
			limit := 25.0
			if res.Pending > 200_000 {
				limit = 150 * float64(res.Pending) / 1e6
			}
			lower(id, fmt.Sprintf("≤ %s ms for %s pending jobs", num(math.Round(limit)), num(float64(res.Pending))), res.Median, limit, num(res.Median)+" ms")
		}
	}
	lower("W6", "≤ 120 B/job", val("W6"), 120, num(val("W6"))+" B/job")
	lower("W6L", "≤ 120 B/job", val("W6L"), 120, num(val("W6L"))+" B/job")
	for _, id := range []string{"W3", "W5"} {
		if res := rep.Find(id, label); res != nil && res.PeakRSS > 0 {
			lower(id, "peak RSS ≤ 48 MiB", res.PeakRSS/(1<<20), 48, res.PeakRSSText())
		}
	}
	lower("W8", "≤ 2× payload bytes written", val("W8"), 2, fmt.Sprintf("%.2f×", val("W8")))
	lower("W8r", "≤ 3× payload bytes written", val("W8r"), 3, fmt.Sprintf("%.2f×", val("W8r")))
	for _, id := range []string{"W7", "W7c"} {
		if res := rep.Find(id, label); res != nil && res.Latency != nil {
			p99 := float64(res.Latency.P99) / float64(time.Millisecond)
			lower(id, "p99 ≤ 2 ms at "+res.Latency.Basis, p99, 2, ms(res.Latency.P99)+" ms")
		}
	}
	return append(gs, rep.peerGoals(class)...)
}

// peerGoals judges "ahead of every peer" per workload in durability class.
func (rep *Report) peerGoals(class string) []Goal {
	var gs []Goal
	for _, id := range rep.workloadIDs() {
		walq := rep.Find(id, "walq/"+class)
		if walq == nil {
			continue
		}
		for i := range rep.Results {
			other := &rep.Results[i]
			if other.Workload != id || other.Target == "walq" || other.Durability != class || other.Skipped != "" {
				continue
			}
			a := Advantage(walq, other)
			g := Goal{Workload: id, Want: "ahead of " + other.Label(), Got: advantageText(a), Met: a > 1}
			if !g.Met {
				g.Gap = fmt.Sprintf("%s is %.2f× better", other.Label(), 1/a)
			}
			gs = append(gs, g)
		}
	}
	return gs
}

func advantageText(a float64) string {
	switch {
	case a == 0:
		return ""
	case a >= 1:
		return fmt.Sprintf("walq %.1f× ahead", a)
	default:
		return fmt.Sprintf("walq %.1f× behind", 1/a)
	}
}

// workloadIDs lists the workloads in the report, in run order.
func (rep *Report) workloadIDs() []string {
	var ids []string
	for _, r := range rep.Results {
		if !slices.Contains(ids, r.Workload) {
			ids = append(ids, r.Workload)
		}
	}
	return ids
}

// WriteTable renders the report as aligned text: the machine and its raw
// limits, a block per workload with a row per target (median, range over
// runs, peak RSS, ratio to the raw limit and to walq in the same durability
// class), the targets met and missed, and how each target was configured.
func (rep *Report) WriteTable(w io.Writer) { rep.writeTable(w, false) }

// WriteMachineTable renders the figures for the machine they ran on:
// medians, ranges, peak RSS and ratios to this disk's own limits. It judges
// nothing against walq's targets, which belong to the project's reference
// runs (BENCHMARKS.md), not to a user's disk. walq bench prints it.
func (rep *Report) WriteMachineTable(w io.Writer) { rep.writeTable(w, true) }

func (rep *Report) writeTable(w io.Writer, machine bool) {
	m := rep.Machine
	fmt.Fprintf(w, "walq bench · %s · %s/%s · %d CPUs · %s", rep.Date.Format("2006-01-02 15:04 MST"), m.OS, m.Arch, m.CPUs, m.GoVersion)
	if m.Kernel != "" {
		fmt.Fprintf(w, " · kernel %s", m.Kernel)
	}
	mode, limits := "", "raw limits"
	if rep.Quick {
		mode = " (quick)"
	}
	if machine {
		if rep.Quick {
			mode = " (quick: small sizes)"
		}
		limits = "raw limits of this disk"
	}
	fmt.Fprintf(w, "\n%d run(s) per row%s, medians; every row and baseline in %s\n", rep.Runs, mode, m.Dir)
	b := rep.Baseline
	fmt.Fprintf(w, "%s: %s fdatasync/s (serial 256 B append+fdatasync; p50 %s ms, p99 %s ms) · %s MB/s sequential write%s\n\n",
		limits, num(b.FsyncRate.Median), ms(b.FsyncP50), ms(b.FsyncP99), num(b.WriteBandwidth.Median/1e6), b.groupLimit())
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, id := range rep.workloadIDs() {
		rep.writeBlock(tw, id, machine)
	}
	tw.Flush()
	if machine {
		fmt.Fprintln(w, "Peak RSS is the VmHWM of the process that ran the run (each run has its own; median over")
		fmt.Fprintln(w, "runs; the harness's payloads and ledger included). Ratios compare walq with this disk's own")
		fmt.Fprintln(w, "limits. The project's targets, and runs on reference machines to compare with, are in BENCHMARKS.md.")
		return
	}
	rep.writeGoals(w)
	rep.writeConfigs(w)
}

// writeBlock prints one workload's rows; for the machine table without the
// comparison with walq's own row.
func (rep *Report) writeBlock(tw *tabwriter.Writer, id string, machine bool) {
	first := true
	for i := range rep.Results {
		res := &rep.Results[i]
		if res.Workload != id {
			continue
		}
		if first {
			// A line without tabs ends tabwriter's column blocks, so each
			// workload's rows align among themselves.
			fmt.Fprintf(tw, "%s  %s\n", id, res.Title)
			if machine {
				fmt.Fprintf(tw, "  backend\tmedian\tmin … max\tpeak RSS\tdetail\tvs raw limit\n")
			} else {
				fmt.Fprintf(tw, "  target\tmedian\tmin … max\tpeak RSS\tdetail\tvs raw limit\tvs walq\n")
			}
			first = false
		}
		if res.Skipped != "" {
			if machine {
				fmt.Fprintf(tw, "  %s\tn/a\t\t\t%s\t\n", res.Label(), res.Skipped)
			} else {
				fmt.Fprintf(tw, "  %s\tn/a\t\t\t%s\t\t\n", res.Label(), res.Skipped)
			}
			continue
		}
		lo, hi := slices.Min(res.Samples), slices.Max(res.Samples)
		row := fmt.Sprintf("  %s\t%s %s\t%s … %s\t%s\t%s\t%s", res.Label(), num(res.Median), res.Unit, num(lo), num(hi),
			res.PeakRSSText(), detail(res, machine), rep.VsRaw(res))
		if !machine {
			row += "\t" + rep.vsWalq(res)
		}
		fmt.Fprintln(tw, row)
	}
	fmt.Fprintln(tw)
}

// vsWalq compares a peer's row with walq's in the same durability class.
func (rep *Report) vsWalq(res *Result) string {
	if res.Target == "walq" {
		return ""
	}
	return advantageText(Advantage(rep.Find(res.Workload, "walq/"+res.Durability), res))
}

// detail says what a row's median was measured over; the machine table
// words it for a reader without the project's context.
func detail(res *Result, machine bool) string {
	switch {
	case res.Latency != nil && machine:
		l := res.Latency
		return fmt.Sprintf("p50 %s · p99 %s · p99.9 %s ms · %s/s offered (%s), %s achieved",
			ms(l.P50), ms(l.P99), ms(l.P999), num(l.Offered), l.Basis, num(l.Achieved))
	case res.Latency != nil:
		l := res.Latency
		return fmt.Sprintf("p50 %s · p99.9 %s ms · %s/s offered (%s), %s achieved", ms(l.P50), ms(l.P999), num(l.Offered), l.Basis, num(l.Achieved))
	case res.Workload == "W6" && machine:
		return fmt.Sprintf("heap, at %s pending jobs; resident %s B/job", num(float64(res.Pending)), num(res.RSSPerJob))
	case res.Workload == "W6":
		return fmt.Sprintf("resident %s B/job · %s pending", num(res.RSSPerJob), num(float64(res.Pending)))
	case res.Workload == "W8" || res.Workload == "W8r":
		return num(float64(res.Pending)) + " jobs of 256 B, 64 KiB segments"
	case res.Workload == "W5" && machine:
		return num(float64(res.Pending)) + " pending jobs"
	case res.Workload == "W5":
		return num(float64(res.Pending)) + " pending"
	}
	return ""
}

func (rep *Report) writeGoals(w io.Writer) {
	gs := rep.Goals()
	if len(gs) == 0 {
		return
	}
	fmt.Fprintf(w, "targets (walq, %s)\n", rep.Results[0].Durability)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, g := range gs {
		verdict := "met"
		if !g.Met {
			verdict = "MISSED: " + g.Gap
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", g.Workload, g.Want, g.Got, verdict)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func (rep *Report) writeConfigs(w io.Writer) {
	seen := map[string]bool{}
	var lines []string
	for _, r := range rep.Results {
		if !seen[r.Label()] && r.Config != "" {
			seen[r.Label()] = true
			lines = append(lines, fmt.Sprintf("  %s: %s", r.Label(), r.Config))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "configurations\n%s\n", strings.Join(lines, "\n"))
	}
}
