package wal

import (
	"runtime"
	"testing"
)

// Filling a segment with large batches copies each byte into the tail's
// buffer once: the buffer is allocated at the segment's size the first time
// it grows, not regrown (and copied) every batch or two as append did,
// which allocated about five times the segment's size.
func TestTailBufferGrowsOncePerSegment(t *testing.T) {
	const segSize = 1 << 20
	l, err := Open(t.TempDir(), &Options{NoSync: true, SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	entry := make([]byte, 16<<10) // two make a large batch: 32 KiB of 1 MiB
	var b Batch
	write := func(first uint64, n int) {
		for i := range n {
			b.Write(first+uint64(i), entry)
		}
		if err := l.WriteBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 1) // warm up: the batch's own buffer, the first growth
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	next := uint64(2)
	for range 30 { // 30 × 2 entries × 16 KiB: most of one segment
		write(next, 2)
		next += 2
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > segSize/2 {
		t.Fatalf("writing %d KiB into one segment allocated %d KiB, want the buffer grown once (before it)", 30*2*16, got>>10)
	}
}

func TestGrowFor(t *testing.T) {
	for _, tc := range []struct {
		name             string
		len, cap, n, seg int
		wantCap          int
	}{
		{"room left", 10, 100, 90, 1000, 100},
		{"a small batch is left to append", 10, 10, 14, 1000, 10},
		{"first growth takes the segment's size", 0, 0, 16, 1000, 1125},
		{"growth within the segment", 600, 700, 200, 1000, 1400},
		{"a batch past the segment", 900, 1125, 5000, 1000, 5900},
		{"doubling past the segment", 2000, 2000, 100, 1000, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.len, tc.cap)
			for i := range buf {
				buf[i] = byte(i)
			}
			got := growFor(buf, tc.n, tc.seg)
			if len(got) != tc.len || cap(got) != tc.wantCap {
				t.Fatalf("growFor(len %d cap %d, %d, %d) = len %d cap %d, want len %d cap %d",
					tc.len, tc.cap, tc.n, tc.seg, len(got), cap(got), tc.len, tc.wantCap)
			}
			for i := range got {
				if got[i] != byte(i) {
					t.Fatalf("byte %d = %d after growFor, want %d", i, got[i], byte(i))
				}
			}
		})
	}
}
