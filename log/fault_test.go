package log

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walq/walq/internal/fault"
	"golang.org/x/sys/unix"
)

var errInjected = errors.New("injected fault")

// faults is a pair of hooks that fail every group whose entries include an
// index at or after failFrom, until healed. Only groups are failed whose
// first index the log has not acknowledged, as a real device would.
type faults struct {
	failFrom atomic.Uint64 // 0: never fail
	failed   atomic.Int64  // groups failed
}

func (f *faults) hook(first, last uint64) error {
	if from := f.failFrom.Load(); from != 0 && last >= from {
		f.failed.Add(1)
		return errInjected
	}
	return nil
}

func (f *faults) heal() { f.failFrom.Store(0) }

// on returns an injector that fails commit steps of kind k as f says.
func (f *faults) on(k fault.Kind) fault.Injector {
	return fault.Func(func(op fault.Op) error {
		if op.Kind != k {
			return nil
		}
		return f.hook(op.First, op.Last)
	})
}

// inject makes inj the fault injector of every log opened in dir until the
// test ends.
func inject(t testing.TB, dir string, inj fault.Injector) {
	t.Cleanup(fault.Register(dir, inj))
}

// outcome collects what appenders were told.
type outcome struct {
	mu     sync.Mutex
	acked  map[uint64]entry // by job
	failed map[uint64]error // by job
}

func newOutcome() *outcome {
	return &outcome{acked: map[uint64]entry{}, failed: map[uint64]error{}}
}

func (o *outcome) append(t *testing.T, l *Log, job uint64) error {
	recs := enqueue(job, 64)
	idx, err := l.Append(recs)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.failed[job] = err
	} else {
		o.acked[job] = entry{index: idx, recs: recs}
	}
	return err
}

// expected returns the acknowledged entries in index order.
func (o *outcome) expected() []entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	var es []entry
	for _, e := range o.acked {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].index < es[j].index })
	return es
}

// checkExactly asserts that the log holds exactly the acknowledged entries:
// every one of them, and none that an appender was told failed.
func (o *outcome) checkExactly(t *testing.T, l *Log) {
	t.Helper()
	got := replayAll(t, l, 0)
	o.mu.Lock()
	for _, e := range got {
		if err, ok := o.failed[e.recs[0].Job]; ok {
			t.Errorf("entry %d holds job %d, whose Append failed (%v)", e.index, e.recs[0].Job, err)
		}
	}
	o.mu.Unlock()
	checkEntries(t, got, o.expected())
}

// TestHookFailure injects a failed write (nothing reaches the file) or a
// failed fsync (the bytes are in the file but not known durable) while many
// appenders run. Appends fail with ErrFailed wrapping the cause and keep
// failing (fail-stop) until Recover; afterwards the log holds exactly the
// acknowledged entries, before and after Close and reopen.
func TestHookFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode Durability
		step fault.Kind
	}{
		{"hook=write/mode=sync", Sync, fault.Write},
		{"hook=write/mode=interval", Interval, fault.Write},
		{"hook=write/mode=none", None, fault.Write},
		{"hook=sync/mode=sync", Sync, fault.Sync},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := &faults{}
			inject(t, dir, f.on(tt.step))
			opts := &Options{Durability: tt.mode, SegmentSize: 4096}
			l := openLog(t, dir, opts)
			o := newOutcome()
			for j := uint64(1); j <= 50; j++ {
				if err := o.append(t, l, j); err != nil {
					t.Fatal(err)
				}
			}
			f.failFrom.Store(l.LastIndex() + 40)

			// 16 appenders run into the fault; each stops at its first
			// error.
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100 {
						if o.append(t, l, uint64(1000*(g+1)+i)) != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
			if f.failed.Load() == 0 || len(o.failed) == 0 {
				t.Fatal("no append failed")
			}
			for job, err := range o.failed {
				if !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
					t.Fatalf("job %d: %v, want ErrFailed wrapping the injected fault", job, err)
				}
			}
			if err := l.Failed(); !errors.Is(err, errInjected) {
				t.Fatalf("Failed() = %v", err)
			}
			f.heal()
			// Fail-stop: the device is fine now, but the log is not
			// trusted until Recover.
			if err := o.append(t, l, 999_999); !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
				t.Fatalf("append after the fault healed, before Recover: %v, want ErrFailed", err)
			}
			if _, err := l.TruncateFront(2); !errors.Is(err, ErrFailed) {
				t.Fatalf("TruncateFront on a failed log: %v, want ErrFailed", err)
			}
			acked := l.LastIndex()
			if acked != o.expected()[len(o.acked)-1].index {
				t.Fatalf("LastIndex %d is not the last acknowledged index", acked)
			}
			// Reading what was acknowledged still works.
			checkEntries(t, replayAll(t, l, 0), o.expected())

			if err := l.Recover(); err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if l.Failed() != nil || l.LastIndex() != acked {
				t.Fatalf("after Recover: Failed %v, LastIndex %d (want %d)", l.Failed(), l.LastIndex(), acked)
			}
			o.checkExactly(t, l)
			for j := uint64(100); j < 110; j++ {
				if err := o.append(t, l, j); err != nil {
					t.Fatalf("append after Recover: %v", err)
				}
			}
			if got := o.acked[100].index; got != acked+1 {
				t.Fatalf("first append after Recover got index %d, want %d", got, acked+1)
			}
			o.checkExactly(t, l)
			checkLog(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, opts)
			if l.Repaired() != nil {
				t.Fatalf("reopen after Recover repaired %+v", l.Repaired())
			}
			o.checkExactly(t, l)
		})
	}
}

// TestHookFailureThenClose: the process does not call Recover but closes
// the failed log and reopens it. Appends whose fsync failed were told they
// failed; their bytes are still in the file. After reopen the log must hold
// exactly the acknowledged entries, as after Recover.
func TestHookFailureThenClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		step fault.Kind
	}{
		{"hook=write", fault.Write},
		{"hook=sync", fault.Sync},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := &faults{}
			inject(t, dir, f.on(tt.step))
			opts := &Options{}
			l, err := Open(dir, withQuiet(opts))
			if err != nil {
				t.Fatal(err)
			}
			o := newOutcome()
			for j := uint64(1); j <= 5; j++ {
				o.append(t, l, j)
			}
			f.failFrom.Store(6)
			for j := uint64(6); j <= 8; j++ {
				if err := o.append(t, l, j); !errors.Is(err, ErrFailed) {
					t.Fatalf("append %d: %v, want ErrFailed", j, err)
				}
			}
			l.Close()
			f.heal()
			l = openLog(t, dir, opts)
			got := replayAll(t, l, 0)
			if len(got) != 5 {
				t.Errorf("BUG: after a failed fsync and Close (no Recover), reopen finds %d entries; "+
					"the appender of entry 6 was told it failed, yet it is in the log", len(got))
			}
		})
	}
}

// TestENOSPC fills a small tmpfs until an append fails for real: the error
// is ErrFailed wrapping ENOSPC, and once space is freed the log keeps every
// acknowledged entry and works again, through reopen or through Recover.
func TestENOSPC(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"reopen", "recover"} {
		t.Run("via="+via, func(t *testing.T) {
			t.Parallel()
			root := smallTmpfs(t, "size=1m")
			filler := filepath.Join(root, "filler")
			if err := os.WriteFile(filler, make([]byte, 128<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "log")
			opts := &Options{SegmentSize: 64 << 10}
			l, err := Open(dir, withQuiet(opts))
			if err != nil {
				t.Fatal(err)
			}
			o := newOutcome()
			var failure error
			for j := uint64(1); failure == nil; j++ {
				if j > 10000 {
					t.Fatal("1 MiB tmpfs never filled")
				}
				failure = o.append(t, l, j)
			}
			if !errors.Is(failure, unix.ENOSPC) || !errors.Is(failure, ErrFailed) {
				t.Fatalf("append on a full disk: %v, want ErrFailed wrapping ENOSPC", failure)
			}
			if len(o.acked) < 100 {
				t.Fatalf("only %d appends before ENOSPC", len(o.acked))
			}
			if err := o.append(t, l, 1<<40); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after ENOSPC: %v, want ErrFailed", err)
			}
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			if via == "recover" {
				if err := l.Recover(); err != nil {
					t.Fatalf("Recover after freeing space: %v", err)
				}
				o.checkExactly(t, l)
				if err := o.append(t, l, 1<<41); err != nil {
					t.Fatalf("append after Recover: %v", err)
				}
			}
			l.Close()
			l = openLog(t, dir, opts)
			o.checkExactly(t, l)
			if err := o.append(t, l, 1<<42); err != nil {
				t.Fatalf("append after reopen: %v", err)
			}
			o.checkExactly(t, l)
		})
	}
}

// smallTmpfs mounts a tmpfs with the given options on a temporary directory
// and unmounts it on cleanup. It skips the test unless it runs as root in a
// place that allows mounting.
func smallTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small tmpfs to run out of space needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// TestReadDuringRecover: readers of acknowledged entries keep working while
// another goroutine recovers the log from a failure. Under -race this also
// checks that Recover's swap of tidwall/wal handles is synchronised with
// Read. Not parallel: the race detector blames a race on every test running
// at the time, so a race here must not fail unrelated tests.
func TestReadDuringRecover(t *testing.T) {
	f := &faults{}
	dir := t.TempDir()
	inject(t, dir, f.on(fault.Write))
	l := openLog(t, dir, &Options{Durability: None, SegmentSize: 2048})
	appendJobs(t, l, 1, 101, 50)
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(r); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Read(1 + i%100); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for round := range 20 {
		f.failFrom.Store(1)
		if _, err := l.Append(enqueue(uint64(1000+round), 10)); !errors.Is(err, ErrFailed) {
			t.Fatalf("round %d: append: %v, want ErrFailed", round, err)
		}
		f.heal()
		if err := l.Recover(); err != nil {
			t.Fatalf("round %d: Recover: %v", round, err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("BUG: Read of an acknowledged entry failed while the log recovered: %v", err)
	}
}

// TestCloseWhileAppending: appends racing Close either succeed, and are
// then in the log after reopen, or fail with ErrClosed.
func TestCloseWhileAppending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(nil))
	if err != nil {
		t.Fatal(err)
	}
	o := newOutcome()
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				err := o.append(t, l, uint64(g*10000+i))
				if i == 10 {
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("append racing Close: %v, want ErrClosed", err)
					}
					if i < 10 {
						started <- struct{}{}
					}
					return
				}
			}
		}()
	}
	for range 8 {
		<-started
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = openLog(t, dir, nil)
	o.checkExactly(t, l)
}
