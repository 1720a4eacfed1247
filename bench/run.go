package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Config says what Run measures. The zero value runs every workload
// against walq in Sync mode, three runs each, in a temporary directory.
type Config struct {
	// Dir is the directory under which the benchmark makes (and removes)
	// its working directory; the disk baselines are measured there too.
	// Defaults to os.TempDir().
	Dir string
	// Workloads are the IDs of the workloads to run (see Workloads), in
	// any order. Defaults to all of them.
	Workloads []string
	// Durability lists the durability classes walq runs in (Sync,
	// Relaxed, None) when Targets is empty. Defaults to [Sync].
	Durability []string
	// Targets are the backends to compare, each in one durability class.
	// W5, W6 and W7 run only for targets in the class of the first target
	// (they measure stored state, or need W2's rate in that class).
	// Defaults to walq in each class of Durability.
	Targets []Target
	// Runs is how many times each workload runs per target; tables show
	// the median. Defaults to 3 (1 in quick mode).
	Runs int
	// Quick shrinks the default sizes so a whole run takes well under a
	// minute. Defaults to false.
	Quick bool
	// Sizes bound each workload; zero fields take the defaults for the
	// mode.
	Sizes Sizes
	// InProcess runs every trial in this process instead of each in a
	// child process of its own; results then have no peak RSS. Test
	// doubles that keep their state in memory need it. Defaults to false.
	InProcess bool
	// ChildArgs are the arguments each trial's child process (a copy of
	// this binary, from os.Executable) is started with; the child must
	// reach Run with the same Config, which then runs the one trial and
	// exits. Defaults to os.Args[1:], except in a test binary
	// (testing.Testing), where a nil ChildArgs means InProcess: started
	// with its own arguments, the binary would run its tests again.
	ChildArgs []string
}

type config struct {
	Config
	workloads []Workload
}

func (c Config) withDefaults() (config, error) {
	out := config{Config: c}
	if out.Dir == "" {
		out.Dir = os.TempDir()
	}
	if out.Runs < 0 {
		return out, fmt.Errorf("bench: Config.Runs: %d is negative", out.Runs)
	}
	if out.Runs == 0 {
		out.Runs = 3
		if out.Quick {
			out.Runs = 1
		}
	}
	out.Sizes = c.Sizes.withDefaults(c.Quick)
	if out.ChildArgs == nil && testing.Testing() {
		out.InProcess = true
	}
	if len(out.Targets) == 0 {
		durs := out.Durability
		if len(durs) == 0 {
			durs = []string{Sync}
		}
		for _, d := range durs {
			t, err := Walq(d)
			if err != nil {
				return out, err
			}
			out.Targets = append(out.Targets, t)
		}
	}
	want := map[string]bool{}
	for _, id := range c.Workloads {
		w, err := workloadByID(strings.TrimSpace(id))
		if err != nil {
			return out, err
		}
		want[w.ID] = true
	}
	for _, w := range Workloads {
		if len(want) == 0 || want[w.ID] {
			out.workloads = append(out.workloads, w)
		}
	}
	return out, nil
}

// Run measures the disk's limits, then every selected workload against
// every target, runs times each, interleaving targets run by run so that
// noise on the shared machine falls on all of them alike. It writes a line
// of progress per measurement to progress (nil for none). Any failed
// verification ends the run with an error and no report.
//
// Unless cfg.InProcess is set, each trial (one run of one workload against
// one target) runs in a child process of its own, a copy of this binary
// started with cfg.ChildArgs, so that the peak RSS it reports
// (VmHWM in /proc/self/status) is that workload's alone. In such a child, Run
// runs the one trial it was started for, writes what it measured for the
// parent and exits the process; it never returns.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if path := os.Getenv(childEnv); path != "" && !c.InProcess {
		os.Exit(serveTrial(ctx, c, path))
	}
	if progress == nil {
		progress = io.Discard
	}
	root, err := os.MkdirTemp(c.Dir, "walq-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(root)
	r := &runner{c: c, root: root, progress: progress, fixtures: map[string]*fixture{}}
	return r.run(ctx)
}

// runner holds one Run's state.
type runner struct {
	c        config
	root     string
	progress io.Writer
	rep      *Report
	fixtures map[string]*fixture // by target label and purpose
	seq      int                 // numbers the working directories
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	start := time.Now()
	r.rep = &Report{Date: start.UTC(), Machine: describeMachine(r.root), Runs: r.c.Runs, Quick: r.c.Quick, Sizes: r.c.Sizes}
	fmt.Fprintf(r.progress, "baselines: fdatasync and sequential write in %s, %d runs before the workloads and %d after\n", r.root, r.c.Runs, r.c.Runs)
	if err := measureBaseline(&r.rep.Baseline, r.root, r.c.Runs, r.c.Sizes); err != nil {
		return nil, fmt.Errorf("bench: baseline: %w", err)
	}
	r.baselineLine()
	for i, w := range r.c.workloads {
		if err := r.workload(ctx, w); err != nil {
			return nil, err
		}
		r.dropFixtures(r.c.workloads[i+1:])
	}
	if err := measureBaseline(&r.rep.Baseline, r.root, r.c.Runs, r.c.Sizes); err != nil {
		return nil, fmt.Errorf("bench: baseline: %w", err)
	}
	r.baselineLine()
	r.rep.Elapsed = time.Since(start)
	return r.rep, nil
}

func (r *runner) baselineLine() {
	b := r.rep.Baseline
	fmt.Fprintf(r.progress, "baselines: %s fdatasync/s (p50 %v, p99 %v), %s MB/s sequential, %s records/s group-committed by %d producers (medians so far)\n",
		num(b.FsyncRate.Median), b.FsyncP50.Round(time.Microsecond), b.FsyncP99.Round(time.Microsecond), num(b.WriteBandwidth.Median/1e6), num(b.GroupRate.Median), GroupProducers)
}

// workload runs w against every target, Runs times, and records a result
// per target.
func (r *runner) workload(ctx context.Context, w Workload) error {
	results := make([]*Result, len(r.c.Targets))
	for i, t := range r.c.Targets {
		results[i] = &Result{Workload: w.ID, Title: w.Title, Target: t.Name, Durability: t.Durability,
			Config: t.Config, Unit: w.Unit, LowerIsBetter: w.LowerIsBetter}
		if (w.stateful() || w.kind == kindLatency || w.kind == kindWriteAmp) && t.Durability != r.c.Targets[0].Durability {
			results[i] = nil // measured in the first durability class only
		}
	}
	for run := 1; run <= r.c.Runs; run++ {
		for i, t := range r.c.Targets {
			res := results[i]
			if res == nil || res.Skipped != "" {
				continue
			}
			s, err := r.trial(ctx, t, w)
			if errors.Is(err, errNotApplicable) {
				res.Skipped = strings.TrimPrefix(err.Error(), errNotApplicable.Error()+": ")
				fmt.Fprintf(r.progress, "%-5s %-15s n/a: %s\n", w.ID, t.Label(), res.Skipped)
				continue
			}
			if err != nil {
				return fmt.Errorf("bench: %s %s, run %d: %w", w.ID, t.Label(), run, err)
			}
			res.add(s)
			fmt.Fprintf(r.progress, "%-5s %-15s run %d/%d: %s\n", w.ID, t.Label(), run, r.c.Runs, s.describe(w))
		}
	}
	for _, res := range results {
		if res != nil {
			res.finish()
			r.rep.Results = append(r.rep.Results, *res)
		}
	}
	return nil
}

// trial prepares and runs one measurement: in the target's shared fixture
// for W4–W6, in a fresh directory otherwise.
func (r *runner) trial(ctx context.Context, t Target, w Workload) (sample, error) {
	tr := &trial{t: t, w: w, sz: r.c.Sizes}
	switch {
	case w.kind == kindDrain || w.stateful():
		fx, err := r.fixture(ctx, t, w)
		if err != nil {
			return sample{}, err
		}
		tr.fix = fx
		return r.exec(ctx, tr)
	case w.kind == kindLatency:
		rate, basis, err := r.offeredRate(ctx, t, w)
		if err != nil {
			return sample{}, err
		}
		tr.rate, tr.basis = rate, basis
	}
	dir, err := r.newDir()
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	tr.dir = dir
	return r.exec(ctx, tr)
}

// exec runs a prepared trial in a child process, or here if the
// configuration says so.
func (r *runner) exec(ctx context.Context, tr *trial) (sample, error) {
	if r.c.InProcess {
		return tr.run(ctx)
	}
	return r.inChild(ctx, tr)
}

func (r *runner) newDir() (string, error) {
	r.seq++
	dir := filepath.Join(r.root, fmt.Sprintf("case-%03d", r.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return dir, nil
}

// fixture returns the target's fixture for w, making it on first use: W4
// and W4rt share one that each run tops up to DrainJobs pending jobs; W5
// and W6 share one filled once with RecoverJobs (or the target's
// MaxPending) jobs.
func (r *runner) fixture(ctx context.Context, t Target, w Workload) (*fixture, error) {
	key := t.Label() + "/drain"
	if w.stateful() {
		key = t.Label() + "/recover"
		if w.large {
			key += "-large"
		}
	}
	if fx, ok := r.fixtures[key]; ok {
		return fx, nil
	}
	dir, err := r.newDir()
	if err != nil {
		return nil, err
	}
	if !w.stateful() {
		// Each run may drain all DrainJobs and top them up again.
		fx := newFixture(t, dir, r.c.Sizes.DrainJobs*(2*r.c.Runs+1))
		r.fixtures[key] = fx
		return fx, nil
	}
	n := r.c.Sizes.RecoverJobs
	if w.large {
		n = r.c.Sizes.RecoverLargeJobs
		if t.MaxPending > 0 && t.MaxPending < n {
			return nil, fmt.Errorf("%w: filling %s pending jobs through its insert path would take minutes (W5/W6 open %s)", errNotApplicable, num(float64(n)), num(float64(t.MaxPending)))
		}
	}
	if t.MaxPending > 0 && t.MaxPending < n {
		n = t.MaxPending
	}
	fmt.Fprintf(r.progress, "W5/W6 %-15s preparing %s pending jobs (untimed)\n", t.Label(), num(float64(n)))
	fx := newFixture(t, dir, n)
	err = func() (err error) {
		b, err := fx.open(ctx)
		if err != nil {
			return err
		}
		defer closeInto(b, &err)
		return fx.topUp(ctx, b, n)
	}()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("prepare: %w", err)
	}
	r.fixtures[key] = fx
	return fx, nil
}

// dropFixtures removes the fixtures no workload in rest needs.
func (r *runner) dropFixtures(rest []Workload) {
	needDrain, needRecover := false, false
	for _, w := range rest {
		needDrain = needDrain || w.kind == kindDrain
		needRecover = needRecover || w.stateful()
	}
	for k, fx := range r.fixtures {
		if strings.HasSuffix(k, "/drain") && !needDrain || strings.Contains(k, "/recover") && !needRecover {
			os.RemoveAll(fx.dir)
			delete(r.fixtures, k)
		}
	}
}

// offeredRate is W7's load for t: half the median W2 rate measured in this
// run (or in one calibration run of W2 if W2 was not selected). For W7c it
// is half the end-to-end capacity instead, 1/(1/W2 + 1/drain), where drain
// is the rate W7's consumers drain at alone (W4rt for a backend with a
// runtime, else W4), when that ran: producers and consumers share the
// backend's one write path, so each job costs an enqueue and a drain of it.
func (r *runner) offeredRate(ctx context.Context, t Target, w Workload) (float64, string, error) {
	res := r.rep.Find("W2", t.Label())
	if res == nil {
		w2, _ := workloadByID("W2")
		fmt.Fprintf(r.progress, "%-5s %-15s calibrating: one run of W2 for the offered load\n", w.ID, t.Label())
		s, err := r.trial(ctx, t, w2)
		if err != nil {
			return 0, "", fmt.Errorf("calibrate with W2: %w", err)
		}
		cal := Result{Workload: w2.ID, Title: w2.Title + " (calibration for W7)", Target: t.Name, Durability: t.Durability,
			Config: t.Config, Unit: w2.Unit}
		cal.add(s)
		cal.finish()
		r.rep.Results = append(r.rep.Results, cal)
		res = &r.rep.Results[len(r.rep.Results)-1]
	}
	rate, basis := res.Median, "W2"
	if w.capacity {
		for _, id := range []string{"W4rt", "W4"} {
			if d := r.rep.Find(id, t.Label()); d != nil && d.Median > 0 {
				// Enqueues and leases share one write path (the fsync
				// pipeline, SQLite's one connection): a load r needs
				// r/W2 + r/drain of it.
				rate, basis = 1/(1/rate+1/d.Median), "1/(1/W2+1/"+id+")"
				break
			}
		}
	}
	return rate / 2, "50% of " + basis, nil
}

// describe renders one sample for the progress line.
func (s sample) describe(w Workload) string {
	switch {
	case s.lat != nil:
		return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s ms at %s jobs/s offered (%s; %s achieved), %d jobs",
			ms(s.lat.p50), ms(s.lat.p99), ms(s.lat.p999), num(s.lat.offered), s.lat.basis, num(s.lat.achieved), s.lat.n) + s.rssText()
	case w.kind == kindMemory:
		return fmt.Sprintf("%s B/job Go heap, %s B/job resident, %s pending%s", num(s.value), num(s.rss), num(float64(s.pending)), s.rssText())
	case w.kind == kindRecover:
		return fmt.Sprintf("%s ms, %s pending%s", num(s.value), num(float64(s.pending)), s.rssText())
	case w.kind == kindWriteAmp:
		return fmt.Sprintf("%.2f× payload bytes over %s jobs%s", s.value, num(float64(s.pending)), s.rssText())
	default:
		return fmt.Sprintf("%s %s%s", num(s.value), w.Unit, s.rssText())
	}
}

// rssText is the sample's peak RSS for a progress line, or "" if unknown.
func (s sample) rssText() string {
	if s.peakRSS <= 0 {
		return ""
	}
	return fmt.Sprintf(", peak RSS %s MiB", mib(float64(s.peakRSS)))
}

// Machine describes where the benchmark ran.
type Machine struct {
	OS, Arch  string
	CPUs      int
	GoVersion string
	// Kernel is the kernel release, where known.
	Kernel string
	// Dir is the working directory; every backend and baseline used it.
	Dir string
}

func describeMachine(dir string) Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Dir: dir}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
