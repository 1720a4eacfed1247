package log

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLock: one writer per directory. A second Open in the same process
// fails with a *LockedError naming this pid, as does Salvage; Close releases
// the lock.
func TestLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(nil))
	if err != nil {
		t.Fatal(err)
	}
	appendJobs(t, l, 1, 3, 10)
	for _, o := range []*Options{nil, {Durability: None}} {
		l2, err := Open(dir, withQuiet(o))
		if err == nil {
			l2.Close()
			t.Fatal("second writer opened a locked directory")
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open: %v, want ErrLocked", err)
		}
		var le *LockedError
		if !errors.As(err, &le) || le.PID != os.Getpid() || le.Dir != dir {
			t.Fatalf("second Open: %#v, want a *LockedError for %s naming pid %d", err, dir, os.Getpid())
		}
		if !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
			t.Errorf("error %q does not name the pid", err)
		}
	}
	if LockHolder(dir) != os.Getpid() {
		t.Errorf("LockHolder = %d, want %d", LockHolder(dir), os.Getpid())
	}
	if _, err := Salvage(dir, true); !errors.Is(err, ErrLocked) {
		t.Errorf("Salvage of a locked directory: %v, want ErrLocked", err)
	}
	// The refused writer did not disturb the holder.
	appendJobs(t, l, 3, 5, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, nil)
	if l.LastIndex() != 4 {
		t.Fatalf("LastIndex %d after reopen, want 4", l.LastIndex())
	}
	if LockHolder(t.TempDir()) != 0 {
		t.Error("LockHolder of a directory without a lock file is not 0")
	}
}

// TestReadOnly: a reader opens the directory while the writer holds it,
// changes no byte, sees what the writer adds after Refresh, and treats a
// half-written tail as the end of the log.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := &Options{SegmentSize: 2048, Durability: None}
	w := openLog(t, dir, opts)
	want := appendJobs(t, w, 1, 41, 100)
	before := hashDir(t, dir)

	ro := openRO(t, dir)
	if ro.FirstIndex() != 1 || ro.LastIndex() != 40 {
		t.Fatalf("read-only: FirstIndex %d LastIndex %d", ro.FirstIndex(), ro.LastIndex())
	}
	checkEntries(t, replayAll(t, ro, 0), want)
	checkEntries(t, replayAll(t, ro, 33), want[32:])
	for _, e := range want {
		got, err := ro.Read(e.index)
		if err != nil {
			t.Fatalf("read-only Read(%d): %v", e.index, err)
		}
		fromWriter, _ := w.Read(e.index)
		if string(got) != string(fromWriter) {
			t.Fatalf("read-only Read(%d) differs from the writer's", e.index)
		}
	}
	for _, i := range []uint64{0, 41} {
		if _, err := ro.Read(i); !errors.Is(err, ErrNotFound) {
			t.Errorf("read-only Read(%d): %v, want ErrNotFound", i, err)
		}
	}
	writes := map[string]error{}
	_, writes["Append"] = ro.Append(enqueue(1, 1))
	_, writes["Submit"] = ro.Submit(enqueue(1, 1))
	_, writes["TruncateFront"] = ro.TruncateFront(10)
	for name, err := range writes {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only %s: %v, want ErrReadOnly", name, err)
		}
	}
	if err := ro.Recover(); err != nil {
		t.Errorf("read-only Recover: %v, want nil (nothing to do)", err)
	}
	if ro.Repaired() != nil {
		t.Errorf("read-only Repaired: %+v", ro.Repaired())
	}
	if hashDir(t, dir) != before {
		t.Fatal("read-only open and reads changed the directory")
	}

	// The writer goes on (across segment boundaries); the reader sees it
	// after Refresh.
	want = append(want, appendJobs(t, w, 41, 101, 100)...)
	if ro.LastIndex() != 40 {
		t.Fatalf("reader's LastIndex moved to %d without Refresh", ro.LastIndex())
	}
	if err := ro.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ro.LastIndex() != 100 {
		t.Fatalf("after Refresh LastIndex %d, want 100", ro.LastIndex())
	}
	checkEntries(t, replayAll(t, ro, 0), want)
	if err := w.Refresh(); err != nil {
		t.Errorf("Refresh on a writer: %v, want nil", err)
	}

	// The writer truncates the front; the reader follows after Refresh.
	first, err := w.TruncateFront(50)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Refresh(); err != nil {
		t.Fatal(err)
	}
	if ro.FirstIndex() != first {
		t.Fatalf("after TruncateFront and Refresh: reader FirstIndex %d, want %d", ro.FirstIndex(), first)
	}
	checkEntries(t, replayAll(t, ro, 0), want[first-1:])

	// A write in progress: half of the next entry's frame at the tail.
	next, err := EncodeEntry(101, enqueue(101, 100))
	if err != nil {
		t.Fatal(err)
	}
	segs := segmentsOf(t, dir)
	appendFile(t, segs[len(segs)-1].path, framed(next)[:len(framed(next))/2])
	before = hashDir(t, dir)
	for _, r := range []*Log{ro, openRO(t, dir)} {
		if err := r.Refresh(); err != nil {
			t.Fatalf("Refresh over a half-written tail: %v", err)
		}
		if r.LastIndex() != 100 {
			t.Fatalf("reader LastIndex %d over a half-written tail, want 100", r.LastIndex())
		}
		n := 0
		if err := r.Iterate(0, func(uint64, []byte) error { n++; return nil }); err != nil {
			t.Fatalf("Iterate over a half-written tail: %v", err)
		}
		if n != int(100-first+1) {
			t.Fatalf("Iterate delivered %d entries, want %d", n, 100-first+1)
		}
		if _, err := r.Read(101); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read(101) of a half-written entry: %v, want ErrNotFound", err)
		}
	}
	if hashDir(t, dir) != before {
		t.Fatal("readers repaired or otherwise changed a half-written tail")
	}
	// The half frame must go before the writer appends again; the test
	// reopens the writer, which repairs it.
	w.Close()
	w = openLog(t, dir, opts)
	if w.Repaired() == nil || w.LastIndex() != 100 {
		t.Fatalf("writer reopen: Repaired %+v LastIndex %d", w.Repaired(), w.LastIndex())
	}

	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ro.Close(); err != nil {
		t.Fatalf("second read-only Close: %v", err)
	}
	if _, err := ro.Read(60); !errors.Is(err, ErrClosed) {
		t.Errorf("read-only Read after Close: %v, want ErrClosed", err)
	}
	if err := ro.Iterate(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("read-only Iterate after Close: %v, want ErrClosed", err)
	}
}

// openRO opens dir read-only and closes it on cleanup.
func openRO(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(dir, withQuiet(&Options{ReadOnly: true}))
	if err != nil {
		t.Fatalf("read-only Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestReadOnlyCorruptTail: for a reader, invalid bytes with a valid entry
// after them are corruption, not a write in progress.
func TestReadOnlyCorruptTail(t *testing.T) {
	t.Parallel()
	dir, seg, fs, _ := lastSegmentLog(t)
	flipBit(t, seg.path, fs[3].end()-1, 0)
	before := hashDir(t, dir)
	l, err := Open(dir, withQuiet(&Options{ReadOnly: true}))
	if err == nil {
		l.Close()
		t.Fatal("read-only Open over mid-segment corruption succeeded")
	}
	checkLocation(t, "read-only Open", err, seg.path, fs[3].off, 4)
	if hashDir(t, dir) != before {
		t.Fatal("read-only Open changed the directory")
	}
}

// TestNotALog: Open refuses directories that are not walq logs, naming why,
// and a directory written by a newer format version.
func TestNotALog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		want    error
		roWant  error
		missing bool
	}{
		{name: "unrelated files", files: map[string]string{"notes.txt": "hello"}, want: ErrNotLog, roWant: ErrNotLog},
		{name: "bare tidwall/wal segments", files: map[string]string{segmentName(1): ""}, want: ErrNotLog, roWant: ErrNotLog},
		{name: "empty directory, read-only", files: map[string]string{}, roWant: ErrNotLog},
		{name: "no directory, read-only", missing: true, roWant: fs.ErrNotExist},
		{name: "unrecognised FORMAT", files: map[string]string{formatName: "sqlite 3\n"}, want: ErrNotLog, roWant: ErrNotLog},
		{name: "newer FORMAT", files: map[string]string{formatName: "walq 9\n"}, want: ErrVersion, roWant: ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tt.missing {
				dir = filepath.Join(dir, "missing")
			}
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.roWant != nil {
				l, err := Open(dir, withQuiet(&Options{ReadOnly: true}))
				if err == nil {
					l.Close()
				}
				if !errors.Is(err, tt.roWant) {
					t.Errorf("read-only Open: %v, want %v", err, tt.roWant)
				}
				if tt.missing {
					if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
						t.Error("read-only Open created the directory")
					}
				}
			}
			if tt.want == nil {
				return
			}
			if tt.want == ErrVersion {
				if _, err := Salvage(dir, true); !errors.Is(err, ErrVersion) {
					t.Errorf("Salvage: %v, want ErrVersion", err)
				}
			}
			names := dirNames(t, dir)
			l, err := Open(dir, withQuiet(nil))
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if tt.want == ErrVersion && !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open of a newer format: %v is not also ErrCorrupt", err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, names) && tt.want == ErrNotLog {
				t.Errorf("BUG: refused Open left files behind in a directory that is not a walq log: %v, was %v", got, names)
			}
		})
	}
}

// TestReadOnlyIterateStopsAtLastIndex: Iterate's doc promises entries "up to
// LastIndex as of the call"; a reader that has not refreshed must not see
// entries beyond its LastIndex (which Read would then call not found).
func TestReadOnlyIterateStopsAtLastIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openLog(t, dir, &Options{Durability: None})
	appendJobs(t, w, 1, 11, 20)
	ro := openRO(t, dir)
	appendJobs(t, w, 11, 21, 20)
	var last uint64
	if err := ro.Iterate(0, func(index uint64, _ []byte) error { last = index; return nil }); err != nil {
		t.Fatal(err)
	}
	if last != ro.LastIndex() {
		t.Errorf("read-only Iterate delivered up to %d, but LastIndex is %d (and Read(%d) is %v)",
			last, ro.LastIndex(), last, errOf(ro.Read(last)))
	}
}

func errOf(_ []byte, err error) error { return err }
