package bench

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// childEnv names the environment variable through which Run tells a copy
// of the running binary that it was started to run one trial: its value
// is the path of the trial's request file. The answer is written next to
// it, with ".out" appended.
const childEnv = "WALQ_BENCH_TRIAL"

// trialRequest is what a child process needs to run one trial: the
// target's label and the workload (both looked up in the child's own
// Config, which the same command line rebuilds), the directory or the
// fixture to run on, and W7's offered load.
type trialRequest struct {
	Target, Workload string
	Sizes            Sizes
	Dir              string
	Rate             float64
	Basis            string
	Fixture          *fixtureState
}

// trialAnswer is what the child measured, or why it failed.
type trialAnswer struct {
	Sample        wireSample
	Fixture       *fixtureState
	Err           string
	NotApplicable bool
}

// wireSample is a sample as it crosses the process boundary.
type wireSample struct {
	Value, RSS     float64
	Pending        int
	PeakRSS        int64
	HasLatency     bool
	Offered        float64
	Achieved       float64
	Basis          string
	P50, P99, P999 time.Duration
	Jobs           int
}

func toWire(s sample) wireSample {
	w := wireSample{Value: s.value, RSS: s.rss, Pending: s.pending, PeakRSS: s.peakRSS}
	if l := s.lat; l != nil {
		w.HasLatency, w.Offered, w.Achieved, w.Basis = true, l.offered, l.achieved, l.basis
		w.P50, w.P99, w.P999, w.Jobs = l.p50, l.p99, l.p999, l.n
	}
	return w
}

func (w wireSample) sample() sample {
	s := sample{value: w.Value, rss: w.RSS, pending: w.Pending, peakRSS: w.PeakRSS}
	if w.HasLatency {
		s.lat = &latency{offered: w.Offered, achieved: w.Achieved, basis: w.Basis, p50: w.P50, p99: w.P99, p999: w.P999, n: w.Jobs}
	}
	return s
}

// fixtureState is a fixture's bookkeeping as it crosses the process
// boundary, so that the ledger follows every job across runs in different
// processes (a job completed in one run and delivered again in the next is
// still caught).
type fixtureState struct {
	Dir               string
	Nonce             uint64
	Seen              []byte // deliveries per job, capped at 255
	Done              int64
	Err               string
	Enqueued, Pending int
}

func (fx *fixture) state() *fixtureState {
	st := &fixtureState{Dir: fx.dir, Nonce: fx.led.nonce, Seen: make([]byte, len(fx.led.seen)),
		Done: fx.led.done.Load(), Enqueued: fx.enqueued, Pending: fx.pending}
	for i := range fx.led.seen {
		st.Seen[i] = byte(min(fx.led.seen[i].Load(), 255))
	}
	if err := fx.led.Err(); err != nil {
		st.Err = err.Error()
	}
	return st
}

// restore sets fx's bookkeeping from st.
func (fx *fixture) restore(st *fixtureState) {
	fx.dir, fx.enqueued, fx.pending = st.Dir, st.Enqueued, st.Pending
	fx.led = &ledger{nonce: st.Nonce, seen: make([]atomic.Uint32, len(st.Seen))}
	for i, n := range st.Seen {
		fx.led.seen[i].Store(uint32(n))
	}
	fx.led.done.Store(st.Done)
	if st.Err != "" {
		fx.led.err = errors.New(st.Err)
	}
}

// inChild runs tr in a fresh copy of this binary (os.Executable, started
// with the child arguments and childEnv set) and returns what it measured,
// including that process's peak RSS. The fixture's bookkeeping goes to the
// child and comes back.
func (r *runner) inChild(ctx context.Context, tr *trial) (sample, error) {
	req := trialRequest{Target: tr.t.Label(), Workload: tr.w.ID, Sizes: tr.sz, Dir: tr.dir, Rate: tr.rate, Basis: tr.basis}
	if tr.fix != nil {
		req.Fixture = tr.fix.state()
	}
	r.seq++
	path := filepath.Join(r.root, fmt.Sprintf("trial-%03d.gob", r.seq))
	defer os.Remove(path)
	defer os.Remove(path + ".out")
	if err := writeGob(path, req); err != nil {
		return sample{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return sample{}, fmt.Errorf("bench: start child: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, r.c.childArgs()...)
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return sample{}, ctx.Err()
		}
		return sample{}, fmt.Errorf("bench: child process: %w\n%s", err, tail(stderr.String(), 4000))
	}
	var ans trialAnswer
	if err := readGob(path+".out", &ans); err != nil {
		return sample{}, fmt.Errorf("bench: child process left no answer (%w)\n%s", err, tail(stderr.String(), 4000))
	}
	if tr.fix != nil && ans.Fixture != nil {
		tr.fix.restore(ans.Fixture)
	}
	switch {
	case ans.NotApplicable:
		return sample{}, fmt.Errorf("%w: %s", errNotApplicable, ans.Err)
	case ans.Err != "":
		return sample{}, errors.New(ans.Err)
	}
	return ans.Sample.sample(), nil
}

// childArgs are the arguments a child process is started with.
func (c config) childArgs() []string {
	if c.ChildArgs != nil {
		return c.ChildArgs
	}
	return os.Args[1:]
}

// serveTrial is the child's side: it runs the trial described in the
// request file at path against the target of that label in c, and writes
// the answer. It returns the process's exit code.
func serveTrial(ctx context.Context, c config, path string) int {
	ans := runRequested(ctx, c, path)
	if err := writeGob(path+".out", ans); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runRequested(ctx context.Context, c config, path string) (ans trialAnswer) {
	var req trialRequest
	if err := readGob(path, &req); err != nil {
		return trialAnswer{Err: err.Error()}
	}
	w, err := workloadByID(req.Workload)
	if err != nil {
		return trialAnswer{Err: err.Error()}
	}
	tr := &trial{w: w, sz: req.Sizes, dir: req.Dir, rate: req.Rate, basis: req.Basis}
	found := false
	for _, t := range c.Targets {
		if t.Label() == req.Target {
			tr.t, found = t, true
		}
	}
	if !found {
		return trialAnswer{Err: fmt.Sprintf("bench: child: no target %q in this command's configuration", req.Target)}
	}
	if req.Fixture != nil {
		tr.fix = &fixture{t: tr.t}
		tr.fix.restore(req.Fixture)
	}
	s, err := tr.run(ctx)
	s.peakRSS = peakRSS()
	ans.Sample = toWire(s)
	if tr.fix != nil {
		ans.Fixture = tr.fix.state()
	}
	if errors.Is(err, errNotApplicable) {
		ans.NotApplicable = true
		ans.Err = strings.TrimPrefix(err.Error(), errNotApplicable.Error()+": ")
	} else if err != nil {
		ans.Err = err.Error()
	}
	return ans
}

func writeGob(path string, v any) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return fmt.Errorf("bench: encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func readGob(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		return fmt.Errorf("bench: decode %s: %w", path, err)
	}
	return nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
