package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// drainGrace is how long W7 waits, after the last enqueue, for the
// consumers to catch up before it declares jobs lost.
const drainGrace = 60 * time.Second

// latency runs W7. Producers offer tr.rate jobs/s for LatencyDuration on a
// fixed schedule (job k is due k/rate after the start, whatever happened to
// the jobs before it), spread over the workload's producers. Consumers run
// through the backend's worker runtime, or, for a backend without one, as
// goroutines blocking in Lease. Each payload carries the time its Enqueue
// call started; the handler records how long after that it started.
func (tr *trial) latency(ctx context.Context) (s sample, err error) {
	if tr.rate <= 0 {
		return s, fmt.Errorf("bench: W7 needs a positive offered load")
	}
	n := max(1, int(tr.rate*tr.sz.LatencyDuration.Seconds()))
	b, err := tr.open(ctx, tr.dir, tr.w.producers)
	if err != nil {
		return s, err
	}
	defer closeInto(b, &err)
	led := newLedger(n)
	payloads := led.payloads()
	lats := make([]int64, n)
	clock := time.Now() // stamps are durations since clock (monotonic)
	var handled atomic.Int64
	all := make(chan struct{})
	handle := func(p []byte) {
		at := int64(time.Since(clock))
		if seq, stamp := led.mark(p); seq >= 0 {
			lats[seq] = at - stamp
		}
		if handled.Add(1) == int64(n) {
			close(all)
		}
	}
	stop, err := consume(ctx, b, tr.w, led, handle)
	if err != nil {
		return s, err
	}
	start := time.Now()
	err = offer(ctx, b, payloads, tr.rate, min(tr.w.producers, n), clock)
	sent := time.Since(start)
	if err == nil {
		err = awaitAll(ctx, all, &handled, n)
	}
	if serr := stop(context.WithoutCancel(ctx)); serr != nil && err == nil {
		err = fmt.Errorf("stop consumers: %w", serr)
	}
	if err != nil {
		return s, err
	}
	pending, err := b.Pending(ctx)
	if err != nil {
		return s, fmt.Errorf("count: %w", err)
	}
	if err := led.check(n, pending); err != nil {
		return s, err
	}
	slices.Sort(lats)
	l := &latency{offered: tr.rate, basis: tr.basis, achieved: float64(n) / sent.Seconds(), n: n,
		p50: time.Duration(quantile(lats, 0.50)), p99: time.Duration(quantile(lats, 0.99)), p999: time.Duration(quantile(lats, 0.999))}
	return sample{value: float64(l.p99) / float64(time.Millisecond), lat: l}, nil
}

// offer enqueues payloads at rate jobs/s on a fixed schedule, from
// producers goroutines, stamping each with the time its call starts.
func offer(ctx context.Context, b Backend, payloads [][]byte, rate float64, producers int, clock time.Time) error {
	start := time.Now()
	interval := float64(time.Second) / rate
	return fanOut(ctx, producers, func(ctx context.Context, k int) error {
		for seq := k; seq < len(payloads); seq += producers {
			due := start.Add(time.Duration(float64(seq) * interval))
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
			}
			p := payloads[seq]
			binary.BigEndian.PutUint64(p[16:], uint64(time.Since(clock)))
			if err := b.Enqueue(ctx, p); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		return nil
	})
}

// awaitAll waits until all n jobs were handled.
func awaitAll(ctx context.Context, all <-chan struct{}, handled *atomic.Int64, n int) error {
	t := time.NewTimer(drainGrace)
	defer t.Stop()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("bench: only %d of %d jobs reached a handler within %v of the last enqueue", handled.Load(), n, drainGrace)
	}
}

// consume starts consumers that call handle for every job: the backend's
// worker runtime if the workload asks for it and the backend has one,
// otherwise goroutines that block in Lease and complete each job after
// handle returns.
func consume(ctx context.Context, b Backend, w Workload, led *ledger, handle func([]byte)) (func(context.Context) error, error) {
	if rt, ok := b.(Runtime); ok && w.runtime {
		stop, err := rt.Work(ctx, w.consumers, handle)
		if err != nil {
			return nil, fmt.Errorf("start runtime: %w", err)
		}
		return stop, nil
	}
	if err := applicable(ctx, b, Workload{}, led); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range w.consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := b.Lease(lctx, true)
				if err == nil {
					handle(j.Payload)
					err = b.Complete(context.WithoutCancel(ctx), j)
				}
				if err != nil {
					if lctx.Err() == nil || !errors.Is(err, lctx.Err()) {
						once.Do(func() { first = err })
					}
					return
				}
			}
		}()
	}
	return func(context.Context) error {
		cancel()
		wg.Wait()
		return first
	}, nil
}
