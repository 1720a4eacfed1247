package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report is what Run measured: medians over runs, with every sample kept.
type Report struct {
	// Date is when the run started (UTC).
	Date time.Time
	// Elapsed is how long the whole run took.
	Elapsed time.Duration
	// Machine describes where it ran.
	Machine Machine
	// Runs is how many runs each median is over; Quick and Sizes are the
	// mode and sizes in force.
	Runs  int
	Quick bool
	Sizes Sizes
	// Baseline is the disk's limits, measured in the same directory.
	Baseline Baseline
	// Results holds one entry per workload and target, in run order.
	Results []Result
}

// Stat is a median and the samples it is taken over.
type Stat struct {
	Median  float64
	Samples []float64
}

// Result is one workload against one target.
type Result struct {
	// Workload is the workload's ID and Title its description.
	Workload, Title string
	// Target and Durability name the row; Config says how the target is
	// configured.
	Target, Durability, Config string
	// Unit is the unit of the median; LowerIsBetter is true for times and
	// sizes.
	Unit          string
	LowerIsBetter bool
	Stat
	// RSSPerJob is W6's resident bytes per pending job (median), which
	// counts memory outside the Go heap (SQLite's page cache, mmaps).
	RSSPerJob float64
	// Pending is how many pending jobs W5 and W6 opened (median).
	Pending int
	// PeakRSS is the median over runs of the peak resident set size, in
	// bytes, of the process that ran the workload (each run in a process
	// of its own; VmHWM, Linux only), and PeakRSSRuns has every run's.
	// It counts the harness too: the ledger, and for W1, W2 and W7 the
	// payloads made before the timed part. 0 when unknown (runs in
	// process, or not Linux).
	PeakRSS     float64
	PeakRSSRuns []float64 `json:",omitempty"`
	// Latency is W7's distribution (medians of each percentile).
	Latency *Latency
	// Skipped says why the workload does not apply to the target; the
	// result then has no samples.
	Skipped string

	rss     []float64
	pending []float64
	lats    []*latency
}

// Latency is W7's enqueue → handler-start distribution, each field the
// median over runs.
type Latency struct {
	// Offered is the load offered; Basis says what it is half of ("50%
	// of W2"); Achieved is the rate the producers actually enqueued at.
	Offered, Achieved float64
	Basis             string
	P50, P99, P999    time.Duration
	// Jobs is the number of jobs in one run.
	Jobs int
}

func (r *Result) add(s sample) {
	r.Samples = append(r.Samples, s.value)
	r.rss = append(r.rss, s.rss)
	if s.peakRSS > 0 {
		r.PeakRSSRuns = append(r.PeakRSSRuns, float64(s.peakRSS))
	}
	r.pending = append(r.pending, float64(s.pending))
	if s.lat != nil {
		r.lats = append(r.lats, s.lat)
	}
}

func (r *Result) finish() {
	r.Median = median(r.Samples)
	r.RSSPerJob = median(r.rss)
	r.PeakRSS = median(r.PeakRSSRuns)
	r.Pending = int(median(r.pending))
	if len(r.lats) == 0 {
		return
	}
	pick := func(f func(*latency) float64) float64 {
		var xs []float64
		for _, l := range r.lats {
			xs = append(xs, f(l))
		}
		return median(xs)
	}
	r.Latency = &Latency{
		Offered:  pick(func(l *latency) float64 { return l.offered }),
		Basis:    r.lats[0].basis,
		Achieved: pick(func(l *latency) float64 { return l.achieved }),
		P50:      time.Duration(pick(func(l *latency) float64 { return float64(l.p50) })),
		P99:      time.Duration(pick(func(l *latency) float64 { return float64(l.p99) })),
		P999:     time.Duration(pick(func(l *latency) float64 { return float64(l.p999) })),
		Jobs:     int(pick(func(l *latency) float64 { return float64(l.n) })),
	}
}

// Label is the result's row label, "target/durability".
func (r *Result) Label() string { return r.Target + "/" + r.Durability }

// Find returns the result of workload id for the target label
// ("walq/sync"), or nil.
func (rep *Report) Find(id, label string) *Result {
	for i := range rep.Results {
		if res := &rep.Results[i]; res.Workload == id && res.Label() == label && res.Skipped == "" {
			return res
		}
	}
	return nil
}

// Advantage returns how many times better walq's median is than other's
// (above 1: walq is ahead), or 0 if either is missing.
func Advantage(walq, other *Result) float64 {
	if walq == nil || other == nil || walq.Median <= 0 || other.Median <= 0 {
		return 0
	}
	if walq.LowerIsBetter {
		return other.Median / walq.Median
	}
	return walq.Median / other.Median
}

// VsRaw relates a result to the disk's limits, or returns "" where no
// limit applies: enqueue and drain rates as a multiple of the serial
// fdatasync rate (W1's target is 0.9), W2 also as a multiple of the best
// group commit of its 64 producers (GroupRate), batch enqueue as the share
// of the sequential bandwidth its payload bytes use.
func (rep *Report) VsRaw(res *Result) string {
	fs, bw := rep.Baseline.FsyncRate.Median, rep.Baseline.WriteBandwidth.Median
	if res.Median <= 0 || fs <= 0 {
		return ""
	}
	switch res.Workload {
	case "W2":
		if g := rep.Baseline.GroupRate.Median; g > 0 {
			return fmt.Sprintf("%.2f× fsync, %.2f× group limit", res.Median/fs, res.Median/g)
		}
		return fmt.Sprintf("%.2f× fsync", res.Median/fs)
	case "W1", "W2-8", "W4", "W4rt":
		return fmt.Sprintf("%.2f× fsync", res.Median/fs)
	case "W3":
		if bw <= 0 {
			return ""
		}
		return fmt.Sprintf("%.0f%% of seq. bw", 100*res.Median*PayloadSize/bw)
	case "W7", "W7c":
		if rep.Baseline.FsyncP50 > 0 && res.Latency != nil {
			return fmt.Sprintf("p50 = %.1f× fsync p50", float64(res.Latency.P50)/float64(rep.Baseline.FsyncP50))
		}
	}
	return ""
}

// num formats a value with thousands separators, or with a few significant
// digits when small.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return commas(int64(math.Round(v)))
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// mib formats a byte count in MiB.
func mib(b float64) string { return num(b / (1 << 20)) }

// PeakRSSText is the row's peak RSS in MiB ("62.3 MiB"), or "–" if
// unknown.
func (r *Result) PeakRSSText() string {
	if r.PeakRSS <= 0 {
		return "–"
	}
	return mib(r.PeakRSS) + " MiB"
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return num(float64(d) / float64(time.Millisecond)) }
