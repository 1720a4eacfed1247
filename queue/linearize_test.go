package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/benbjohnson/clock"
	"github.com/walq/walq/internal/fault"
)

// TestLinearizable is the concurrent model test. Each run opens a queue
// with 4 KiB segments and the background compactor on (a low CompactRatio
// and a maintenance tick every few seconds of the mock clock), and lets
// linClients goroutines make linOps random calls each: every changing call
// of the API (Enqueue, EnqueueBatch, TryLease, TryLeaseN,
// CompleteAndEnqueue, CompleteBatch with follow-ups, Fail in its four
// kinds, Extend, ExtendBatch, Release, Requeue, Cancel, Purge, Pause,
// Resume, Compact), the reading calls (Get, Jobs, Stats, Dead), and moves
// of the clock, some of them past KeyRetention so that keys are reused,
// with keys drawn from a small set so that enqueues, follow-ups and reuse
// collide. Meanwhile the log's write and fsync hooks yield the committer's
// processor a random number of times (so that groups form differently and
// appliers race), and copy the directory at random sync boundaries (the
// power-cut images: in Sync mode, before group g is written every earlier
// group is fsynced). Odd seeds also fail a write or an fsync now and then;
// the calls caught in it return ErrFailed and the queue recovers once the
// clock has moved a second.
//
// Every call is recorded with its input, its output and when it began and
// ended; then the queue is closed and reopened and every image is opened,
// each adding an operation that reports the whole state it found (leases
// voided). porcupine (github.com/anishathalye/porcupine) then searches for
// a linearization: an order of the calls, consistent with real time, in
// which the sequential model (linearize_model_test.go, built on TestModel's
// model) gives exactly the outputs recorded and ends in the state the
// reopened queue holds. Each image is checked in a history of its own
// (see imageHistory): the calls begun before it was taken, then the image. A real checker rather than a
// hand-written one: the space of orders is what it is built to search,
// with memoization of (calls linearized, state), and its partial
// linearizations and HTML visualization explain a failure.
//
// A call that returns an error the model never allows (a queue stopped by
// an internal error, a compaction that fails without a fault), a directory
// or image that does not reopen, or broken invariants fail the run at once
// with the message, before the search.
//
// The default is a few runs within about 20 seconds (part of go test
// ./...). Run longer with
//
//	WALQ_LINEARIZE_RUNS=500 go test ./queue -run 'TestLinearizable$' -race -timeout 0
//
// A failure prints its seed; WALQ_LINEARIZE_SEED=<seed> WALQ_LINEARIZE_RUNS=1
// replays the same calls and faults (the interleaving is the scheduler's,
// so a race may take a few tries: add -count=20). WALQ_LINEARIZE_KEEPGOING=1
// goes on after a failing run; WALQ_LINEARIZE_OPS=n makes n calls per
// client (short histories are easier to read); WALQ_LINEARIZE_NOCOMPACT=1
// turns compaction off, to tell its bugs from the others.
func TestLinearizable(t *testing.T) {
	t.Parallel()
	runs, budget := 8, 20*time.Second
	if v := os.Getenv("WALQ_LINEARIZE_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("WALQ_LINEARIZE_RUNS=%q: %v", v, err)
		}
		runs, budget = n, 0
	}
	base := uint64(time.Now().UnixNano()) % 1e9
	if v := os.Getenv("WALQ_LINEARIZE_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("WALQ_LINEARIZE_SEED=%q: %v", v, err)
		}
		base = n
	}
	keepGoing := os.Getenv("WALQ_LINEARIZE_KEEPGOING") != ""
	linNoCompact = os.Getenv("WALQ_LINEARIZE_NOCOMPACT") != ""
	if v := os.Getenv("WALQ_LINEARIZE_OPS"); v != "" {
		fmt.Sscan(v, &linOps)
	}
	start := time.Now()
	var tally linTally
	for i := range runs {
		if budget > 0 && time.Since(start) > budget {
			break
		}
		seed := base + uint64(i)
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runLinearizable(t, seed, &tally) })
		if !ok && !keepGoing {
			break
		}
	}
	t.Logf("%s in %v", &tally, time.Since(start).Round(time.Millisecond))
}

// linTally sums what the runs did, to show that they reach the cases.
type linTally struct {
	mu                                 sync.Mutex
	runs, failed, unknown, ops, images int
	failedCalls, compactions           int
}

func (t *linTally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%d runs (%d failed, %d inconclusive searches), %d calls, %d power-cut images, "+
		"%d calls failed by injected faults, %d compactions", t.runs, t.failed, t.unknown,
		t.ops, t.images, t.failedCalls, t.compactions)
}

// linOps is how many calls each client makes; WALQ_LINEARIZE_OPS sets it.
var linOps = 25

// linNoCompact (WALQ_LINEARIZE_NOCOMPACT=1) turns compaction off, the
// background compactor and the Compact calls, to tell its bugs from others.
var linNoCompact bool

const (
	linClients   = 4
	linRetention = 20 * time.Second
	linWatchdog  = 2 * time.Minute
	linSearch    = 10 * time.Second // per history; past it the run is inconclusive
	linLease     = 2 * time.Hour    // far beyond how far a run moves the clock
)

// The calls a history records.
const (
	opEnqueue       = "Enqueue"
	opLease         = "TryLeaseN"
	opComplete      = "CompleteAndEnqueue"
	opCompleteBatch = "CompleteBatch"
	opFail          = "Fail"
	opExtend        = "Extend"
	opExtendBatch   = "ExtendBatch"
	opRelease       = "Release"
	opRequeue       = "Requeue"
	opCancel        = "Cancel"
	opPurge         = "Purge"
	opPause         = "Pause"
	opCompact       = "Compact"
	opAdvance       = "Advance"
	opGet           = "Get"
	opJobs          = "Jobs"
	opStats         = "Stats"
	opDead          = "Dead"
	opImage         = "PowerCutImage"
	opFinal         = "CloseAndReopen"
)

// lin is a call's input.
type lin struct {
	kind     string
	jobs     []NewJob // Enqueue, EnqueueBatch; CompleteAndEnqueue's follow-ups
	queue    string
	n        int
	pause    bool
	tok      Token
	toks     []Token
	result   []byte
	cs       []Completion
	failKind string
	ferr     error
	d        time.Duration
	ids      []uint64 // Compact: the jobs that Purge calls in flight during it name
	keys     []string // Compact: the keys that enqueues in flight during it name
	ropts    RequeueOptions
	nows     []int64 // the clock values the call may have read
	clock    int64   // images and the final reopen: the clock they were taken at
	what     string  // images: which sync boundary
}

func (op *lin) String() string {
	switch op.kind {
	case opEnqueue, opComplete:
		var ks []string
		for _, nj := range op.jobs {
			ks = append(ks, fmt.Sprintf("{%s key %q prio %d delay %v %.12q}", queueName(nj.Queue), nj.Key, nj.Priority, nj.Delay, nj.Payload))
		}
		if op.kind == opComplete {
			return fmt.Sprintf("%s(%+v, %q, %v)", op.kind, op.tok, op.result, ks)
		}
		return fmt.Sprintf("%s(%v)", op.kind, ks)
	case opLease:
		return fmt.Sprintf("%s(%q, %d)", op.kind, op.queue, op.n)
	case opCompleteBatch:
		var s []string
		for _, c := range op.cs {
			keys := ""
			for _, nj := range c.Then {
				keys += fmt.Sprintf(" then key %q %.12q", nj.Key, nj.Payload)
			}
			s = append(s, fmt.Sprintf("%+v%s", c.Token, keys))
		}
		return fmt.Sprintf("%s(%v)", op.kind, s)
	case opFail:
		return fmt.Sprintf("%s(%+v, %s %q)", op.kind, op.tok, op.failKind, op.ferr)
	case opExtend, opRelease:
		return fmt.Sprintf("%s(%+v, %v)", op.kind, op.tok, op.d)
	case opExtendBatch:
		return fmt.Sprintf("%s(%+v, %v)", op.kind, op.toks, op.d)
	case opRequeue:
		return fmt.Sprintf("%s(%v, %+v)", op.kind, op.ids, op.ropts)
	case opCancel, opPurge, opGet:
		return fmt.Sprintf("%s(%v)", op.kind, op.ids)
	case opPause:
		if op.pause {
			return fmt.Sprintf("Pause(%q)", op.queue)
		}
		return fmt.Sprintf("Resume(%q)", op.queue)
	case opAdvance:
		return fmt.Sprintf("Advance(%v)", op.d)
	case opImage, opFinal:
		return fmt.Sprintf("%s(%s at clock +%v)", op.kind, op.what, time.Duration(op.clock-epoch.UnixNano()))
	}
	return op.kind + "()"
}

// leaseOut is what a lease returned that the model predicts.
type leaseOut struct {
	Tok      Token
	Deadline int64
	Payload  string
}

func (l leaseOut) String() string { return fmt.Sprintf("%+v", l.Tok) }

// lout is a call's output.
type lout struct {
	err      error
	enq      []Enqueued // CompleteBatch: the follow-ups found by payload, ID 0 for none
	leases   []leaseOut
	errs     []error
	deadline int64
	job      *Job
	jobs     []*Job
	stats    map[string]QueueStats
	paused   map[string]bool // reopened queues
}

func (r *lout) String() string {
	var parts []string
	if r.err != nil {
		parts = append(parts, "err "+r.err.Error())
	}
	if r.enq != nil {
		parts = append(parts, fmt.Sprintf("%+v", r.enq))
	}
	if r.leases != nil {
		parts = append(parts, fmt.Sprintf("%v", r.leases))
	}
	if r.errs != nil {
		parts = append(parts, fmt.Sprintf("errs %v", r.errs))
	}
	if r.job != nil {
		parts = append(parts, fmt.Sprintf("job %d %s attempt %d", r.job.ID, r.job.State, r.job.Attempt))
	}
	if r.jobs != nil {
		var s []string
		for _, j := range r.jobs {
			s = append(s, fmt.Sprintf("%d:%s", j.ID, j.State))
		}
		parts = append(parts, "["+strings.Join(s, " ")+"]")
	}
	if r.stats != nil {
		parts = append(parts, fmt.Sprintf("%v", r.stats))
	}
	if len(parts) == 0 {
		return "ok"
	}
	return strings.Join(parts, ", ")
}

// stepClock is a mock clock whose time moves in one atomic step: the
// benbjohnson mock walks its time through every timer it fires during Add,
// so a call could read a time between two Advance calls; here Now jumps at
// once (the Advance's linearization point), then the mock fires the timers.
type stepClock struct {
	*clock.Mock
	ns atomic.Int64
}

func newStepClock(at int64) *stepClock {
	c := &stepClock{Mock: clock.NewMock()}
	c.Mock.Set(time.Unix(0, at))
	c.ns.Store(at)
	return c
}

func (c *stepClock) Now() time.Time                  { return time.Unix(0, c.ns.Load()) }
func (c *stepClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *stepClock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// advance moves the clock by d and returns the time it set.
func (c *stepClock) advance(d time.Duration) int64 {
	v := c.ns.Add(int64(d))
	c.Mock.Add(d)
	return v
}

// linImage is a power-cut image taken at a sync boundary.
type linImage struct {
	dir       string
	clock     int64
	call, ret int64
	what      string
}

// linRun is one run: a queue, its clients and what they recorded.
type linRun struct {
	t      *testing.T
	seed   uint64
	faults bool
	dir    string
	clk    *stepClock
	opts   *Options
	// unfault ends the fault injection in dir.
	unfault func()
	q       *Queue
	ctx     context.Context
	ctr     atomic.Int64 // logical time for call and return stamps

	compactions atomic.Int64 // compactions that reached their checkpoint

	hookMu  sync.Mutex
	hookRng *rand.Rand
	writes  int
	imageAt map[int]bool
	images  []*linImage

	mu        sync.Mutex
	history   []porcupine.Operation // the calls and the final reopen
	imageOps  []porcupine.Operation // the images, each checked on its own
	problems  []string
	clockVals []int64  // every value the clock took
	ids       []uint64 // job IDs seen
	tokens    []Token  // tokens ever handed out
	maxID     uint64
	failed    int
}

var errInjected = errors.New("injected I/O error")

func runLinearizable(t *testing.T, seed uint64, tally *linTally) {
	r := &linRun{t: t, seed: seed, faults: seed%2 == 1, dir: t.TempDir(), ctx: context.Background(),
		hookRng: rand.New(rand.NewPCG(seed, 7)), imageAt: map[int]bool{}}
	for range 2 {
		r.imageAt[1+r.hookRng.IntN(80)] = true
	}
	r.clk = newStepClock(epoch.UnixNano())
	r.clockVals = []int64{epoch.UnixNano()}
	r.opts = &Options{
		Clock:               r.clk,
		SegmentSize:         4 << 10,
		CompactRatio:        0.5,
		MaintenanceInterval: 5 * time.Second,
		MaxAttempts:         3,
		KeyRetention:        linRetention,
		LeaseDuration:       linLease,
		Logger:              openTestLogger(),
	}
	r.unfault = fault.Register(r.dir, &hooks{write: r.writeHook, sync: r.syncHook,
		compact: func(step string) error {
			if step == "checkpoint" {
				r.compactions.Add(1)
			}
			return nil
		}})
	t.Cleanup(r.unfault)
	if linNoCompact {
		r.opts.CompactRatio = -1
	}
	q, err := Open(r.dir, r.opts)
	if err != nil {
		t.Fatal(err)
	}
	r.q = q
	// A watchdog, not a synchronisation: calls that never return are a
	// deadlock; report where every goroutine is rather than hang.
	watchdog := time.AfterFunc(linWatchdog, func() {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		path := filepath.Join(os.TempDir(), fmt.Sprintf("walq-linearize-%d-stacks.txt", seed))
		os.WriteFile(path, buf, 0o644)
		panic(fmt.Sprintf("seed %d: calls still running after %v: deadlock? goroutines in %s", seed, linWatchdog, path))
	})
	var wg sync.WaitGroup
	for c := range linClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.client(c)
		}()
	}
	wg.Wait()
	compactions := r.finish()
	watchdog.Stop()

	tally.mu.Lock()
	tally.runs++
	tally.ops += len(r.history)
	tally.images += len(r.images)
	tally.failedCalls += r.failed
	tally.compactions += compactions
	tally.mu.Unlock()
	fail := func(format string, args ...any) {
		tally.mu.Lock()
		tally.failed++
		tally.mu.Unlock()
		t.Fatalf("seed %d (faults %v; replay: WALQ_LINEARIZE_SEED=%d WALQ_LINEARIZE_RUNS=1): "+format,
			append([]any{seed, r.faults, seed}, args...)...)
	}
	if len(r.problems) > 0 {
		fail("%d problems:\n\t%s", len(r.problems), strings.Join(firstDistinct(r.problems, 6), "\n\t"))
	}
	model := linModel(r.opts, epoch.UnixNano())
	checks := []linCheck{{"", "history", r.history}}
	for i, img := range r.imageOps {
		checks = append(checks, linCheck{fmt.Sprintf("-image%d", i), "history up to " + img.Input.(*lin).String(), r.imageHistory(img)})
	}
	results := make([]porcupine.CheckResult, len(checks))
	for i, c := range checks {
		res := porcupine.CheckOperationsTimeout(model, c.ops, linSearch)
		results[i] = res
		switch res {
		case porcupine.Unknown:
			tally.mu.Lock()
			tally.unknown++
			tally.mu.Unlock()
			t.Logf("seed %d: the linearizability search of the %s timed out (inconclusive): %s",
				seed, c.what, dump(c.ops, fmt.Sprintf("%d%s", seed, c.name)))
		case porcupine.Illegal:
			path := filepath.Join(os.TempDir(), fmt.Sprintf("walq-linearize-%d%s.html", seed, c.name))
			hist := dump(c.ops, fmt.Sprintf("%d%s", seed, c.name))
			short, info := shortestIllegal(model, c.ops)
			if err := porcupine.VisualizePath(model, info, path); err != nil {
				path = "(visualization failed: " + err.Error() + ")"
			}
			fail("%s of %d calls is not linearizable; history: %s; visualization of the shortest failing prefix: %s\n%s",
				c.what, len(c.ops), hist, path, r.explain(short, info))
		}
	}
	t.Logf("seed %d: %d calls, %d images, %d failed by faults, %d compactions: %v",
		seed, len(r.history), len(r.images), r.failed, compactions, results)
}

// linCheck is one history a run checks: the live one, or one per image.
type linCheck struct {
	name string // a suffix for file names: "" or "-image<i>"
	what string
	ops  []porcupine.Operation
}

// imageHistory returns the history a power-cut image is checked in: every
// call begun before the image was taken, the image, and nothing later. A
// call that had not returned by then gets no return (porcupine: one after
// every other), so it may come before the image (its entry is in it) or
// after, where the model, crashed, accepts any call: in the world of the
// image it never happened. A call that returned before is durable, so it
// comes before the image. A call begun after cannot be in it.
//
// The image is not a call of the live history: the queue makes an entry
// durable before it applies it (and applies the entries in flight in any
// order), so an image may hold entries that readers after it do not see
// yet, or an entry whose call readers see only after a later entry. An
// interval [taken, end of history) for the image in the one history would
// still ask that the image be the state after some prefix of one order
// that the readers also agree with, which the second case breaks without
// any call having been wrong. This is durable linearizability: every
// crash is a future of the same past, checked on its own.
func (r *linRun) imageHistory(img porcupine.Operation) []porcupine.Operation {
	const never = 1 << 62
	var ops []porcupine.Operation
	for _, op := range r.history {
		if op.Call > img.Call {
			continue
		}
		if op.Return > img.Call {
			op.Return = never
		}
		ops = append(ops, op)
	}
	return append(ops, img)
}

// writeHook runs before the committer writes group [first, last]: every
// group before it is written and fsynced, so this is a sync boundary.
func (r *linRun) writeHook(first, last uint64) error {
	r.hookMu.Lock()
	r.writes++
	take := r.imageAt[r.writes]
	fault := r.faults && r.hookRng.IntN(60) == 0
	yields := r.hookRng.IntN(40)
	r.hookMu.Unlock()
	if take {
		r.takeImage(fmt.Sprintf("before group %d (entries %d-%d)", r.writes, first, last))
	}
	yield(yields)
	if fault {
		return fmt.Errorf("write: %w", errInjected)
	}
	return nil
}

// syncHook runs after a group is written and before its fsync.
func (r *linRun) syncHook(first, last uint64) error {
	r.hookMu.Lock()
	fault := r.faults && r.hookRng.IntN(40) == 0
	yields := r.hookRng.IntN(80)
	r.hookMu.Unlock()
	yield(yields)
	if fault {
		return fmt.Errorf("fsync: %w", errInjected)
	}
	return nil
}

// yield gives the processor away n times: a delay measured in scheduling
// rounds rather than time, so that it reorders work without sleeping.
func yield(n int) {
	for range n {
		runtime.Gosched()
	}
}

// takeImage copies the directory while the committer waits in its hook, so
// no entry is written meanwhile. Compaction may be removing front segments
// (oldest first); copying newest first keeps the copy to a state the
// directory was in: what is missing is a prefix.
func (r *linRun) takeImage(what string) {
	call := r.ctr.Add(1)
	at := r.clk.ns.Load()
	dst := r.t.TempDir()
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		r.problem("image %s: %v", what, err)
		return
	}
	slices.Reverse(ents)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		err := copyFile(filepath.Join(r.dir, e.Name()), filepath.Join(dst, e.Name()))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			r.problem("image %s: %v", what, err)
			return
		}
	}
	ret := r.ctr.Add(1)
	r.mu.Lock()
	r.images = append(r.images, &linImage{dir: dst, clock: at, call: call, ret: ret, what: what})
	r.mu.Unlock()
}

func (r *linRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// record runs call as client c's operation op and records it.
func (r *linRun) record(c int, op *lin, call func() *lout) *lout {
	c0 := r.clk.ns.Load()
	start := r.ctr.Add(1)
	res := call()
	end := r.ctr.Add(1)
	c1 := r.clk.ns.Load()
	op.nows = []int64{c0, c1} // the bounds, until finish lists the values between
	r.mu.Lock()
	r.history = append(r.history, porcupine.Operation{ClientId: c, Input: op, Call: start, Output: res, Return: end})
	r.mu.Unlock()
	r.checkErr(op, res)
	return res
}

// checkErr turns an error the model never allows into a problem.
func (r *linRun) checkErr(op *lin, res *lout) {
	errs := append([]error{res.err}, res.errs...)
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrFailed) && r.faults:
			r.mu.Lock()
			r.failed++
			r.mu.Unlock()
		case errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrLeaseExpired) &&
			slices.Contains([]string{opComplete, opCompleteBatch, opFail, opExtend, opExtendBatch, opRelease}, op.kind):
		case (errors.Is(err, ErrNotFound) || errors.Is(err, ErrState)) &&
			slices.Contains([]string{opGet, opPurge, opRequeue, opCancel}, op.kind):
		default:
			r.problem("%s = unexpected error: %v", op, err)
		}
	}
}

// note remembers IDs and tokens the clients may name later.
func (r *linRun) note(ids []uint64, toks []Token) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if id != 0 && !slices.Contains(r.ids, id) {
			r.ids = append(r.ids, id)
			r.maxID = max(r.maxID, id)
		}
	}
	r.tokens = append(r.tokens, toks...)
}

// finish closes the queue, checks its invariants, reopens the directory
// and every image, and records what each holds as a final operation. It
// returns how many compactions reached their checkpoint.
func (r *linRun) finish() int {
	if err := r.q.Close(); err != nil && !(r.faults && errors.Is(err, ErrFailed)) {
		r.problem("Close: %v", err)
	}
	if err := r.q.check(); err != nil {
		r.problem("invariants after Close: %v", err)
	}
	slices.Sort(r.clockVals)
	for _, op := range r.history {
		in := op.Input.(*lin)
		lo, hi := in.nows[0], in.nows[1]
		in.nows = nil
		for _, v := range r.clockVals {
			if v >= lo && v <= hi {
				in.nows = append(in.nows, v)
			}
		}
	}
	now := r.clk.ns.Load()
	call := r.ctr.Add(1)
	final := r.reopen(r.dir, now, "the directory after Close")
	r.history = append(r.history, porcupine.Operation{ClientId: linClients, Call: call, Return: r.ctr.Add(1),
		Input: &lin{kind: opFinal, clock: now, what: "reopen after Close"}, Output: final})
	for i, img := range r.images {
		res := r.reopen(img.dir, img.clock, "power-cut image "+img.what)
		r.imageOps = append(r.imageOps, porcupine.Operation{ClientId: linClients + 1 + i, Call: img.call, Return: img.ret,
			Input: &lin{kind: opImage, clock: img.clock, what: img.what}, Output: res})
	}
	r.noteSpared()
	return int(r.compactions.Load())
}

// noteSpared gives every Compact call what its sweep may pass over: the
// IDs that Purge calls in flight during it name and the keys that enqueues
// in flight during it name (see spared).
func (r *linRun) noteSpared() {
	for _, op := range r.history {
		in := op.Input.(*lin)
		if in.kind != opCompact {
			continue
		}
		for _, o := range r.history {
			if o.Call > op.Return || o.Return < op.Call {
				continue
			}
			oin := o.Input.(*lin)
			switch oin.kind {
			case opPurge:
				in.ids = append(in.ids, oin.ids...)
			case opEnqueue, opComplete:
				for _, nj := range oin.jobs {
					in.keys = append(in.keys, nj.Key)
				}
			case opCompleteBatch:
				for _, c := range oin.cs {
					for _, nj := range c.Then {
						in.keys = append(in.keys, nj.Key)
					}
				}
			}
		}
	}
}

// reopen opens dir with the clock at `at` and reports every job (with
// payload and result) and the paused queues.
func (r *linRun) reopen(dir string, at int64, what string) *lout {
	mc := clock.NewMock()
	mc.Set(time.Unix(0, at))
	o := *r.opts
	o.Clock, o.CompactRatio = mc, -1
	if dir == r.dir {
		r.unfault() // the reopen after Close runs without faults
	}
	q, err := Open(dir, &o)
	if err != nil {
		r.problem("%s does not open: %v", what, err)
		return &lout{err: err}
	}
	defer q.Close()
	out := &lout{jobs: []*Job{}, paused: map[string]bool{}}
	js, err := q.Jobs(r.ctx, JobFilter{})
	if err != nil {
		r.problem("%s: Jobs: %v", what, err)
		return &lout{err: err}
	}
	for _, j := range js {
		full, err := q.Get(r.ctx, j.ID)
		if err != nil {
			r.problem("%s: Get(%d): %v", what, j.ID, err)
			return &lout{err: err}
		}
		out.jobs = append(out.jobs, full)
	}
	st, err := q.Stats(r.ctx)
	if err != nil {
		r.problem("%s: Stats: %v", what, err)
		return &lout{err: err}
	}
	for name, qs := range st.Queues {
		out.paused[name] = qs.Paused
	}
	return out
}

// shortestIllegal finds the shortest prefix of the history, by call
// time, that is already not linearizable, makes it the run's history, and
// returns porcupine's account of it: the last call of that prefix is one
// the model cannot place.
func shortestIllegal(model porcupine.Model, history []porcupine.Operation) ([]porcupine.Operation, porcupine.LinearizationInfo) {
	ops := slices.Clone(history)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	lo, hi := 1, len(ops) // ops[:hi] is illegal
	for lo < hi {
		mid := (lo + hi) / 2
		if porcupine.CheckOperationsTimeout(model, ops[:mid], 3*time.Second) == porcupine.Illegal {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	_, info := porcupine.CheckOperationsVerbose(model, ops[:hi], 3*time.Second)
	return ops[:hi], info
}

// explain describes why porcupine found no linearization: the longest
// order it found, then, for each call that could have come next, why the
// model refuses it in every state that order leaves.
func (r *linRun) explain(history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	parts := info.PartialLinearizations()
	if len(parts) == 0 || len(parts[0]) == 0 {
		return "(no partial linearization)"
	}
	longest := parts[0][0]
	for _, p := range parts[0] {
		if len(p) > len(longest) {
			longest = p
		}
	}
	var b strings.Builder
	states := []*lstate{newLstate(r.opts, epoch.UnixNano())}
	done := map[int]bool{}
	last := history[len(history)-1]
	fmt.Fprintf(&b, "the shortest prefix (by call time) that is not linearizable ends with [c%d %d-%d] %v → %v\n",
		last.ClientId, last.Call, last.Return, last.Input, last.Output)
	fmt.Fprintf(&b, "longest linearization of that prefix: %d of %d calls; its last calls:\n", len(longest), len(history))
	for i, id := range longest {
		op := history[id]
		var next []*lstate
		for _, s := range states {
			for _, br := range lsteps(s, op.Input.(*lin), op.Output.(*lout)) {
				if br.err == nil {
					next = append(next, br.s)
				}
			}
		}
		states = mergeStates(next)
		done[id] = true
		if i >= len(longest)-12 {
			fmt.Fprintf(&b, "\t[c%d %d-%d] %v → %v\n", op.ClientId, op.Call, op.Return, op.Input, op.Output)
		}
	}
	// The calls that could come next: not linearized, called before every
	// other pending call returned.
	minRet := int64(1 << 62)
	for id, op := range history {
		if !done[id] {
			minRet = min(minRet, op.Return)
		}
	}
	b.WriteString("after that order (others may fail elsewhere), no call can come next:\n")
	for id, op := range history {
		if done[id] || op.Call > minRet {
			continue
		}
		fmt.Fprintf(&b, "\t[c%d %d-%d] %v → %v\n", op.ClientId, op.Call, op.Return, op.Input, op.Output)
		for si, s := range states {
			for _, br := range lsteps(s, op.Input.(*lin), op.Output.(*lout)) {
				if br.err != nil && si < 3 {
					fmt.Fprintf(&b, "\t\tmodel state %d: %v\n", si, br.err)
				}
			}
		}
	}
	return b.String()
}

// dump writes the history, in call order, to a file named after name and
// returns its path.
func dump(history []porcupine.Operation, name string) string {
	ops := slices.Clone(history)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "[c%d %d-%d] %v → %v\n", op.ClientId, op.Call, op.Return, op.Input, op.Output)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("walq-linearize-%s.txt", name))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "(" + err.Error() + ")"
	}
	return path
}

// firstDistinct returns up to n of the problems, skipping repeats of the
// same cause (a stopped queue fails every later call with one message),
// and says how many it left out.
func firstDistinct(problems []string, n int) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range problems {
		cause := p[strings.LastIndex(p, ": walq")+1:]
		if seen[cause] || len(out) == n {
			continue
		}
		seen[cause] = true
		out = append(out, p)
	}
	if left := len(problems) - len(out); left > 0 {
		out = append(out, fmt.Sprintf("(and %d more like these)", left))
	}
	return out
}

// mergeStates drops repeated states, and keeps at most 20: explain's
// replay must not grow as the search does.
func mergeStates(states []*lstate) []*lstate {
	var out []*lstate
	seen := map[string]bool{}
	for _, s := range states {
		if k := s.encode(); !seen[k] && len(out) < 20 {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}
