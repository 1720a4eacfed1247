package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/internal/fault"
)

// Faults below the queue: a disk that fills up, writes and fsyncs that
// fail. Whatever fails, a call that returned nil stays (in memory, after the
// queue recovers by itself, after a reopen, after a crash), and a call that
// failed is not applied.

// workRunner drives a simple workload (enqueue with a key, lease, complete)
// and remembers the state after each acknowledged call.
type workRunner struct {
	t     *testing.T
	q     *Queue
	ctx   context.Context
	n     int
	last  []viewJob // the state after the last acknowledged call
	token *Token
}

// step makes the next call and returns its error; on success it records
// the new state.
func (w *workRunner) step(payload int) error {
	w.n++
	var err error
	switch {
	case w.token != nil:
		err = w.q.Complete(w.ctx, *w.token, []byte(fmt.Sprintf("result %d", w.token.Job)))
		if err == nil {
			w.token = nil
		}
	case w.n%3 == 2:
		var l *Lease
		if l, err = w.q.TryLease(w.ctx, ""); err == nil {
			w.token = &l.Token
		} else if errors.Is(err, ErrNoJob) {
			err = nil
		}
	default:
		_, err = w.q.Enqueue(w.ctx, NewJob{Payload: make([]byte, payload), Key: fmt.Sprintf("key-%d", w.n)})
	}
	if err == nil {
		w.last = viewOf(w.t, w.q)
	}
	return err
}

// enqueue makes a call that always writes: an enqueue with a new key.
func (w *workRunner) enqueue(payload int) error {
	w.n++
	_, err := w.q.Enqueue(w.ctx, NewJob{Payload: make([]byte, payload), Key: fmt.Sprintf("key-%d", w.n)})
	if err == nil {
		w.last = viewOf(w.t, w.q)
	}
	return err
}

// mountTmpfs mounts a tmpfs with the given options on a new temporary
// directory and unmounts it on cleanup; it skips the test (saying why) if
// it cannot, for example when not running as root.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs to fill the disk needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestDiskFull runs a workload on a 1 MiB tmpfs until a call fails with
// ENOSPC. The failed call changes nothing; calls keep failing until space is
// freed and a second of the queue's clock has passed (the queue retries
// log.Recover at most once a second); then the queue works on in-process,
// and every acknowledged change survives a crash image taken while the
// disk was full, a close and a reopen.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	root := mountTmpfs(t, "size=1m")
	filler := filepath.Join(root, "filler")
	if err := os.WriteFile(filler, make([]byte, 256<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "queue")
	mc := newMock()
	opts := &Options{Clock: mc, SegmentSize: 64 << 10, CompactRatio: -1, Logger: openTestLogger()}
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := &workRunner{t: t, q: q, ctx: context.Background()}
	var full error
	for full == nil {
		if w.n > 10000 {
			t.Fatal("the 1 MiB tmpfs never filled")
		}
		full = w.step(8000)
	}
	if !errors.Is(full, syscall.ENOSPC) || !errors.Is(full, ErrFailed) {
		t.Fatalf("call %d on a full disk: %v, want ErrFailed wrapping ENOSPC", w.n, full)
	}
	t.Logf("disk full after %d calls: %v", w.n, full)
	acked := w.last
	if got := viewOf(t, q); !reflect.DeepEqual(got, acked) {
		t.Fatalf("the failed call changed the queue in memory")
	}
	// The image a crash would leave now, with the disk still full.
	image := crashImage(t, q)
	// Still full: calls fail, whether or not a second has passed.
	for range 3 {
		if err := w.enqueue(8000); !errors.Is(err, ErrFailed) {
			t.Fatalf("call on a still full disk: %v, want ErrFailed", err)
		}
		mc.Add(400 * time.Millisecond)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Space is back; the queue retries recovery once a second.
	mc.Add(time.Second)
	for i := range 5 {
		if err := w.step(100); err != nil {
			t.Fatalf("call %d after space was freed: %v", i, err)
		}
	}
	if got := viewOf(t, q); !containsJobs(got, acked) {
		t.Fatal("an acknowledged job changed across the in-process recovery")
	}
	want := w.last
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if got := viewOf(t, q2); !reflect.DeepEqual(got, voided(want)) {
		t.Fatalf("reopen after the disk was full: got %d jobs, want %d", len(got), len(want))
	}
	q3, err := Open(image, opts)
	if err != nil {
		t.Fatalf("opening the crash image taken on a full disk: %v", err)
	}
	defer q3.Close()
	if got := viewOf(t, q3); !reflect.DeepEqual(got, voided(acked)) {
		t.Fatalf("crash image taken on a full disk: got %d jobs, want %d", len(got), len(acked))
	}
}

// voided returns a view as it reads after a reopen: viewOf already shows
// leased jobs as voided, so this is the identity; it names the intent.
func voided(v []viewJob) []viewJob { return v }

// containsJobs reports whether every job of want is in got, unchanged,
// except that a job want shows pending may have moved on.
func containsJobs(got, want []viewJob) bool {
	byID := map[uint64]viewJob{}
	for _, j := range got {
		byID[j.ID] = j
	}
	for _, j := range want {
		g, ok := byID[j.ID]
		if !ok || (g != j && j.State != "pending") {
			return false
		}
	}
	return true
}

// TestWriteAndSyncFailures injects a failed write (nothing reaches the
// file) or a failed fsync (the bytes are in the file, their durability
// unknown) at a random call of a workload. The failing call and every call
// after it return ErrFailed and change nothing; once the fault is gone and
// a second has passed the queue recovers in-process to exactly the
// acknowledged state. A crash image taken at the failure reopens with every
// acknowledged change (after a failed fsync the failed call may or may not
// be there: its outcome is unknown, as after a dropped connection); a Close
// and reopen shows exactly what was acknowledged.
func TestWriteAndSyncFailures(t *testing.T) {
	t.Parallel()
	for _, hook := range []string{"write", "sync"} {
		for _, at := range []int{1, 2, 3, 7, 20, 41} {
			t.Run(fmt.Sprintf("hook=%s/call=%d", hook, at), func(t *testing.T) {
				t.Parallel()
				testFailureAt(t, hook, at)
			})
		}
	}
}

func testFailureAt(t *testing.T, hook string, at int) {
	var failing atomic.Bool
	injected := errors.New("injected I/O error")
	fn := func(first, last uint64) error {
		if failing.Load() {
			return injected
		}
		return nil
	}
	h := &hooks{}
	if hook == "write" {
		h.write = fn
	} else {
		h.sync = fn
	}
	mc := newMock()
	dir := t.TempDir()
	uninject := fault.Register(dir, h)
	t.Cleanup(uninject)
	opts := &Options{Clock: mc, SegmentSize: 4 << 10, CompactRatio: -1, Logger: openTestLogger()}
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := &workRunner{t: t, q: q, ctx: context.Background()}
	for w.n < at {
		if err := w.step(300); err != nil {
			t.Fatal(err)
		}
	}
	acked := w.last
	failing.Store(true)
	err = w.step(300)
	for err == nil { // a TryLease with nothing ready writes nothing
		err = w.step(300)
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, injected) {
		t.Fatalf("call %d with a failing %s: %v, want ErrFailed wrapping the fault", w.n, hook, err)
	}
	if got := viewOf(t, q); !reflect.DeepEqual(got, acked) {
		t.Fatal("the failed call changed the queue in memory")
	}
	image := crashImage(t, q)
	// The next call recovers the log at once and fails again; the call
	// after it, with the fault gone, still fails: the queue tries
	// log.Recover at most once a second of its clock.
	if err := w.enqueue(300); !errors.Is(err, ErrFailed) {
		t.Fatalf("call while the fault lasts: %v, want ErrFailed", err)
	}
	failing.Store(false)
	if err := w.enqueue(300); !errors.Is(err, ErrFailed) {
		t.Fatalf("call in the same second as the last recovery: %v, want ErrFailed", err)
	}
	if got := viewOf(t, q); !reflect.DeepEqual(got, acked) {
		t.Fatal("a refused call changed the queue in memory")
	}
	mc.Add(time.Second)
	for i := range 6 {
		if err := w.step(300); err != nil {
			t.Fatalf("call %d after the fault went away: %v", i, err)
		}
	}
	if !containsJobs(w.last, acked) {
		t.Fatal("recovery changed an acknowledged job")
	}
	want := w.last
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	uninject()
	checkReopen(t, dir, opts, want, "close and reopen")

	// The crash image: every acknowledged change is there. After a failed
	// write the failed call is not; after a failed fsync it may be.
	q3, err := Open(image, &Options{Clock: clock.NewMock(), CompactRatio: -1, Logger: openTestLogger()})
	if err != nil {
		t.Fatalf("opening the crash image: %v", err)
	}
	defer q3.Close()
	got := viewOf(t, q3)
	if hook == "write" && !reflect.DeepEqual(got, acked) {
		t.Fatalf("crash image after a failed write: %d jobs, want exactly the %d acknowledged", len(got), len(acked))
	}
	if !containsJobs(got, acked) || len(got) > len(acked)+1 {
		t.Fatalf("crash image after a failed %s: %d jobs, want the %d acknowledged (and at most the failed one)", hook, len(got), len(acked))
	}
}

// checkReopen opens dir and checks that it holds exactly want.
func checkReopen(t *testing.T, dir string, opts *Options, want []viewJob, what string) {
	t.Helper()
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer q.Close()
	if got := viewOf(t, q); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: %d jobs, want exactly the %d acknowledged:\n got %+v\nwant %+v", what, len(got), len(want), got, want)
	}
}
