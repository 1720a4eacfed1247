package bench

import (
	"context"
	"fmt"
)

// fillChunk is how many jobs one EnqueueBatch call carries when a fixture
// is filled, outside any timed part.
const fillChunk = 1000

// fixture is a directory of pending jobs shared by the runs of the
// workloads that start from a full queue: W4 and W4rt drain it (and top it
// up again before each run), W5 and W6 reopen it. The backend is closed
// between runs; the ledger follows every job across them, so that a job
// completed in one run and delivered again in another is caught.
type fixture struct {
	t        Target
	dir      string
	led      *ledger
	enqueued int // jobs enqueued so far: the next sequence number
	pending  int // jobs not completed yet
}

// newFixture returns an empty fixture in dir for at most capacity jobs
// over its lifetime.
func newFixture(t Target, dir string, capacity int) *fixture {
	return &fixture{t: t, dir: dir, led: newLedger(capacity)}
}

// open opens the fixture's backend.
func (fx *fixture) open(ctx context.Context) (Backend, error) {
	b, err := fx.t.Open(ctx, Params{Dir: fx.dir, Producers: 1})
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return b, nil
}

// topUp enqueues jobs in batches until n are pending, then checks that the
// backend holds exactly what the ledger expects.
func (fx *fixture) topUp(ctx context.Context, b Backend, n int) error {
	if fx.enqueued+n-fx.pending > len(fx.led.seen) {
		return fmt.Errorf("bench: fixture full: %d jobs enqueued, %d more do not fit", fx.enqueued, n-fx.pending)
	}
	chunk := make([][]byte, 0, fillChunk)
	for fx.pending < n {
		chunk = chunk[:0]
		for k := 0; k < min(fillChunk, n-fx.pending); k++ {
			chunk = append(chunk, fx.led.payload(fx.enqueued+k, 0))
		}
		if err := b.EnqueueBatch(ctx, chunk); err != nil {
			return fmt.Errorf("prepare pending jobs: %w", err)
		}
		fx.enqueued += len(chunk)
		fx.pending += len(chunk)
	}
	return fx.verify(ctx, b)
}

// verify checks that the backend's pending count matches the ledger: every
// job enqueued is either delivered exactly once or still pending. It
// records the count for the next run.
func (fx *fixture) verify(ctx context.Context, b Backend) error {
	pending, err := b.Pending(ctx)
	if err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if err := fx.led.check(fx.enqueued, pending); err != nil {
		return err
	}
	fx.pending = pending
	return nil
}
