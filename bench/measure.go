package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// errNotApplicable marks a workload the backend cannot run (no lease call,
// no worker runtime); the row says why instead of giving a number.
var errNotApplicable = errors.New("not applicable")

// trial is one run of one workload against one target.
type trial struct {
	t     Target
	w     Workload
	sz    Sizes
	dir   string   // a fresh directory for this run
	fix   *fixture // the pending jobs W4–W6 start from
	rate  float64  // W7's offered load, jobs/s
	basis string   // what the load is half of
}

// sample is what one trial measured.
type sample struct {
	value   float64  // in the workload's unit
	pending int      // W5, W6: jobs pending at open
	rss     float64  // W6: resident bytes per pending job
	peakRSS int64    // the trial process's peak RSS in bytes; 0 if unknown
	lat     *latency // W7
}

// latency is one W7 run's distribution.
type latency struct {
	offered, achieved float64 // jobs/s
	basis             string  // what the offered load is half of
	p50, p99, p999    time.Duration
	n                 int
}

// run runs the trial: the one function every workload goes through.
func (tr *trial) run(ctx context.Context) (sample, error) {
	switch tr.w.kind {
	case kindEnqueue:
		return tr.enqueue(ctx)
	case kindDrain:
		return tr.drain(ctx)
	case kindRecover, kindMemory:
		return tr.reopen(ctx)
	case kindLatency:
		return tr.latency(ctx)
	case kindWriteAmp:
		return tr.writeAmp(ctx)
	}
	return sample{}, fmt.Errorf("bench: workload %s has no procedure", tr.w.ID)
}

func (tr *trial) open(ctx context.Context, dir string, producers int) (Backend, error) {
	b, err := tr.t.Open(ctx, Params{Dir: dir, Producers: producers})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return b, nil
}

// closeInto closes b, keeping the first error.
func closeInto(b Backend, err *error) {
	if cerr := b.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("close: %w", cerr)
	}
}

// enqueue runs W1–W3: producers enqueue jobs (one or a batch per call)
// until all are in or MaxDuration passes; then the backend must hold
// exactly the jobs acknowledged, intact. W3's MaxDuration counts the time
// spent making its batches too, its rate only the time inside the calls.
func (tr *trial) enqueue(ctx context.Context) (s sample, err error) {
	n, batch := tr.sz.EnqueueJobs, tr.w.batch
	if batch > 1 {
		n = tr.sz.BatchJobs
	}
	b, err := tr.open(ctx, tr.dir, tr.w.producers)
	if err != nil {
		return s, err
	}
	defer closeInto(b, &err)
	led := newLedger(n)
	// One producer of batches (W3) makes each batch just before its call
	// and is timed inside the calls only, so that its peak RSS is not
	// that of all n payloads at once; the others make every payload
	// before the timed part.
	lazy := batch > 1 && tr.w.producers == 1
	var payloads [][]byte
	if !lazy {
		payloads = led.payloads()
	}
	var next, acked atomic.Int64
	var inCalls time.Duration
	start := time.Now()
	deadline := start.Add(tr.sz.MaxDuration)
	err = fanOut(ctx, tr.w.producers, func(ctx context.Context, _ int) error {
		for ctx.Err() == nil && time.Now().Before(deadline) {
			i := int(next.Add(int64(batch))) - batch
			if i >= n {
				return nil
			}
			j := min(i+batch, n)
			var err error
			switch {
			case batch == 1:
				err = b.Enqueue(ctx, payloads[i])
			case lazy:
				chunk := make([][]byte, 0, j-i)
				for k := i; k < j; k++ {
					chunk = append(chunk, led.payload(k, 0))
				}
				t0 := time.Now()
				err = b.EnqueueBatch(ctx, chunk)
				inCalls += time.Since(t0) // one producer: no race
			default:
				err = b.EnqueueBatch(ctx, payloads[i:j])
			}
			if err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			acked.Add(int64(j - i))
		}
		return ctx.Err()
	})
	elapsed := time.Since(start)
	if lazy {
		elapsed = inCalls
	}
	if err != nil {
		return s, err
	}
	if err := verifyStored(ctx, b, led, int(acked.Load())); err != nil {
		return s, err
	}
	return sample{value: float64(acked.Load()) / elapsed.Seconds()}, nil
}

// verifyStored checks that b holds exactly want pending jobs and that the
// next one leased is one of ours, intact.
func verifyStored(ctx context.Context, b Backend, led *ledger, want int) error {
	pending, err := b.Pending(ctx)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if pending != want {
		return fmt.Errorf("bench: %d jobs acknowledged, but the backend holds %d", want, pending)
	}
	if want == 0 {
		return fmt.Errorf("bench: no job was enqueued")
	}
	j, err := b.Lease(ctx, false)
	if errors.Is(err, ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease a stored job: %w", err)
	}
	_, _, err = led.decode(j.Payload)
	return err
}

// drain runs W4 and W4rt on the target's drain fixture: it is topped up to
// DrainJobs pending jobs (untimed), then consumers lease and complete jobs
// until none is left or MaxDuration passes. The fixture's ledger then
// checks that every job was completed at most once and that completed plus
// pending account for every job ever enqueued.
func (tr *trial) drain(ctx context.Context) (s sample, err error) {
	fx := tr.fix
	b, err := fx.open(ctx)
	if err != nil {
		return s, err
	}
	defer closeInto(b, &err)
	// Probing the lease call of a fresh, empty fixture has no side
	// effect; once the fixture holds jobs, the plain loop has run here
	// before, so it is applicable.
	if tr.w.runtime || fx.enqueued == 0 {
		if err := applicable(ctx, b, tr.w, fx.led); err != nil {
			return s, err
		}
	}
	if err := fx.topUp(ctx, b, tr.sz.DrainJobs); err != nil {
		return s, err
	}
	before := fx.led.Done()
	start := time.Now()
	deadline := start.Add(tr.sz.MaxDuration)
	if tr.w.runtime {
		err = drainRuntime(ctx, b.(Runtime), fx.led, tr.w.consumers, before+fx.pending, deadline)
	} else {
		err = drainLoop(ctx, b, fx.led, tr.w.consumers, deadline)
	}
	elapsed := time.Since(start)
	if err != nil {
		return s, err
	}
	if err := fx.verify(ctx, b); err != nil {
		return s, err
	}
	done := fx.led.Done() - before
	if done == 0 {
		return s, fmt.Errorf("bench: no job was completed")
	}
	return sample{value: float64(done) / elapsed.Seconds()}, nil
}

// applicable reports errNotApplicable if b lacks what w consumes through: a
// worker runtime, or a lease call. Probing the lease call may lease a real
// job; it is then completed and recorded in led like any other.
func applicable(ctx context.Context, b Backend, w Workload, led *ledger) error {
	if w.runtime {
		if _, ok := b.(Runtime); !ok {
			return fmt.Errorf("%w: no worker runtime", errNotApplicable)
		}
		return nil
	}
	j, err := b.Lease(ctx, false)
	switch {
	case errors.Is(err, ErrUnsupported):
		return fmt.Errorf("%w: no public lease call", errNotApplicable)
	case errors.Is(err, ErrEmpty):
		return nil
	case err != nil:
		return fmt.Errorf("lease: %w", err)
	}
	if err := b.Complete(ctx, j); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	led.mark(j.Payload)
	return nil
}

// drainLoop is the plain loop: each consumer leases and completes one job
// at a time until none is ready.
func drainLoop(ctx context.Context, b Backend, led *ledger, consumers int, deadline time.Time) error {
	return fanOut(ctx, consumers, func(ctx context.Context, _ int) error {
		for time.Now().Before(deadline) {
			j, err := b.Lease(ctx, false)
			if errors.Is(err, ErrEmpty) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("lease: %w", err)
			}
			if err := b.Complete(ctx, j); err != nil {
				return fmt.Errorf("complete: %w", err)
			}
			led.mark(j.Payload)
		}
		return nil
	})
}

// drainRuntime runs the backend's worker runtime until the ledger counts
// done jobs delivered or the deadline passes, then stops it (which waits
// for the completions to be durable).
func drainRuntime(ctx context.Context, rt Runtime, led *ledger, consumers, done int, deadline time.Time) error {
	all := make(chan struct{})
	var once sync.Once
	stop, err := rt.Work(ctx, consumers, func(p []byte) {
		led.mark(p)
		if led.Done() >= done {
			once.Do(func() { close(all) })
		}
	})
	if err != nil {
		return fmt.Errorf("start runtime: %w", err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
	case <-ctx.Done():
	}
	if err := stop(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("stop runtime: %w", err)
	}
	return ctx.Err()
}
