// Package queuetest is the conformance suite of walq's engines: the
// behavioural tests of the queue.Engine API, the same ones for every
// engine, in the manner of River's driver tests. An engine's own tests
// call Run with a Harness that opens a fresh engine and says what the
// engine offers; the suite skips, with t.Skip and the reason, each test of
// a capability the engine lacks.
//
// Time is injected. An engine on a mock clock (Caps.MockClock, as *queue.Queue
// in its harness) is tested in virtual time: the suite moves the clock and
// checks boundaries to the nanosecond. An engine on real time (a server's)
// is tested with short real durations: every delay, backoff, lease and
// retention the suite uses is a small multiple of Harness.Unit, and
// outcomes that need time to pass are awaited for at most
// Harness.Patience.
//
// The package may change with the engines; only package queue has a
// compatibility promise.
package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Harness opens the engine under test for each test of the suite.
type Harness struct {
	// Open opens a fresh, empty engine configured by cfg, for the test t
	// alone. The harness closes it in t.Cleanup (tests may close it
	// earlier: Close is idempotent). Required.
	Open func(t *testing.T, cfg Config) queue.Engine
	// Reopen, if set, closes e and opens the same jobs again, as a
	// restarted process would, with the same cfg. Defaults to nil (the
	// tests of persistence across a restart are skipped).
	Reopen func(t *testing.T, e queue.Engine, cfg Config) queue.Engine
	// Caps says what the engine offers.
	Caps Caps
	// Unit is the suite's time scale: delays, backoffs, lease durations
	// and retention are small multiples of it (at most about 30 Units per
	// test). Defaults to 1s, which suits a mock clock; an engine on real
	// time sets tens or hundreds of milliseconds.
	Unit time.Duration
	// Patience bounds how long the suite waits, in real time, for an
	// outcome that needs time to pass or work in the background. Defaults
	// to 10s.
	Patience time.Duration
	// Parallel runs the suite's tests in parallel (each has an engine of
	// its own). Defaults to false.
	Parallel bool
}

// Config is what the suite asks of the engine a test opens. The zero value
// of a field means the engine's default.
type Config struct {
	// MaxAttempts is how many times a job runs at most.
	MaxAttempts int
	// Backoff is the delay policy between attempts (without jitter).
	Backoff queue.Backoff
	// LeaseDuration is how long a lease lasts unless extended.
	LeaseDuration time.Duration
	// KeyRetention is how long a completed or cancelled job, its result
	// and its key are kept.
	KeyRetention time.Duration
	// Durability is the durability mode, one of Caps.Durability (the
	// zero value, queue.Sync, for every other test).
	Durability queue.Durability
}

// Caps declares the capabilities of an engine. A test that needs one the
// engine lacks is skipped, saying which.
type Caps struct {
	// MockClock: Engine.Info().Clock is a *clock.Mock that the suite may
	// move; time moves nowhere else. Without it the suite lets real time
	// pass and checks boundaries only coarsely.
	MockClock bool
	// Durability lists the durability modes the engine can be opened
	// with (Config.Durability); empty means only its own, unnamed one.
	Durability []queue.Durability
	// History: Job.History records every attempt (number, lease, outcome,
	// error) as *queue.Queue documents.
	History bool
	// Ordering: ready jobs of a queue are leased strictly by priority
	// (highest first), then run-at, then enqueue order.
	Ordering bool
	// Events: Subscribe delivers every transition of the engine's jobs, in
	// order for each job.
	Events bool
}

// Run runs the conformance suite against the engine h opens.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("queuetest: Harness.Open is nil")
	}
	if h.Unit <= 0 {
		h.Unit = time.Second
	}
	if h.Patience <= 0 {
		h.Patience = 10 * time.Second
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if h.Parallel {
				t.Parallel()
			}
			tc.run(t, &h)
		})
	}
}

// tests lists the suite's tests, in the order they run.
var tests = []struct {
	name string
	run  func(t *testing.T, h *Harness)
}{
	{"HappyPath", testHappyPath},
	{"WaitOutcomes", testWaitOutcomes},
	{"TryLeaseEmpty", testTryLeaseEmpty},
	{"LeaseBlocks", testLeaseBlocks},
	{"LeaseN", testLeaseN},
	{"Priority", testPriority},
	{"Delay", testDelay},
	{"Extend", testExtend},
	{"LeaseExpiry", testLeaseExpiry},
	{"StaleTokens", testStaleTokens},
	{"Backoff", testBackoff},
	{"Permanent", testPermanent},
	{"RetryAfter", testRetryAfter},
	{"Snooze", testSnooze},
	{"Release", testRelease},
	{"History", testHistory},
	{"DeadLetter", testDeadLetter},
	{"Purge", testPurge},
	{"Cancel", testCancel},
	{"PauseResume", testPauseResume},
	{"Stats", testStats},
	{"Jobs", testJobs},
	{"IdempotencyKey", testIdempotencyKey},
	{"KeyRetention", testKeyRetention},
	{"KeyOfDeadJob", testKeyOfDeadJob},
	{"EnqueueBatch", testEnqueueBatch},
	{"CompleteAndEnqueue", testCompleteAndEnqueue},
	{"CompleteBatch", testCompleteBatch},
	{"Events", testEvents},
	{"Close", testClose},
	{"Durability", testDurability},
	{"Reopen", testReopen},
	{"ConcurrentExactlyOnce", testConcurrentExactlyOnce},
	{"Worker", testWorker},
	{"WorkerStop", testWorkerStop},
}

// env is one test's engine and the means to drive it.
type env struct {
	t    *testing.T
	h    *Harness
	cfg  Config
	e    queue.Engine
	ctx  context.Context
	mock *clock.Mock // nil on real time
	u    time.Duration
}

// open opens a fresh engine for t with cfg; durations in cfg that are zero
// get the suite's defaults in Units.
func open(t *testing.T, h *Harness, cfg Config) *env {
	t.Helper()
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 10 * h.Unit
	}
	if cfg.Backoff.Base == 0 {
		cfg.Backoff = queue.Backoff{Base: h.Unit, Factor: 2, Cap: 16 * h.Unit}
	}
	if cfg.KeyRetention == 0 {
		cfg.KeyRetention = 20 * h.Unit
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	e := h.Open(t, cfg)
	if e == nil {
		t.Fatal("queuetest: Harness.Open returned nil")
	}
	v := &env{t: t, h: h, cfg: cfg, e: e, ctx: context.Background(), u: h.Unit}
	v.setClock()
	return v
}

func (v *env) setClock() {
	if !v.h.Caps.MockClock {
		return
	}
	mc, ok := v.e.Info().Clock.(*clock.Mock)
	if !ok {
		v.t.Fatalf("queuetest: Caps.MockClock set, but the engine's clock is %T", v.e.Info().Clock)
	}
	v.mock = mc
}

// need skips the test unless the engine has the capability.
func need(t *testing.T, have bool, what string) {
	t.Helper()
	if !have {
		t.Skipf("engine lacks %s", what)
	}
}

// now is the engine's time.
func (v *env) now() time.Time {
	if v.mock != nil {
		return v.mock.Now()
	}
	return time.Now()
}

// advance lets d pass: at once on a mock clock, in real time otherwise.
func (v *env) advance(d time.Duration) {
	if v.mock != nil {
		v.mock.Add(d)
		return
	}
	time.Sleep(d) // real time must pass: the engine runs on it
}

// patience returns a context that ends after Harness.Patience.
func (v *env) patience() (context.Context, context.CancelFunc) {
	return context.WithTimeout(v.ctx, v.h.Patience)
}

// enqueue enqueues nj and fails the test on error.
func (v *env) enqueue(nj queue.NewJob) queue.Enqueued {
	v.t.Helper()
	res, err := v.e.Enqueue(v.ctx, nj)
	if err != nil {
		v.t.Fatalf("Enqueue(%+v): %v", nj, err)
	}
	return res
}

// lease leases the next job of the named queue: it must be ready now on a
// mock clock, and within Patience on real time.
func (v *env) lease(name string) *queue.Lease {
	v.t.Helper()
	if v.mock != nil {
		l, err := v.e.TryLease(v.ctx, name)
		if err != nil {
			v.t.Fatalf("TryLease(%q): %v", name, err)
		}
		return l
	}
	ctx, cancel := v.patience()
	defer cancel()
	l, err := v.e.Lease(ctx, name)
	if err != nil {
		v.t.Fatalf("Lease(%q) within %v: %v", name, v.h.Patience, err)
	}
	return l
}

// noJob checks that no job of the named queue is ready.
func (v *env) noJob(name string) {
	v.t.Helper()
	l, err := v.e.TryLease(v.ctx, name)
	if !errors.Is(err, queue.ErrNoJob) {
		if l != nil {
			v.t.Fatalf("TryLease(%q) leased job %d, want ErrNoJob", name, l.Job.ID)
		}
		v.t.Fatalf("TryLease(%q) = %v, want ErrNoJob", name, err)
	}
}

// notYet checks, on a mock clock, that no job of the named queue is ready
// until d has passed (from now), and lets d pass; on real time it lets d
// pass.
func (v *env) notYet(name string, d time.Duration) {
	v.t.Helper()
	if v.mock != nil {
		v.advance(d - 1)
		v.noJob(name)
		v.advance(1)
		return
	}
	v.noJob(name)
	v.advance(d)
}

// get returns the job, failing the test on error.
func (v *env) get(id uint64) *queue.Job {
	v.t.Helper()
	j, err := v.e.Get(v.ctx, id)
	if err != nil {
		v.t.Fatalf("Get(%d): %v", id, err)
	}
	return j
}

// state checks a job's state.
func (v *env) state(id uint64, want queue.JobState) *queue.Job {
	v.t.Helper()
	j := v.get(id)
	if j.State != want {
		v.t.Fatalf("job %d is %s, want %s", id, j.State, want)
	}
	return j
}

// complete completes the lease, failing the test on error.
func (v *env) complete(l *queue.Lease, result string) {
	v.t.Helper()
	var r []byte
	if result != "" {
		r = []byte(result)
	}
	if err := v.e.Complete(v.ctx, l.Token, r); err != nil {
		v.t.Fatalf("Complete(job %d): %v", l.Job.ID, err)
	}
}

// fail fails the lease's attempt with err, failing the test on error.
func (v *env) fail(l *queue.Lease, err error) {
	v.t.Helper()
	if e := v.e.Fail(v.ctx, l.Token, err); e != nil {
		v.t.Fatalf("Fail(job %d, %v): %v", l.Job.ID, err, e)
	}
}

// stats returns the stats of the named queue.
func (v *env) stats(name string) queue.QueueStats {
	v.t.Helper()
	st, err := v.e.Stats(v.ctx)
	if err != nil {
		v.t.Fatalf("Stats: %v", err)
	}
	return st.Queues[name]
}

// wantErr checks that err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want %v", what, err, target)
	}
}
