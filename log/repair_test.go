package log

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tornBase writes a small log whose last entry is about 300 bytes, closes
// it and returns its files, what it holds and the last frame's position.
func tornBase(t *testing.T, opts *Options) (files map[string][]byte, want []entry, seg string, last frame) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(opts))
	if err != nil {
		t.Fatal(err)
	}
	want = appendJobs(t, l, 1, 4, 20)
	want = append(want, appendJobs(t, l, 4, 5, 260)...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentsOf(t, dir)
	if tail := segs[len(segs)-1]; len(segs) > 1 && len(readFile(t, tail.path)) == 0 {
		// The last entry filled its segment and tidwall/wal started an
		// empty one. Drop it, as a crash between the write and the
		// cycle would, so that the torn entry is in the last segment.
		if err := os.Remove(tail.path); err != nil {
			t.Fatal(err)
		}
		segs = segs[:len(segs)-1]
	}
	seg = filepath.Base(segs[len(segs)-1].path)
	fs := framesOf(t, segs[len(segs)-1].path)
	last = fs[len(fs)-1]
	if n := last.end() - last.off; n < 250 || n > 400 {
		t.Fatalf("last frame is %d bytes, want about 300", n)
	}
	return readFiles(t, dir), want, seg, last
}

// TestTornTailEveryOffset cuts the last entry's frame at every byte offset,
// as a crash in the middle of its write would: the log opens, the partial
// entry is gone and saved in a broken-* file, and the log takes new appends
// and replays everything. This is etcd's corruption-test shape: corrupt,
// assert, repair, reopen, append, read all back.
func TestTornTailEveryOffset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		// The last entry shares its segment with the others...
		{"segment=shared", Options{}},
		// ...or is the first entry of the last segment, which a cut at
		// its start leaves empty.
		{"segment=own", Options{SegmentSize: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.Durability = None // keeps 600 reopens fast; repair itself always fsyncs
			files, want, seg, last := tornBase(t, &opts)
			full := files[seg]
			if own := last.off == 0; own != (opts.SegmentSize != 0) {
				t.Fatalf("last entry at offset %d of its segment: test setup is off", last.off)
			}
			for cut := last.off; cut <= last.end(); cut++ {
				cleanEnd, keep := last.off, want[:len(want)-1]
				if cut == last.end() { // nothing torn
					cleanEnd, keep = cut, want
				}
				t.Run(fmt.Sprintf("cut=%d", cut), func(t *testing.T) {
					t.Parallel()
					checkTornTail(t, files, seg, full[:cut], cleanEnd, &opts, keep)
				})
			}
		})
	}
}

// checkTornTail writes files with segment seg replaced by content, opens the
// log and checks that it cut the tail at cleanEnd (nothing to cut if content
// ends there), that keep is what remains, and that the log works afterwards.
func checkTornTail(t *testing.T, files map[string][]byte, seg string, content []byte, cleanEnd int64, opts *Options, keep []entry) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	segPath := filepath.Join(dir, seg)
	if err := os.WriteFile(segPath, content, 0o644); err != nil {
		t.Fatal(err)
	}
	cut := int64(len(content))
	l := openLog(t, dir, opts)
	rep := l.Repaired()
	switch {
	case cut == cleanEnd:
		if rep != nil {
			t.Fatalf("a segment that ends on an entry boundary was repaired: %+v", rep)
		}
	case rep == nil:
		t.Fatalf("torn tail of %d bytes not reported by Repaired()", cut-cleanEnd)
	default:
		if rep.Segment != segPath || rep.Offset != cleanEnd || rep.Bytes != cut-cleanEnd || rep.Reason == "" {
			t.Fatalf("Repaired() = %+v, want segment %s offset %d bytes %d", rep, segPath, cleanEnd, cut-cleanEnd)
		}
		if wantSaved := filepath.Join(dir, fmt.Sprintf("broken-%s-%d", seg, cleanEnd)); rep.Saved != wantSaved {
			t.Fatalf("Saved = %s, want %s", rep.Saved, wantSaved)
		}
		if saved := readFile(t, rep.Saved); !bytes.Equal(saved, content[cleanEnd:]) {
			t.Fatalf("%s holds %d bytes, not the %d bytes cut", rep.Saved, len(saved), cut-cleanEnd)
		}
		if st, err := os.Stat(segPath); err != nil || st.Size() != cleanEnd {
			t.Fatalf("segment not cut to %d: %v %v", cleanEnd, st.Size(), err)
		}
	}
	if l.LastIndex() != keep[len(keep)-1].index {
		t.Fatalf("LastIndex %d, want %d", l.LastIndex(), keep[len(keep)-1].index)
	}
	next := keep[len(keep)-1].index + 1
	more := appendJobs(t, l, 1000, 1002, 30)
	if more[0].index != next {
		t.Fatalf("first append after repair got index %d, want %d", more[0].index, next)
	}
	all := append(slices.Clone(keep), more...)
	checkEntries(t, replayAll(t, l, 0), all)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	if rep := l.Repaired(); rep != nil {
		t.Fatalf("second open repaired again: %+v", rep)
	}
	checkEntries(t, replayAll(t, l, 0), all)
}

// TestTornTailGarbage: bytes after the last entry that are not a whole valid
// entry (zeros from a preallocated or partly flushed block, garbage, a whole
// frame with a bad checksum, the start of a real entry) are cut at Open.
func TestTornTailGarbage(t *testing.T) {
	t.Parallel()
	opts := &Options{Durability: None}
	files, want, seg, last := tornBase(t, opts)
	full := files[seg]
	nextEntry, err := EncodeEntry(99, enqueue(5, 100)) // wrong index: never valid here
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(framed(nextEntry))
	bad[len(bad)-1] ^= 1
	valid5, _ := EncodeEntry(uint64(len(want)+1), enqueue(5, 100))
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 100)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		tail []byte
	}{
		{"100 zero bytes", make([]byte, 100)},
		{"one zero byte", []byte{0}},
		{"4096 zero bytes", make([]byte, 4096)},
		{"random garbage", garbage},
		{"huge length", bytes.Repeat([]byte{0xff}, 12)},
		{"length over MaxEntrySize", binaryUvarint(100 << 20)},
		{"whole frame, bad checksum", bad},
		{"whole frame, wrong index", framed(nextEntry)},
		{"half of the next entry", framed(valid5)[:60]},
		{"next entry then zeros", append(framed(valid5)[:len(framed(valid5))-1], make([]byte, 10)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			content := append(slices.Clone(full), tt.tail...)
			checkTornTail(t, files, seg, content, last.end(), opts, want)
		})
	}
}

func binaryUvarint(x uint64) []byte {
	var b []byte
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// TestTornTailLogged: a repair is reported through the logger, with where
// and how much.
func TestTornTailLogged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openLog(t, dir, nil)
	appendJobs(t, l, 1, 3, 10)
	l.Close()
	segs := segmentsOf(t, dir)
	appendFile(t, segs[0].path, []byte{0x20, 1, 2, 3})
	var buf syncBuffer
	l = openLog(t, dir, &Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if l.Repaired() == nil {
		t.Fatal("no repair")
	}
	out := buf.String()
	for _, want := range []string{"repaired torn log tail", "bytes=4", "offset=", segs[0].path} {
		if !strings.Contains(out, want) {
			t.Errorf("log output %q lacks %q", out, want)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// manySegments writes n entries of about 100 bytes into 1 KiB segments and
// closes the log.
func manySegments(t *testing.T, dir string, n uint64) []entry {
	t.Helper()
	l, err := Open(dir, withQuiet(&Options{SegmentSize: 1024, Durability: None}))
	if err != nil {
		t.Fatal(err)
	}
	want := appendJobs(t, l, 1, n+1, 80)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if segs := segmentsOf(t, dir); len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	return want
}

// TestCorruptOldSegment flips a bit in an entry of a segment before the
// tail. Open succeeds (only the tail is checked), but reading reports the
// exact location; Salvage with dryRun changes nothing, and without it keeps
// exactly the prefix before the damage; the log then works again.
func TestCorruptOldSegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		seg   int // which segment (0 = first)
		entry int // which entry of it
		at    func(f frame) int64
	}{
		{"crc byte", 2, 1, func(f frame) int64 { return f.end() - int64(len(f.data)) }},
		{"version byte", 2, 1, func(f frame) int64 { return f.end() - int64(len(f.data)) + 4 }},
		{"last byte", 2, 1, func(f frame) int64 { return f.end() - 1 }},
		{"first entry of a segment", 3, 0, func(f frame) int64 { return f.end() - 10 }},
		{"last entry of a segment", 1, -1, func(f frame) int64 { return f.end() - 20 }},
		{"first segment", 0, 2, func(f frame) int64 { return f.end() - 30 }},
	}
	const n = 60
	opts := &Options{SegmentSize: 1024}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			want := manySegments(t, dir, n)
			segs := segmentsOf(t, dir)
			seg := segs[tt.seg]
			fs := framesOf(t, seg.path)
			k := tt.entry
			if k < 0 {
				k += len(fs)
			}
			f := fs[k]
			badIndex := seg.first + uint64(k)
			flipBit(t, seg.path, tt.at(f), 3)

			l := openLog(t, dir, opts)
			if l.LastIndex() != n || l.Repaired() != nil {
				t.Fatalf("Open: LastIndex %d, Repaired %+v", l.LastIndex(), l.Repaired())
			}
			var seen []uint64
			err := l.Replay(0, func(index uint64, _ int, _ *Record) error {
				seen = append(seen, index)
				return nil
			})
			checkLocation(t, "Replay", err, seg.path, f.off, badIndex)
			if len(seen) != int(badIndex-1) || (len(seen) > 0 && seen[len(seen)-1] != badIndex-1) {
				t.Fatalf("Replay delivered %d entries before the corruption, want %d", len(seen), badIndex-1)
			}
			err = l.Iterate(0, func(uint64, []byte) error { return nil })
			checkLocation(t, "Iterate", err, seg.path, f.off, badIndex)
			_, err = l.Read(badIndex)
			if ce := mustCorrupt(t, err); ce.Index != badIndex || ce.Segment != seg.path {
				t.Fatalf("Read(%d): %v", badIndex, err)
			}
			if badIndex > 1 {
				if _, err := l.Read(badIndex - 1); err != nil {
					t.Fatalf("Read(%d) before the damage: %v", badIndex-1, err)
				}
			}
			if _, err := Salvage(dir, true); !errors.Is(err, ErrLocked) {
				t.Fatalf("Salvage of an open log: %v, want ErrLocked", err)
			}
			l.Close()

			before := hashDir(t, dir)
			dry, err := Salvage(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			if after := hashDir(t, dir); after != before {
				t.Fatal("Salvage(dryRun) changed the directory")
			}
			var later []string
			droppedBytes := int64(len(readFile(t, seg.path))) - f.off
			for _, s := range segs[tt.seg+1:] {
				later = append(later, s.path)
				droppedBytes += int64(len(readFile(t, s.path)))
			}
			checkSalvageReport(t, dry, seg.path, f.off, badIndex, later, droppedBytes)
			if len(dry.Saved) != 0 {
				t.Errorf("dry run saved %v", dry.Saved)
			}

			segBytes := readFile(t, seg.path)
			laterBytes := map[string][]byte{}
			for _, p := range later {
				laterBytes[p] = readFile(t, p)
			}
			rep, err := Salvage(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			checkSalvageReport(t, rep, seg.path, f.off, badIndex, later, droppedBytes)
			// Nothing was deleted: every cut byte is in a broken-* file.
			cutFile := filepath.Join(dir, fmt.Sprintf("broken-%s-%d", filepath.Base(seg.path), f.off))
			if !slices.Contains(rep.Saved, cutFile) || !bytes.Equal(readFile(t, cutFile), segBytes[f.off:]) {
				t.Errorf("Saved %v: the damaged segment's cut bytes are not in %s", rep.Saved, cutFile)
			}
			for p, b := range laterBytes {
				moved := filepath.Join(dir, "broken-"+filepath.Base(p))
				if !slices.Contains(rep.Saved, moved) || !bytes.Equal(readFile(t, moved), b) {
					t.Errorf("later segment %s not kept as %s", p, moved)
				}
			}
			if files := segmentFirsts(segmentsOf(t, dir)); !slices.Equal(files, segmentFirsts(segs[:tt.seg+1])) {
				t.Errorf("segments after Salvage: %v", files)
			}
			if again, err := Salvage(dir, false); err != nil || again.Corruption != nil {
				t.Fatalf("second Salvage: %+v, %v; want a whole log", again, err)
			}

			l = openLog(t, dir, opts)
			if l.LastIndex() != badIndex-1 {
				t.Fatalf("after Salvage LastIndex %d, want %d", l.LastIndex(), badIndex-1)
			}
			keep := slices.Clone(want[:badIndex-1])
			checkEntries(t, replayAll(t, l, 0), keep)
			keep = append(keep, appendJobs(t, l, 500, 530, 80)...)
			if keep[badIndex-1].index != badIndex {
				t.Fatalf("first append after Salvage got index %d, want %d", keep[badIndex-1].index, badIndex)
			}
			checkEntries(t, replayAll(t, l, 0), keep)
			l.Close()
			l = openLog(t, dir, opts)
			checkEntries(t, replayAll(t, l, 0), keep)
		})
	}
}

func checkLocation(t *testing.T, op string, err error, seg string, off int64, index uint64) {
	t.Helper()
	ce := mustCorrupt(t, err)
	if ce.Segment != seg || ce.Offset != off || ce.Index != index {
		t.Fatalf("%s: corruption at segment %s offset %d index %d, want %s offset %d index %d (%v)",
			op, ce.Segment, ce.Offset, ce.Index, seg, off, index, err)
	}
}

func checkSalvageReport(t *testing.T, rep *SalvageReport, seg string, off int64, index uint64, later []string, dropped int64) {
	t.Helper()
	if rep.Corruption == nil {
		t.Fatal("Salvage found no corruption")
	}
	c := rep.Corruption
	if c.Segment != seg || c.Offset != off || c.Index != index {
		t.Errorf("Salvage corruption at %s offset %d index %d, want %s %d %d", c.Segment, c.Offset, c.Index, seg, off, index)
	}
	if rep.KeptLast != index-1 {
		t.Errorf("KeptLast %d, want %d", rep.KeptLast, index-1)
	}
	if !slices.Equal(rep.DroppedSegments, later) {
		t.Errorf("DroppedSegments %v, want %v", rep.DroppedSegments, later)
	}
	if rep.DroppedBytes != dropped {
		t.Errorf("DroppedBytes %d, want %d", rep.DroppedBytes, dropped)
	}
}

// TestMissingSegment: a segment file that vanished from the middle of the
// log is a gap in the indexes, reported as corruption and salvaged as such.
func TestMissingSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := manySegments(t, dir, 60)
	segs := segmentsOf(t, dir)
	if err := os.Remove(segs[2].path); err != nil {
		t.Fatal(err)
	}
	opts := &Options{SegmentSize: 1024}
	l := openLog(t, dir, opts)
	err := l.Replay(0, func(uint64, int, *Record) error { return nil })
	checkLocation(t, "Replay", err, segs[1].path, int64(len(readFile(t, segs[1].path))), segs[2].first)
	l.Close()
	rep, err := Salvage(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corruption == nil || rep.KeptLast != segs[2].first-1 {
		t.Fatalf("Salvage: %+v", rep)
	}
	l = openLog(t, dir, opts)
	checkEntries(t, replayAll(t, l, 0), want[:segs[2].first-1])
}

// TestSalvageWholeLog: Salvage of a healthy log reports nothing and changes
// nothing.
func TestSalvageWholeLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	manySegments(t, dir, 60)
	before := hashDir(t, dir)
	for _, dry := range []bool{true, false} {
		rep, err := Salvage(dir, dry)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Corruption != nil || rep.KeptLast != 60 || rep.DroppedBytes != 0 || len(rep.Saved) != 0 {
			t.Fatalf("Salvage(dryRun=%v) of a whole log: %+v", dry, rep)
		}
	}
	if hashDir(t, dir) != before {
		t.Fatal("Salvage of a whole log changed the directory")
	}
	if _, err := Salvage(t.TempDir(), true); !errors.Is(err, ErrNotLog) {
		t.Fatalf("Salvage of an empty directory: %v, want ErrNotLog", err)
	}
}

// lastSegmentLog writes 10 entries of about 120 bytes into one segment and
// returns the directory, the segment's frames and the entries.
func lastSegmentLog(t *testing.T) (string, segment, []frame, []entry) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(&Options{Durability: None}))
	if err != nil {
		t.Fatal(err)
	}
	want := appendJobs(t, l, 1, 11, 100)
	l.Close()
	segs := segmentsOf(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	return dir, segs[0], framesOf(t, segs[0].path), want
}

// TestCorruptMiddleOfLastSegment: damage to an entry of the last segment
// that valid entries follow is not a torn write. Open must fail with its
// location rather than cut acknowledged entries, and change nothing on
// disk; Salvage is the way to keep the prefix.
func TestCorruptMiddleOfLastSegment(t *testing.T) {
	t.Parallel()
	dir, seg, fs, want := lastSegmentLog(t)
	files := readFiles(t, dir)
	f := fs[4] // entry 5 of 10
	lenBytes := int64(len(framed(f.data)) - len(f.data))
	for pos := f.off + lenBytes; pos < f.end(); pos++ {
		t.Run(fmt.Sprintf("byte=%d", pos-f.off), func(t *testing.T) {
			t.Parallel()
			d := t.TempDir()
			writeFiles(t, d, files)
			path := filepath.Join(d, filepath.Base(seg.path))
			flipBit(t, path, pos, uint(pos%8))
			checkOpenRefuses(t, d, path, f.off, 5)
			if _, err := Salvage(d, false); err != nil {
				t.Fatal(err)
			}
			l := openLog(t, d, nil)
			checkEntries(t, replayAll(t, l, 0), want[:4])
		})
	}
}

// checkOpenRefuses asserts that Open fails with corruption at (path, off,
// index) and changes no byte of dir.
func checkOpenRefuses(t *testing.T, dir, path string, off int64, index uint64) {
	t.Helper()
	before := hashDir(t, dir)
	l, err := Open(dir, withQuiet(nil))
	if err == nil {
		defer l.Close()
		t.Fatalf("BUG: Open succeeded over corruption followed by valid entries; LastIndex %d, Repaired %+v",
			l.LastIndex(), l.Repaired())
	}
	checkLocation(t, "Open", err, path, off, index)
	if hashDir(t, dir) != before {
		t.Fatalf("failed Open changed the directory: %v", dirNames(t, dir))
	}
	// The lock was released.
	if _, err := Salvage(dir, true); err != nil {
		t.Fatalf("Salvage after failed Open: %v", err)
	}
}

// TestCorruptLengthInLastSegment flips each bit of the length prefix of an
// entry in the middle of the last segment. Valid, acknowledged entries
// follow it, so (as in TestCorruptMiddleOfLastSegment) this is corruption,
// not a torn tail: Open must not silently cut entries 5..10.
func TestCorruptLengthInLastSegment(t *testing.T) {
	t.Parallel()
	dir, seg, fs, want := lastSegmentLog(t)
	files := readFiles(t, dir)
	f := fs[4]
	lenBytes := len(framed(f.data)) - len(f.data)
	for pos := range lenBytes {
		for bit := range uint(8) {
			t.Run(fmt.Sprintf("byte=%d/bit=%d", pos, bit), func(t *testing.T) {
				t.Parallel()
				d := t.TempDir()
				writeFiles(t, d, files)
				path := filepath.Join(d, filepath.Base(seg.path))
				flipBit(t, path, f.off+int64(pos), bit)
				l, err := Open(d, withQuiet(nil))
				if err != nil {
					checkLocation(t, "Open", err, path, f.off, 5)
					return
				}
				defer l.Close()
				if l.LastIndex() != uint64(len(want)) {
					t.Errorf("BUG: Open cut acknowledged entries 5..10 as a torn tail: LastIndex %d, Repaired %+v",
						l.LastIndex(), l.Repaired())
				}
			})
		}
	}
}

// TestMaxEntrySizeLowered: reopening a log with a smaller MaxEntrySize than
// the one its entries were written with must not cut those entries from the
// last segment as if they were a torn tail.
func TestMaxEntrySizeLowered(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := appendJobs(t, l, 1, 4, 100)
	want = append(want, appendJobs(t, l, 4, 6, 2000)...)
	l.Close()
	l, err = Open(dir, withQuiet(&Options{MaxEntrySize: 1024}))
	if err != nil {
		return // refusing to open is acceptable; cutting is not
	}
	defer l.Close()
	if rep := l.Repaired(); rep != nil || l.LastIndex() != 5 {
		t.Fatalf("BUG: opening with MaxEntrySize 1024 cut acknowledged entries: LastIndex %d, Repaired %+v", l.LastIndex(), rep)
	}
	checkEntries(t, replayAll(t, l, 0), want)
}

// TestShortOldSegment: an old segment that lost whole entries at its end (a
// filesystem that lost a size update) must be reported as corruption by
// every read path, never crash the process.
func TestShortOldSegment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, fs []frame)
	}{
		{"last entry missing", func(t *testing.T, path string, fs []frame) {
			if err := os.Truncate(path, fs[len(fs)-1].off); err != nil {
				t.Fatal(err)
			}
		}},
		{"length prefix flipped", func(t *testing.T, path string, fs []frame) {
			flipBit(t, path, fs[1].off, 6)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			manySegments(t, dir, 60)
			segs := segmentsOf(t, dir)
			seg := segs[2]
			fs := framesOf(t, seg.path)
			lastIdx := seg.first + uint64(len(fs)) - 1
			tt.damage(t, seg.path, fs)
			l := openLog(t, dir, &Options{SegmentSize: 1024})
			if err := l.Iterate(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Iterate: %v, want ErrCorrupt", err)
			}
			for i := seg.first; i <= lastIdx; i++ {
				err := readNoPanic(l, i)
				if err == nil && i == lastIdx && tt.name == "last entry missing" {
					t.Errorf("Read(%d) of a missing entry succeeded", i)
				}
				if err != nil && !errors.Is(err, ErrCorrupt) {
					t.Errorf("Read(%d): %v, want an error matching ErrCorrupt", i, err)
				}
			}
			l.Close()
		})
	}
}

// readNoPanic reads index and turns a panic into an error that says so.
func readNoPanic(l *Log, index uint64) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("BUG: Read(%d) panicked: %v", index, v)
		}
	}()
	_, err = l.Read(index)
	return err
}

// TestOverlappingSegment: a segment that holds entries past the first index
// of the next segment (a stray file, or one left by a bad copy) makes two
// segments claim the same indexes. Neither can be trusted, so reading
// reports corruption at the first doubly-claimed entry of the older segment,
// even when the writer's view of the log ends before it, and Salvage keeps
// the older segment as the prefix and moves the newer one aside.
func TestOverlappingSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := &Options{SegmentSize: 1 << 20}
	l := openLog(t, dir, opts)
	want := appendJobs(t, l, 1, 5, 32)
	l.Close()
	segs := segmentsOf(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	stray := filepath.Join(dir, segmentName(3))
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ce := range iterateBoth(t, dir, opts) {
		if ce.Segment != segs[0].path || ce.Index != 3 {
			t.Errorf("corruption at %s index %d, want %s index 3", ce.Segment, ce.Index, segs[0].path)
		}
	}
	rep, err := Salvage(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corruption == nil || rep.KeptLast != uint64(len(want)) || !slices.Equal(rep.DroppedSegments, []string{stray}) {
		t.Fatalf("Salvage: %+v", rep)
	}
	// Salvage names the same corruption as reading does.
	if ce := rep.Corruption; ce.Segment != segs[0].path || ce.Index != 3 {
		t.Errorf("Salvage reports corruption at %s index %d, want %s index 3 as reading does", ce.Segment, ce.Index, segs[0].path)
	}
	l = openLog(t, dir, opts)
	checkEntries(t, replayAll(t, l, 0), want)
}

// TestGarbageEndsOldSegment: bad bytes after the last entry of a segment
// that is not the tail are damage, not a torn write (tidwall/wal fsyncs a
// segment before it starts the next), even when the tail is empty so that
// the bad entry lies past LastIndex. Found by FuzzOpenDir: Open used to
// accept such a directory and, once new entries made LastIndex reach the
// bad one, the next Open refused it.
func TestGarbageEndsOldSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := &Options{SegmentSize: 1 << 20}
	l := openLog(t, dir, opts)
	want := appendJobs(t, l, 1, 3, 32)
	l.Close()
	segs := segmentsOf(t, dir)
	appendFile(t, segs[0].path, []byte{0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	next := uint64(len(want)) + 1
	if err := os.WriteFile(filepath.Join(dir, segmentName(next)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	size := int64(len(readFile(t, segs[0].path)))
	for _, ce := range iterateBoth(t, dir, opts) {
		if ce.Segment != segs[0].path || ce.Index != next || ce.Offset != size-12 {
			t.Errorf("corruption at %s offset %d index %d, want %s offset %d index %d",
				ce.Segment, ce.Offset, ce.Index, segs[0].path, size-12, next)
		}
	}
	if _, err := Salvage(dir, false); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	checkEntries(t, replayAll(t, l, 0), want)
}

// iterateBoth opens dir writable and then read-only, iterates the whole log
// each time, and returns the two corruption errors it must report.
func iterateBoth(t *testing.T, dir string, opts *Options) []*CorruptError {
	t.Helper()
	var out []*CorruptError
	for _, ro := range []bool{false, true} {
		o := *opts
		o.ReadOnly = ro
		l, err := Open(dir, withQuiet(&o))
		if err != nil {
			t.Fatalf("Open (read-only %v): %v", ro, err)
		}
		out = append(out, mustCorrupt(t, l.Iterate(0, func(uint64, []byte) error { return nil })))
		l.Close()
	}
	return out
}
