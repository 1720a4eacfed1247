package log

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenEmpty(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "log")
	l := openLog(t, dir, nil)
	if f, last := l.FirstIndex(), l.LastIndex(); f != 1 || last != 0 {
		t.Fatalf("new log: FirstIndex %d LastIndex %d, want 1 and 0", f, last)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{segmentName(1), formatName, lockName}) {
		t.Fatalf("new log directory holds %v", got)
	}
	if b := readFile(t, filepath.Join(dir, formatName)); string(b) != "walq 1\n" {
		t.Fatalf("FORMAT = %q", b)
	}
	if es := replayAll(t, l, 0); len(es) != 0 {
		t.Fatalf("empty log replayed %d entries", len(es))
	}
	if _, err := l.Read(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read(1) on an empty log: %v, want ErrNotFound", err)
	}
	if l.Repaired() != nil {
		t.Fatalf("Repaired() = %+v on a new log", l.Repaired())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, nil)
	if f, last := l.FirstIndex(), l.LastIndex(); f != 1 || last != 0 {
		t.Fatalf("reopened empty log: FirstIndex %d LastIndex %d", f, last)
	}
}

// TestAppendReplayReopen appends entries of many shapes, reads them back
// through Read, Iterate and Replay, and again after a reopen.
func TestAppendReplayReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, &Options{SegmentSize: 4096})
	var lists [][]Record
	for _, k := range Kinds() {
		r, _ := sampleRecord(k)
		lists = append(lists, []Record{r})
	}
	var all []Record
	for _, recs := range lists {
		all = append(all, recs[0])
	}
	lists = append(lists, all, enqueue(1, 0), enqueue(2, 5000), enqueue(3, 1))
	want := appendEntries(t, l, lists...)
	for i, e := range want {
		if e.index != uint64(i+1) {
			t.Fatalf("entry %d got index %d", i, e.index)
		}
	}
	if l.Segments() < 2 {
		t.Fatalf("expected several segments, got %d", l.Segments())
	}
	check := func(l *Log) {
		t.Helper()
		checkEntries(t, replayAll(t, l, 0), want)
		checkEntries(t, replayAll(t, l, 5), want[4:])
		checkEntries(t, replayAll(t, l, uint64(len(want))), want[len(want)-1:])
		if es := replayAll(t, l, uint64(len(want)+1)); len(es) != 0 {
			t.Errorf("Replay past the end returned %d entries", len(es))
		}
		for _, e := range want {
			data, err := l.Read(e.index)
			if err != nil {
				t.Fatalf("Read(%d): %v", e.index, err)
			}
			enc, err := EncodeEntry(e.index, slices.Clone(e.recs))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, enc) {
				t.Fatalf("Read(%d) is not the bytes EncodeEntry produces", e.index)
			}
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(openLog(t, dir, &Options{SegmentSize: 4096}))
}

// TestReadStableAcrossAppends: the bytes Read returns stay valid (and
// unchanged) while later appends grow and cycle the segments.
func TestReadStableAcrossAppends(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), &Options{SegmentSize: 2048, Durability: None})
	appendJobs(t, l, 1, 20, 100)
	held := map[uint64][]byte{}
	copies := map[uint64][]byte{}
	for _, i := range []uint64{1, 10, 19} {
		data, err := l.Read(i)
		if err != nil {
			t.Fatal(err)
		}
		held[i], copies[i] = data, bytes.Clone(data)
	}
	appendJobs(t, l, 20, 300, 100)
	for i := uint64(1); i <= 300; i += 7 { // move tidwall/wal's segment cache around
		if _, err := l.Read(i); err != nil {
			t.Fatal(err)
		}
	}
	for i, data := range held {
		if !bytes.Equal(data, copies[i]) {
			t.Errorf("bytes returned by Read(%d) changed after later appends", i)
		}
	}
}

func TestReadErrorsAndClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(nil))
	if err != nil {
		t.Fatal(err)
	}
	appendJobs(t, l, 1, 4, 10)
	for _, i := range []uint64{0, 4, 1 << 62} {
		if _, err := l.Read(i); !errors.Is(err, ErrNotFound) {
			t.Errorf("Read(%d) = %v, want ErrNotFound", i, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
	calls := map[string]error{}
	_, calls["Read"] = l.Read(1)
	_, calls["Append"] = l.Append(enqueue(9, 1))
	_, calls["Submit"] = l.Submit(enqueue(9, 1))
	_, calls["TruncateFront"] = l.TruncateFront(2)
	calls["Iterate"] = l.Iterate(0, func(uint64, []byte) error { return nil })
	calls["Replay"] = l.Replay(0, func(uint64, int, *Record) error { return nil })
	calls["Recover"] = l.Recover()
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	// Close released the lock.
	l2 := openLog(t, dir, nil)
	if l2.LastIndex() != 3 {
		t.Fatalf("reopened LastIndex %d, want 3", l2.LastIndex())
	}
}

// TestConcurrentAppenders: 64 goroutines append 200 entries each. Every
// append gets a distinct index, the indexes are exactly 1..12800, each
// appender's indexes increase, and after a reopen every index holds exactly
// what its appender wrote.
func TestConcurrentAppenders(t *testing.T) {
	t.Parallel()
	const appenders, each = 64, 200
	dir := t.TempDir()
	opts := &Options{SegmentSize: 64 << 10}
	l, err := Open(dir, withQuiet(opts))
	if err != nil {
		t.Fatal(err)
	}
	written := make([][]entry, appenders)
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				job := uint64(g)<<32 | uint64(i)
				recs := enqueue(job, 16+(g*7+i)%200)
				recs[0].Queue = fmt.Sprintf("q%d", g)
				if i%10 == 0 { // some multi-record entries
					recs = append(recs, Record{Kind: KindLeased, Job: job, Attempt: 1})
				}
				idx, err := l.Append(recs)
				if err != nil {
					errs <- fmt.Errorf("appender %d: %w", g, err)
					return
				}
				written[g] = append(written[g], entry{index: idx, recs: recs})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byIndex := make([]entry, appenders*each)
	for g, es := range written {
		for i, e := range es {
			if i > 0 && e.index <= es[i-1].index {
				t.Fatalf("appender %d: index %d after %d", g, e.index, es[i-1].index)
			}
			if e.index < 1 || e.index > appenders*each {
				t.Fatalf("appender %d: index %d out of 1..%d", g, e.index, appenders*each)
			}
			if byIndex[e.index-1].recs != nil {
				t.Fatalf("index %d given to two appends", e.index)
			}
			byIndex[e.index-1] = e
		}
	}
	if l.LastIndex() != appenders*each {
		t.Fatalf("LastIndex %d, want %d", l.LastIndex(), appenders*each)
	}
	checkLog(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	checkEntries(t, replayAll(t, l, 0), byIndex)
}

// TestSubmitPending: Submit assigns consecutive indexes without waiting,
// Wait returns the outcome any number of times in any order, and the
// entries are written in index order.
func TestSubmitPending(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), nil)
	appendJobs(t, l, 1, 3, 8) // indexes 1, 2
	var ps []*Pending
	var want []entry
	for j := uint64(100); j < 150; j++ {
		recs := enqueue(j, int(j%40))
		p, err := l.Submit(recs)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(ps)) + 3; p.Index() != want {
			t.Fatalf("Submit #%d got index %d, want %d", len(ps), p.Index(), want)
		}
		ps = append(ps, p)
		want = append(want, entry{index: p.Index(), recs: recs})
	}
	for i := len(ps) - 1; i >= 0; i-- {
		if err := ps[i].Wait(); err != nil {
			t.Fatalf("Wait(%d): %v", ps[i].Index(), err)
		}
	}
	for _, p := range ps {
		if err := p.Wait(); err != nil {
			t.Fatalf("second Wait(%d): %v", p.Index(), err)
		}
	}
	if l.LastIndex() != 52 {
		t.Fatalf("LastIndex %d, want 52", l.LastIndex())
	}
	checkEntries(t, replayAll(t, l, 3), want)

	for _, recs := range [][]Record{nil, {}} {
		if _, err := l.Submit(recs); err == nil {
			t.Errorf("Submit(%v) of no records succeeded", recs)
		}
		if _, err := l.Append(recs); err == nil {
			t.Errorf("Append(%v) of no records succeeded", recs)
		}
	}
	if l.LastIndex() != 52 {
		t.Fatalf("refused appends moved LastIndex to %d", l.LastIndex())
	}
}

// TestDurabilityModes: every mode keeps everything acknowledged across
// Close and reopen, with concurrent appenders crossing segment boundaries.
func TestDurabilityModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []Durability{Sync, Interval, None} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := &Options{Durability: mode, SyncInterval: time.Millisecond, SegmentSize: 8 << 10}
			l, err := Open(dir, withQuiet(opts))
			if err != nil {
				t.Fatal(err)
			}
			const appenders, each = 8, 40
			want := make([]entry, appenders*each)
			var wg sync.WaitGroup
			for g := range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						recs := enqueue(uint64(g*each+i), 100)
						idx, err := l.Append(recs)
						if err != nil {
							t.Error(err)
							return
						}
						want[idx-1] = entry{index: idx, recs: recs}
					}
				}()
			}
			wg.Wait()
			checkLog(t, l)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			l = openLog(t, dir, opts)
			if l.Repaired() != nil {
				t.Errorf("clean close left a tail to repair: %+v", l.Repaired())
			}
			checkEntries(t, replayAll(t, l, 0), want)
		})
	}
}

func TestDurabilityString(t *testing.T) {
	t.Parallel()
	for d, want := range map[Durability]string{Sync: "sync", Interval: "interval", None: "none", 7: "durability(7)"} {
		if d.String() != want {
			t.Errorf("Durability(%d).String() = %q, want %q", int(d), d.String(), want)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  Options
		field string
	}{
		{"unknown durability", Options{Durability: 3}, "Options.Durability"},
		{"negative durability", Options{Durability: -1}, "Options.Durability"},
		{"negative sync interval", Options{SyncInterval: -time.Second}, "Options.SyncInterval"},
		{"negative segment size", Options{SegmentSize: -1}, "Options.SegmentSize"},
		{"negative max entry size", Options{MaxEntrySize: -1}, "Options.MaxEntrySize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "log")
			for _, ro := range []bool{false, true} {
				o := tt.opts
				o.ReadOnly = ro
				l, err := Open(dir, &o)
				if err == nil {
					l.Close()
					t.Fatalf("Open(%+v) succeeded", o)
				}
				if !strings.Contains(err.Error(), tt.field) {
					t.Errorf("error %q does not name %s", err, tt.field)
				}
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("invalid options still created the directory (%v)", err)
			}
		})
	}
}

// TestOptionsDefaults: Open applies the documented defaults to a copy and
// leaves the caller's struct alone.
func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	mine := &Options{SegmentSize: 12345}
	l := openLog(t, t.TempDir(), mine)
	if *mine != (Options{SegmentSize: 12345}) {
		t.Errorf("Open changed the caller's options to %+v", *mine)
	}
	got := l.opts
	if got.Durability != Sync || got.SyncInterval != 100*time.Millisecond || got.SegmentSize != 12345 ||
		got.MaxEntrySize != 64<<20 || got.Logger == nil {
		t.Errorf("defaults not applied: %+v", got)
	}
	l2, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("Open with nil options: %v", err)
	}
	defer l2.Close()
	if l2.opts.SegmentSize != 1<<20 || l2.opts.Logger == nil {
		t.Errorf("nil options: %+v", l2.opts)
	}
}

func TestAppendTooLarge(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), &Options{MaxEntrySize: 1024})
	want := appendJobs(t, l, 1, 3, 900)
	for _, size := range []int{1100, 1 << 20} {
		if _, err := l.Append(enqueue(99, size)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Append of a %d-byte payload: %v, want ErrTooLarge", size, err)
		}
	}
	if l.Failed() != nil {
		t.Fatalf("a refused entry failed the log: %v", l.Failed())
	}
	want = append(want, appendJobs(t, l, 3, 4, 900)...)
	checkEntries(t, replayAll(t, l, 0), want)
}

// TestAppendInvalidKind: a record the decoder would refuse must be refused
// by Append; otherwise it becomes a durable entry with a valid checksum that
// every later Replay reports as corruption (and that Salvage, which checks
// only checksums, cannot cut).
func TestAppendInvalidKind(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), nil)
	appendJobs(t, l, 1, 3, 10)
	idx, err := l.Append([]Record{{Kind: 0, Job: 3}})
	if err != nil {
		return // refused: good
	}
	err = l.Replay(0, func(uint64, int, *Record) error { return nil })
	if err != nil {
		t.Errorf("BUG: Append accepted a record of kind 0 as entry %d; now Replay fails: %v", idx, err)
		// Keep the cleanup invariant check from repeating the failure.
		l.Close()
	}
}

// TestTruncateFront removes whole segments before an index and keeps the
// rest readable, also after a reopen.
func TestTruncateFront(t *testing.T) {
	t.Parallel()
	const n = 200
	opts := &Options{SegmentSize: 1024, Durability: None}
	tests := []struct {
		name  string
		index func(firsts []uint64) uint64
	}{
		{"first index", func([]uint64) uint64 { return 1 }},
		{"below first", func([]uint64) uint64 { return 0 }},
		{"middle", func([]uint64) uint64 { return n / 2 }},
		{"segment boundary", func(f []uint64) uint64 { return f[len(f)/2] }},
		{"just before boundary", func(f []uint64) uint64 { return f[len(f)/2] - 1 }},
		{"last index", func([]uint64) uint64 { return n }},
		{"past the end", func([]uint64) uint64 { return n + 1000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := openLog(t, dir, opts)
			want := appendJobs(t, l, 1, n+1, 100)
			firsts := l.SegmentFirsts()
			if len(firsts) < 10 {
				t.Fatalf("only %d segments", len(firsts))
			}
			index := tt.index(firsts)
			wantFirst := firsts[0]
			for _, f := range firsts {
				if f <= index {
					wantFirst = f
				}
			}
			got, err := l.TruncateFront(index)
			if err != nil {
				t.Fatal(err)
			}
			if got != wantFirst || l.FirstIndex() != wantFirst {
				t.Fatalf("TruncateFront(%d) = %d, FirstIndex %d; want %d", index, got, l.FirstIndex(), wantFirst)
			}
			if index >= 1 && wantFirst > index {
				t.Fatalf("truncated past %d", index)
			}
			var left []uint64
			for _, f := range firsts {
				if f >= wantFirst {
					left = append(left, f)
				}
			}
			if files := segmentFirsts(segmentsOf(t, dir)); !slices.Equal(files, left) {
				t.Fatalf("segment files %v, want %v", files, left)
			}
			if wantFirst > 1 {
				if _, err := l.Read(wantFirst - 1); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Read(%d) below FirstIndex: %v, want ErrNotFound", wantFirst-1, err)
				}
			}
			kept := want[wantFirst-1:]
			checkEntries(t, replayAll(t, l, 0), kept)
			if again, err := l.TruncateFront(1); err != nil || again != wantFirst {
				t.Fatalf("TruncateFront(1) afterwards = %d, %v; want a no-op at %d", again, err, wantFirst)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, opts)
			if l.FirstIndex() != wantFirst || l.LastIndex() != n {
				t.Fatalf("reopened: FirstIndex %d LastIndex %d, want %d and %d", l.FirstIndex(), l.LastIndex(), wantFirst, n)
			}
			kept = append(kept, appendJobs(t, l, n+1, n+20, 100)...)
			checkEntries(t, replayAll(t, l, 0), kept)
		})
	}
}

// TestSegmentMirror: the log's own list of segments (which it keeps by
// replaying tidwall/wal's rule for starting a segment) matches the files
// tidwall/wal actually creates, in every way of crossing a boundary.
func TestSegmentMirror(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, l *Log)
	}{
		{"small entries", func(t *testing.T, l *Log) { appendJobs(t, l, 1, 400, 50) }},
		{"mixed sizes", func(t *testing.T, l *Log) {
			for j := uint64(1); j < 300; j++ {
				appendJobs(t, l, j, j+1, int(j*37%900))
			}
		}},
		{"entries larger than a segment", func(t *testing.T, l *Log) { appendJobs(t, l, 1, 30, 3000) }},
		{"exact fill", func(t *testing.T, l *Log) {
			// Frames of exactly a quarter segment: every fourth entry
			// brings the tail to exactly SegmentSize.
			for j := uint64(1); j < 50; j++ {
				appendEntries(t, l, sizedEnqueue(t, j, 1024/4))
			}
		}},
		{"group commits", func(t *testing.T, l *Log) {
			for round := range 20 {
				var ps []*Pending
				for j := range 25 {
					p, err := l.Submit(enqueue(uint64(round*100+j), 40+j*9))
					if err != nil {
						t.Fatal(err)
					}
					ps = append(ps, p)
				}
				for _, p := range ps {
					if err := p.Wait(); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		{"concurrent", func(t *testing.T, l *Log) {
			var wg sync.WaitGroup
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 30 {
						if _, err := l.Append(enqueue(uint64(g*100+i), 20+g*13)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := &Options{SegmentSize: 1024, Durability: None}
			l := openLog(t, dir, opts)
			tt.run(t, l)
			checkMirror(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			// Reopen with a smaller segment size: the tail is now over
			// the limit, which starts a new segment before the next write.
			opts.SegmentSize = 300
			l = openLog(t, dir, opts)
			appendJobs(t, l, 10000, 10010, 100)
			checkMirror(t, l)
		})
	}
}

func checkMirror(t *testing.T, l *Log) {
	t.Helper()
	segs := segmentsOf(t, l.Dir())
	if len(segs) < 3 {
		t.Fatalf("only %d segments: the test does not cross boundaries", len(segs))
	}
	if got, want := l.SegmentFirsts(), segmentFirsts(segs); !slices.Equal(got, want) {
		t.Fatalf("SegmentFirsts() = %v\nsegment files   %v", got, want)
	}
	if l.Segments() != len(segs) {
		t.Fatalf("Segments() = %d, %d files", l.Segments(), len(segs))
	}
	var total int64
	for _, s := range segs {
		st, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if n := l.Size(); n != total {
		t.Fatalf("Size() = %d; files hold %d bytes", n, total)
	}
}

// sizedEnqueue returns an enqueue entry for job whose frame on disk is
// exactly frameSize bytes.
func sizedEnqueue(t testing.TB, job uint64, frameSize int) []Record {
	t.Helper()
	for p := 0; p < frameSize; p++ {
		recs := enqueue(job, p)
		data, err := EncodeEntry(1, recs)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(framed(data)); n == frameSize {
			return recs
		} else if n > frameSize {
			break
		}
	}
	t.Fatalf("no payload size gives a %d-byte frame", frameSize)
	return nil
}

// TestIterateDuringTruncateFront: a replay that is under way when the front
// is truncated (here: by its own callback, which is deterministic) must not
// fail because the files it planned to read are gone.
func TestIterateDuringTruncateFront(t *testing.T) {
	t.Parallel()
	l := openLog(t, t.TempDir(), &Options{SegmentSize: 1024, Durability: None})
	appendJobs(t, l, 1, 101, 80)
	var seen []uint64
	err := l.Iterate(0, func(index uint64, _ []byte) error {
		if index == 1 {
			if _, err := l.TruncateFront(60); err != nil {
				return err
			}
		}
		seen = append(seen, index)
		return nil
	})
	if err != nil {
		t.Errorf("BUG: Iterate under way while TruncateFront removed segments: %v", err)
	}
	if len(seen) > 0 && seen[len(seen)-1] != 100 {
		t.Errorf("Iterate stopped at %d", seen[len(seen)-1])
	}
}
