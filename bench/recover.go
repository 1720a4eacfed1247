package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// reopen runs W5 and W6: open the recovery fixture's directory and lease
// the first job, timing it (W5) or measuring the Go heap it takes per
// pending job (W6). The job leased is completed (a backend that can only
// deliver through its runtime may complete a few), and the fixture's ledger
// checks the count.
func (tr *trial) reopen(ctx context.Context) (s sample, err error) {
	fx := tr.fix
	memory := tr.w.kind == kindMemory
	var before runtime.MemStats
	var rss0 int64
	if memory {
		runtime.GC()
		debug.FreeOSMemory()
		runtime.ReadMemStats(&before)
		rss0 = residentBytes()
	}
	opened := fx.pending
	start := time.Now()
	b, err := fx.open(ctx)
	if err != nil {
		return s, err
	}
	defer closeInto(b, &err)
	finish, err := firstJob(ctx, b, fx.led)
	elapsed := time.Since(start)
	if err != nil {
		return s, err
	}
	if memory {
		var after runtime.MemStats
		debug.FreeOSMemory() // collects, then returns free pages so RSS counts live memory
		runtime.ReadMemStats(&after)
		s.value = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(opened)
		s.rss = float64(residentBytes()-rss0) / float64(opened)
		runtime.KeepAlive(b)
	} else {
		s.value = float64(elapsed) / float64(time.Millisecond)
	}
	s.pending = opened
	if err := finish(); err != nil {
		return s, err
	}
	return s, fx.verify(ctx, b)
}

// firstJob leases one job from b (through its runtime if it has no lease
// call) and checks it is one of the fixture's, never delivered before. The
// returned finish completes what was leased.
func firstJob(ctx context.Context, b Backend, led *ledger) (finish func() error, err error) {
	j, err := b.Lease(ctx, false)
	if errors.Is(err, ErrUnsupported) {
		return firstJobRuntime(ctx, b, led)
	}
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	led.mark(j.Payload)
	if err := led.Err(); err != nil {
		return nil, err
	}
	return func() error {
		if err := b.Complete(ctx, j); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		return nil
	}, nil
}

func firstJobRuntime(ctx context.Context, b Backend, led *ledger) (func() error, error) {
	rt, ok := b.(Runtime)
	if !ok {
		return nil, fmt.Errorf("%w: neither a lease call nor a worker runtime", errNotApplicable)
	}
	first := make(chan struct{})
	var once sync.Once
	stop, err := rt.Work(ctx, 1, func(p []byte) {
		led.mark(p)
		once.Do(func() { close(first) })
	})
	if err != nil {
		return nil, fmt.Errorf("start runtime: %w", err)
	}
	select {
	case <-first:
	case <-ctx.Done():
		stop(context.WithoutCancel(ctx))
		return nil, ctx.Err()
	}
	return func() error {
		if err := stop(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("stop runtime: %w", err)
		}
		return led.Err()
	}, nil
}

// residentBytes returns the process's resident set size, or 0 where
// /proc is not available.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
