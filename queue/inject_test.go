package queue

import (
	"errors"
	"testing"

	"github.com/walq/walq/internal/fault"
)

// hooks is a test's fault injector for one queue directory (see
// internal/fault): each field that is set handles its kind of step, and
// the others let their steps through. Set the fields before the queue
// runs anything concurrently.
type hooks struct {
	// noBackground keeps the background compactor from starting, so that
	// the test runs compaction's triggers in line.
	noBackground bool
	// write runs before the log writes entries first..last; an error
	// fails them with nothing written.
	write func(first, last uint64) error
	// sync runs before the log fsyncs entries first..last; an error fails
	// them as a failed fsync would.
	sync func(first, last uint64) error
	// compact runs before each compaction step; an error stops the
	// compaction there.
	compact func(step string) error
	// apply runs after entry index is durable and before it is applied
	// (q.mu not held), so that the test can hold it in flight.
	apply func(index uint64)
	// wait runs each time a call is about to wait for a key or job that
	// another operation holds (q.mu held), so that the test knows it
	// waits.
	wait func()
	// checkpoint runs before each step of writing the index checkpoint;
	// an error stops the write there, as a crash would.
	checkpoint func(step string) error
	// truncateSync runs before each fsync of the log's truncation, step
	// "tail" or "dir"; an error fails it as a failed fsync would.
	truncateSync func(step string) error
}

// MaybeError dispatches op to its hook.
func (h *hooks) MaybeError(op fault.Op) error {
	switch {
	case op.Kind == fault.Background && h.noBackground:
		return errNoBackground
	case op.Kind == fault.Write && h.write != nil:
		return h.write(op.First, op.Last)
	case op.Kind == fault.Sync && h.sync != nil:
		return h.sync(op.First, op.Last)
	case op.Kind == fault.Compact && h.compact != nil:
		return h.compact(op.Step)
	case op.Kind == fault.Apply && h.apply != nil:
		h.apply(op.First)
	case op.Kind == fault.Wait && h.wait != nil:
		h.wait()
	case op.Kind == fault.Checkpoint && h.checkpoint != nil:
		return h.checkpoint(op.Step)
	case op.Kind == fault.TruncateSync && h.truncateSync != nil:
		return h.truncateSync(op.Step)
	}
	return nil
}

// errNoBackground is what hooks answer to the background compactor's start.
var errNoBackground = errors.New("test: no background compactor")

// cleaner is the part of testing.TB (and rapid.T) inject needs.
type cleaner interface{ Cleanup(func()) }

// inject makes h the injector of every queue (and its log) opened in dir
// until the test ends, and returns h.
func inject(t cleaner, dir string, h *hooks) *hooks {
	t.Cleanup(fault.Register(dir, h))
	return h
}

// noBackgroundDir returns a new temporary directory whose queues start no
// background compactor.
func noBackgroundDir(t testing.TB) string {
	dir := t.TempDir()
	inject(t, dir, &hooks{noBackground: true})
	return dir
}
