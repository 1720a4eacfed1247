package queue

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"pgregory.net/rapid"
)

// TestModel drives a real queue (mock clock, 4 KiB segments so that
// compaction and segment cycling happen, compaction only when called,
// backoff jitter off) and a plain model of walq's semantics
// (model_state_test.go) with the same random sequence of calls
// (model_calls_test.go, model_batch_test.go, model_restart_test.go):
// enqueue and batch enqueue with keys from a small set, lease and lease N,
// complete (with a result, with follow-up jobs, in batches), fail
// (retryable, Permanent, RetryAfter, Snooze), extend (alone and in
// batches), release, advance the clock (by a drawn amount, or exactly to
// the next deadline, run-at or end of retention, ±1ns), requeue from the
// dead-letter queue, cancel, purge, pause, resume, compact, close and
// reopen, crash and reopen (the directory is copied while the queue is
// open, which is what a crash would leave since every returned call is
// durable; the old queue is abandoned, not closed, until the check ends),
// and crash in the middle of a compaction.
//
// After every step it checks: every job's state, attempt, key, priority,
// run-at (so the backoff after a failure is exactly now + 1s·2^(n-1)),
// deadline, last error, history, payload and result equal the model's;
// per-queue Stats equal the model's counts; no key is held by two jobs; no
// job ever completes twice; the queue's internal invariants (q.check) hold.
// Calls with stale tokens are predicted to change nothing, so the state
// comparison proves they did not; reopen checks the poison-pill rule
// (leases voided, the attempt counted, dead with no attempts left) and the
// recovery report's counts.
//
// The default run (rapid's 100 checks of about 30 steps) is part of
// go test ./... . Run it long with
//
//	go test ./queue -run 'TestModel$' -rapid.checks=100000 -timeout 0 [-rapid.steps=100]
//
// When a check fails, rapid shrinks the sequence to a minimal one, prints it
// (each step logs the call it made and what the model expected) and saves it
// under queue/testdata/rapid/TestModel/. Every later go test of the package
// replays the saved fail files first; replay one alone with
//
//	go test ./queue -run 'TestModel$' -rapid.failfile=testdata/rapid/TestModel/<file>
//
// or with the -rapid.seed=N that the failure message prints.
func TestModel(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cov := coverage{}
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(rt, root, cov)
		h.enqueueN(rt, rapid.IntRange(0, 10).Draw(rt, "initialJobs"))
		rt.Repeat(h.actions())
	})
	t.Logf("outcomes seen:\n%s", cov)
}

// coverage counts the interesting outcomes a run reached, to show (with -v)
// that the sequences get where the bugs would be.
type coverage map[string]int

func (c coverage) String() string {
	var lines []string
	for k, n := range c {
		lines = append(lines, fmt.Sprintf("\t%6d  %s", n, k))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// modelKeys are the idempotency keys the model draws from: few, so that
// duplicates are frequent; "" means no key.
var modelKeys = []string{"", "", "k0", "k1", "k2", "k3"}

// harness runs one rapid check: the queue under test, its model and what
// was observed so far.
type harness struct {
	rt        *rapid.T
	ctx       context.Context
	root      string
	dir       string
	mc        *clock.Mock
	opts      *Options
	q         *Queue
	m         *model
	tokens    []Token         // every token ever handed out
	completed map[uint64]bool // jobs whose Complete returned nil
	seq       int             // numbers payloads, results and errors
	cov       coverage
	// crashAt arms the compaction hook: at that step it copies the
	// directory into crashImage (a crash mid-compaction) and fails.
	crashAt    string
	crashImage string
}

func modelOptions(mc *clock.Mock) *Options {
	return &Options{
		Clock:         mc,
		SegmentSize:   4 << 10,
		CompactRatio:  -1,
		MaxAttempts:   3,
		KeyRetention:  10 * time.Minute,
		LeaseDuration: 30 * time.Second,
		Logger:        openTestLogger(),
	}
}

func newHarness(rt *rapid.T, root string, cov coverage) *harness {
	dir, err := os.MkdirTemp(root, "model")
	if err != nil {
		rt.Fatal(err)
	}
	rt.Cleanup(func() { os.RemoveAll(dir) })
	mc := startClock()
	h := &harness{rt: rt, ctx: context.Background(), root: root, dir: dir, mc: mc,
		opts: modelOptions(mc), completed: map[uint64]bool{}, cov: cov}
	h.m = newModel(h.opts)
	h.m.cov = cov
	h.m.lease = h.opts.LeaseDuration
	h.open(dir)
	rt.Cleanup(func() { h.q.Close() })
	return h
}

// open opens the queue in dir, with compactHook as its compaction hook.
func (h *harness) open(dir string) {
	inject(h.rt, dir, &hooks{compact: h.compactHook})
	q, err := Open(dir, h.opts)
	if err != nil {
		h.rt.Fatalf("Open(%s): %v", dir, err)
	}
	h.q, h.dir = q, dir
}

func (h *harness) now() int64 { return h.mc.Now().UnixNano() }

// actions are the steps rapid draws from, each equally likely: repeated
// names weight the common calls.
func (h *harness) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":              h.check,
		"enqueue":       h.enqueue,
		"enqueue#2":     h.enqueue,
		"enqueueBatch":  h.enqueueBatch,
		"lease":         func(t *rapid.T) { h.lease(t) },
		"lease#2":       func(t *rapid.T) { h.lease(t) },
		"work":          h.work,
		"work#2":        h.work,
		"complete":      h.complete,
		"fail":          h.fail,
		"extend":        h.extend,
		"leaseN":        h.leaseN,
		"completeBatch": h.completeBatch,
		"extendBatch":   h.extendBatch,
		"release":       h.release,
		"advance":       h.advance,
		"advance#2":     h.advance,
		"advanceToNext": h.advanceToNext,
		"requeue":       h.requeue,
		"cancel":        h.cancel,
		"purge":         h.purge,
		"pause":         h.pause,
		"compact":       h.compact,
		"compactCrash":  h.compactCrash,
		"reopen":        h.reopen,
	}
}

// check compares the queue with the model after every step.
func (h *harness) check(t *rapid.T) {
	if err := h.q.check(); err != nil {
		t.Fatalf("invariants: %v", err)
	}
	// Calls that report state record the expiry of leases that ran out,
	// as any other call that looks does.
	now := h.now()
	h.m.reap(now)
	jobs, err := h.q.Jobs(h.ctx, JobFilter{})
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	keys := map[string]uint64{}
	for _, got := range jobs {
		if got.Key != "" {
			if other, ok := keys[got.Key]; ok {
				t.Fatalf("key %q held by jobs %d and %d", got.Key, other, got.ID)
			}
			keys[got.Key] = got.ID
		}
		want := h.m.jobs[got.ID]
		if want == nil {
			t.Fatalf("job %d (%s) exists, but the model has no such job (purged or never acknowledged)", got.ID, got.State)
		}
		full, err := h.q.Get(h.ctx, got.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", got.ID, err)
		}
		if d := append(want.diff(got, now, false), want.diff(full, now, true)...); len(d) > 0 {
			t.Fatalf("job %d differs from the model:\n\t%s", got.ID, strings.Join(d, "\n\t"))
		}
	}
	if len(jobs) != len(h.m.jobs) {
		var missing []uint64
		for _, id := range h.m.ids() {
			if !slices.ContainsFunc(jobs, func(j *Job) bool { return j.ID == id }) {
				missing = append(missing, id)
			}
		}
		t.Fatalf("acknowledged jobs %v are missing", missing)
	}
	h.checkStats(t, now)
}

func (h *harness) checkStats(t *rapid.T, now int64) {
	st, err := h.q.Stats(h.ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := h.m.counts(now)
	for name, qs := range st.Queues {
		qs.Metrics, qs.OldestReady = Metrics{}, 0
		if w := want[name]; qs != w {
			t.Fatalf("Stats of queue %q = %+v, want %+v", name, qs, w)
		}
	}
	for name, w := range want {
		if _, ok := st.Queues[name]; !ok && w != (QueueStats{}) {
			t.Fatalf("Stats lacks queue %q, want %+v", name, w)
		}
	}
}
