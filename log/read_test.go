package log

import (
	"runtime"
	"testing"
)

// TestReadCacheDoesNotPinTail checks that Read's cache of the last verified
// entry does not keep tidwall/wal's old tail buffer alive once an append
// has grown the tail into a new buffer: the old one was a whole segment of
// memory held next to the new one (W6 measured it after open + first lease).
func TestReadCacheDoesNotPinTail(t *testing.T) {
	dir := t.TempDir()
	const entries, size = 32, 128 << 10 // a 4 MiB tail
	o := &Options{SegmentSize: 64 << 20, Durability: None}
	l := openLog(t, dir, o)
	appendJobs(t, l, 1, entries+1, size)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, tidwall/wal holds the tail as the buffer it read it into.
	l = openLog(t, dir, o)
	readLast := func() {
		if _, err := l.Read(l.LastIndex()); err != nil {
			t.Fatal(err)
		}
	}
	readLast()
	before := heapAlloc()
	// The append outgrows the buffer: tidwall/wal copies it into a bigger
	// one (about 1.25 times) and drops the old one.
	appendJobs(t, l, entries+1, entries+2, 16)
	grew := heapAlloc() - before
	tail := int64(entries * size)
	if grew > tail/2 {
		t.Fatalf("the heap grew by %d bytes over an append to a %d-byte tail: the old tail buffer is still reachable", grew, tail)
	}
	// The cache still serves a second read of the same entry, and does
	// not serve it once the entry is somewhere else.
	data, err := l.Read(entries)
	if err != nil {
		t.Fatal(err)
	}
	if !l.verified.holds(entries, data) {
		t.Fatal("the entry just read is not remembered as verified")
	}
	if l.verified.holds(entries, append([]byte(nil), data...)) {
		t.Fatal("a copy of the entry, at another address, counts as verified")
	}
	if l.verified.holds(entries-1, data) {
		t.Fatal("the entry counts as verified under another index")
	}
}

// heapAlloc returns the bytes of live heap after a full collection.
func heapAlloc() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
