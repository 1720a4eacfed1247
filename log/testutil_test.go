package log

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// quiet is the logger tests use unless they look at what is logged.
var quiet = slog.New(slog.DiscardHandler)

// withQuiet returns a copy of o (nil allowed) that logs nowhere unless it
// names a logger.
func withQuiet(o *Options) *Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Logger == nil {
		c.Logger = quiet
	}
	return &c
}

// openLog opens the log in dir and, on cleanup, checks its invariants (if it
// is still open and healthy) and closes it, in the spirit of bbolt's
// btesting: every test that uses it also tests the log's consistency.
func openLog(t testing.TB, dir string, o *Options) *Log {
	t.Helper()
	l, err := Open(dir, withQuiet(o))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if !isClosed(l) && l.Failed() == nil && l.w != nil {
			checkLog(t, l)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// isClosed reports whether Close has begun on l.
func isClosed(l *Log) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed || l.closing
}

// checkLog verifies a writable log: the in-memory segment list mirrors the
// files, and every entry from FirstIndex to LastIndex is present once, in
// order, with a valid checksum and decodable records.
func checkLog(t testing.TB, l *Log) {
	t.Helper()
	segs, err := listSegments(l.Dir())
	if err != nil {
		t.Errorf("invariants: list segments: %v", err)
		return
	}
	if got, want := l.SegmentFirsts(), segmentFirsts(segs); !slices.Equal(got, want) {
		t.Errorf("invariants: SegmentFirsts() = %v, files on disk %v", got, want)
	}
	first, last := l.FirstIndex(), l.LastIndex()
	next := first
	err = l.Iterate(0, func(index uint64, data []byte) error {
		if index != next {
			return fmt.Errorf("entry %d, want %d", index, next)
		}
		next++
		return DecodeEntry(index, data, func(int, *Record) error { return nil })
	})
	if err != nil {
		t.Errorf("invariants: Iterate: %v", err)
	}
	if next != last+1 {
		t.Errorf("invariants: Iterate ended before %d, LastIndex %d (FirstIndex %d)", next, last, first)
	}
}

func segmentFirsts(segs []segment) []uint64 {
	out := make([]uint64, len(segs))
	for i, s := range segs {
		out[i] = s.first
	}
	return out
}

// payloadFor returns size deterministic bytes that differ from job to job.
func payloadFor(job uint64, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(job*131 + uint64(i)*7 + job>>8)
	}
	return p
}

// enqueue returns a one-record entry enqueuing job with a payload of size
// bytes.
func enqueue(job uint64, size int) []Record {
	return []Record{{Kind: KindEnqueued, Job: job, At: int64(job) * 1000, Queue: "default", Payload: payloadFor(job, size)}}
}

// cloneRecord copies r so that it outlives the callback that received it.
// An empty History becomes nil (the decoder reuses History's array).
func cloneRecord(r *Record) Record {
	c := *r
	c.Payload = bytes.Clone(r.Payload)
	c.Result = bytes.Clone(r.Result)
	c.History = slices.Clone(r.History)
	if len(c.History) == 0 {
		c.History = nil
	}
	return c
}

// sameRecords reports whether two record lists are equal field by field,
// PayloadAt included; a nil and an empty byte slice differ.
func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !reflect.DeepEqual(cloneRecord(&a[i]), cloneRecord(&b[i])) {
			return false
		}
	}
	return true
}

// entry is one log entry as replayed: its index and records.
type entry struct {
	index uint64
	recs  []Record
}

// replayAll replays l from index from and groups the records by entry,
// checking that slots count up from 0 within each entry.
func replayAll(t testing.TB, l *Log, from uint64) []entry {
	t.Helper()
	var out []entry
	err := l.Replay(from, func(index uint64, slot int, r *Record) error {
		if len(out) == 0 || out[len(out)-1].index != index {
			out = append(out, entry{index: index})
		}
		e := &out[len(out)-1]
		if slot != len(e.recs) {
			return fmt.Errorf("entry %d: slot %d, want %d", index, slot, len(e.recs))
		}
		e.recs = append(e.recs, cloneRecord(r))
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", from, err)
	}
	return out
}

// checkEntries compares replayed entries with the expected ones.
func checkEntries(t testing.TB, got, want []entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("replayed %d entries (%s), want %d (%s)", len(got), span(got), len(want), span(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].index != want[i].index {
			t.Errorf("entry #%d has index %d, want %d", i, got[i].index, want[i].index)
			return
		}
		if !sameRecords(got[i].recs, want[i].recs) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", got[i].index, got[i].recs, want[i].recs)
			return
		}
	}
}

func span(es []entry) string {
	if len(es) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", es[0].index, es[len(es)-1].index)
}

// appendEntries appends each record list as one entry and returns what the
// log should replay. The lists keep the PayloadAt that Append set.
func appendEntries(t testing.TB, l *Log, lists ...[]Record) []entry {
	t.Helper()
	out := make([]entry, 0, len(lists))
	for _, recs := range lists {
		idx, err := l.Append(recs)
		if err != nil {
			t.Fatalf("Append(job %d): %v", recs[0].Job, err)
		}
		out = append(out, entry{index: idx, recs: recs})
	}
	return out
}

// appendJobs appends one enqueue entry for each job in [from, to) with a
// payload of size bytes.
func appendJobs(t testing.TB, l *Log, from, to uint64, size int) []entry {
	t.Helper()
	lists := make([][]Record, 0, to-from)
	for j := from; j < to; j++ {
		lists = append(lists, enqueue(j, size))
	}
	return appendEntries(t, l, lists...)
}

// hashDir hashes the names and contents of every file in dir, so that a
// test can assert that an operation changed no byte.
func hashDir(t testing.TB, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// readFiles reads every file of dir into memory.
func readFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range dirNames(t, dir) {
		files[name] = readFile(t, filepath.Join(dir, name))
	}
	return files
}

// writeFiles writes files into dir.
func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipBit flips one bit of the file at path.
func flipBit(t testing.TB, path string, off int64, bit uint) {
	t.Helper()
	b := readFile(t, path)
	b[off] ^= 1 << bit
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// segmentsOf lists the segment files of dir.
func segmentsOf(t testing.TB, dir string) []segment {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// framesOf parses every frame of a segment file, which must be whole.
func framesOf(t testing.TB, path string) []frame {
	t.Helper()
	buf := readFile(t, path)
	var fs []frame
	for off := int64(0); off < int64(len(buf)); {
		f, ok, err := nextFrame(buf, off, maxEntryDefault)
		if err != nil || !ok {
			t.Fatalf("%s: no whole frame at offset %d (ok=%v): %v", path, off, ok, err)
		}
		fs = append(fs, f)
		off = f.end()
	}
	return fs
}

// framed returns data framed as tidwall/wal frames it: uvarint length, data.
func framed(data []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(data))), data...)
}

// seal builds an entry at index from a version byte and a raw msgpack body,
// with a correct checksum, so that tests can hand the decoder bytes that
// pass the checksum but are otherwise hostile.
func seal(index uint64, version byte, body []byte) []byte {
	data := append([]byte{0, 0, 0, 0, version}, body...)
	binary.LittleEndian.PutUint32(data, entryCRC(crc32.Checksum(data[4:], castagnoli), index))
	return data
}

// mustCorrupt asserts that err is a *CorruptError matching ErrCorrupt and
// returns it.
func mustCorrupt(t testing.TB, err error) *CorruptError {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want *CorruptError")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("errors.Is(%v, ErrCorrupt) = false", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(%v, *CorruptError) = false", err)
	}
	return ce
}
