package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// epoch is where openTest's mock clock starts: a fixed, round time, so that
// run-at times and deadlines in failure messages are easy to read.
var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// startClock returns a mock clock set to epoch.
func startClock() *clock.Mock {
	mc := clock.NewMock()
	mc.Set(epoch)
	return mc
}

// openTest opens the queue in dir for a test. Unless opts say otherwise it
// uses a mock clock at epoch (mockOf returns it), discards log output and
// keeps background maintenance out of the way (the mock runs a 1m ticker on
// every minute of each Add; tests of retention call Compact themselves).
// On cleanup it closes the queue and checks its invariants; a queue the test
// closed already, or abandoned for a crash image, is fine.
func openTest(t testing.TB, dir string, opts *Options) *Queue {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Clock == nil {
		o.Clock = startClock()
	}
	if o.Logger == nil {
		o.Logger = openTestLogger()
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = 10000 * time.Hour
	}
	q, err := Open(dir, &o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		// Close first: it waits for calls in flight, so that check sees
		// a quiet queue (no job reserved, no key held).
		if err := q.Close(); err != nil {
			t.Errorf("Close(%s): %v", dir, err)
		}
		if err := q.check(); err != nil {
			t.Errorf("invariants of %s after the test: %v", dir, err)
		}
	})
	return q
}

// openTestLogger discards what a queue logs (voided leases are expected in
// these tests).
func openTestLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mockOf returns the mock clock of a queue opened by openTest.
func mockOf(t testing.TB, q *Queue) *clock.Mock {
	t.Helper()
	mc, ok := q.opts.Clock.(*clock.Mock)
	if !ok {
		t.Fatalf("queue clock is %T, not a mock", q.opts.Clock)
	}
	return mc
}

// crashImage copies every file of q's directory into a new directory while q
// stays open, and returns it. Every call that returned before is durable, so
// the copy is exactly what a crash at this point would leave (the copy's
// LOCK file is a new, unlocked file).
func crashImage(t testing.TB, q *Queue) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(q.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(q.Dir(), e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// enqueueT enqueues a job and returns its ID.
func enqueueT(t testing.TB, q *Queue, nj NewJob) uint64 {
	t.Helper()
	r, err := q.Enqueue(context.Background(), nj)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", nj, err)
	}
	if r.Duplicate {
		t.Fatalf("Enqueue(%+v): unexpected duplicate of job %d", nj, r.ID)
	}
	return r.ID
}

// leaseT leases the next job of the named queue, failing if none is ready.
func leaseT(t testing.TB, q *Queue, name string) *Lease {
	t.Helper()
	l, err := q.TryLease(context.Background(), name)
	if err != nil {
		t.Fatalf("TryLease(%q) at %v: %v", name, q.opts.Clock.Now(), err)
	}
	return l
}

// noLease asserts that no job of the named queue is ready.
func noLease(t testing.TB, q *Queue, name string) {
	t.Helper()
	l, err := q.TryLease(context.Background(), name)
	if !errors.Is(err, ErrNoJob) {
		if err == nil {
			t.Fatalf("TryLease(%q) at %v leased job %d attempt %d, want ErrNoJob", name, q.opts.Clock.Now(), l.Job.ID, l.Token.Attempt)
		}
		t.Fatalf("TryLease(%q) = %v, want ErrNoJob", name, err)
	}
}

// getT returns a snapshot of job id.
func getT(t testing.TB, q *Queue, id uint64) *Job {
	t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return j
}

// outcomes lists the outcomes of a job's attempts, oldest first.
func outcomes(j *Job) []string {
	var out []string
	for _, a := range j.History {
		out = append(out, a.Outcome)
	}
	return out
}
