package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Entries of segments before the tail are read with pread(2) from the
// segment file, not through tidwall/wal: its Read loads a whole segment into
// memory (and keeps SegmentCacheSize of them) to return one entry, which
// made a lease's payload read cost a segment of memory. The tail segment is
// in tidwall/wal's memory anyway (its append buffer), so tail reads still go
// through it.

// coldTables is how many segments' entry offsets coldReader keeps.
const coldTables = 2

// coldReader reads entries of non-tail segments. It is guarded by
// Log.readMu.
type coldReader struct {
	tables []*coldTable // most recently used last
	// index and data are the last entry read and verified: reading many
	// payloads out of one batch entry reads and checks it once.
	index uint64
	data  []byte
}

// coldTable holds one segment's open file and the offsets of its frames.
type coldTable struct {
	seg  segment
	f    *os.File
	offs []int64 // offs[i] is the frame offset of entry seg.first+i; one more: the end of the last
}

// coldSegment returns the segment holding index when it is not the tail,
// and the first index of the segment after it. The caller holds readMu, so
// that no truncation runs; one may have removed index since the caller
// checked it, which is ErrNotFound.
func (l *Log) coldSegment(index uint64) (segment, uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.first {
		return segment{}, 0, false, fmt.Errorf("%w: %d is before the first index %d", ErrNotFound, index, l.first)
	}
	n := len(l.segs)
	if n < 2 || index >= l.segs[n-1].first {
		return segment{}, 0, false, nil
	}
	for i := n - 2; i >= 0; i-- {
		if l.segs[i].first <= index {
			return l.segs[i], l.segs[i+1].first, true, nil
		}
	}
	return segment{}, 0, false, nil
}

// read returns the verified bytes of entry index of seg, whose successor
// starts at next. The bytes are never reused.
func (c *coldReader) read(seg segment, next, index uint64, maxEntry int) ([]byte, error) {
	if c.data != nil && c.index == index {
		return c.data, nil
	}
	t, err := c.table(seg, index, maxEntry)
	if err != nil {
		return nil, err
	}
	i := index - seg.first
	if i+1 >= uint64(len(t.offs)) {
		return nil, corruptAt(seg.path, -1, index,
			fmt.Sprintf("segment holds %d entries but the next segment starts at %d", len(t.offs)-1, next), nil)
	}
	off, end := t.offs[i], t.offs[i+1]
	frame := make([]byte, end-off)
	if _, err := t.f.ReadAt(frame, off); err != nil {
		return nil, fmt.Errorf("walq/log: read %s at offset %d: %w", seg.path, off, err)
	}
	size, n := binary.Uvarint(frame)
	if n <= 0 || uint64(len(frame)-n) != size {
		return nil, corruptAt(seg.path, off, index, "entry frame length changed since the segment was scanned", nil)
	}
	data := frame[n:]
	if err := CheckEntry(index, data); err != nil {
		return nil, locate(err, seg.path, off, index)
	}
	c.index, c.data = index, data
	return data, nil
}

// table returns seg's offsets, covering index if the file does, scanning
// the file when they are not known yet or do not reach index (the segment
// was still being written when it was last scanned).
func (c *coldReader) table(seg segment, index uint64, maxEntry int) (*coldTable, error) {
	for k, t := range c.tables {
		if t.seg.first != seg.first || t.seg.path != seg.path {
			continue
		}
		if index-seg.first+1 < uint64(len(t.offs)) {
			c.tables = append(append(c.tables[:k:k], c.tables[k+1:]...), t)
			return t, nil
		}
		c.tables = append(c.tables[:k:k], c.tables[k+1:]...)
		t.f.Close()
		break
	}
	f, err := os.Open(seg.path)
	if err != nil {
		return nil, fmt.Errorf("walq/log: read segment: %w", err)
	}
	offs, err := scanOffsets(f, seg, maxEntry)
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &coldTable{seg: seg, f: f, offs: offs}
	if len(c.tables) == coldTables {
		c.tables[0].f.Close()
		c.tables = append(c.tables[:0:0], c.tables[1:]...)
	}
	c.tables = append(c.tables, t)
	return t, nil
}

// scanWindow is how many bytes scanOffsets reads at a time.
const scanWindow = 64 << 10

// scanOffsets returns the offsets of the whole frames of f, and the end of
// the last one, reading the lengths only: it reads the file a window at a
// time and jumps over a frame that ends past its window, so that a segment
// of large batch entries costs a read per entry, not the whole file (the
// first lease after Open scans the oldest segment for one payload).
func scanOffsets(f *os.File, seg segment, maxEntry int) ([]int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("walq/log: read segment %s: %w", seg.path, err)
	}
	return scanFrames(f, st.Size(), seg, maxEntry)
}

// scanFrames is scanOffsets on the size bytes of r.
func scanFrames(r io.ReaderAt, size int64, seg segment, maxEntry int) ([]int64, error) {
	buf := make([]byte, scanWindow)
	var at int64 // the file offset of buf[0]
	n := 0       // the bytes of buf read
	offs := []int64{0}
	var off int64
	for off < size {
		if off+binary.MaxVarintLen64 > at+int64(n) && at+int64(n) < size {
			m, err := r.ReadAt(buf, off)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("walq/log: read segment %s at offset %d: %w", seg.path, off, err)
			}
			at, n = off, m
		}
		length, k := binary.Uvarint(buf[off-at : n])
		if k == 0 {
			return offs, nil // a torn length: only whole frames count
		}
		if k < 0 {
			return nil, corruptAt(seg.path, off, seg.first+uint64(len(offs)-1), "entry length is not a valid uvarint", nil)
		}
		if length > uint64(maxEntry) {
			return nil, corruptAt(seg.path, off, seg.first+uint64(len(offs)-1),
				fmt.Sprintf("entry length %d exceeds the %d-byte limit", length, maxEntry), nil)
		}
		end := off + int64(k) + int64(length)
		if end > size {
			return offs, nil // a frame still being written
		}
		off = end
		offs = append(offs, off)
	}
	return offs, nil
}

// drop forgets every table (closing its file) and the last entry. The
// caller holds Log.readMu.
func (c *coldReader) drop() {
	for _, t := range c.tables {
		t.f.Close()
	}
	c.tables = nil
	c.index, c.data = 0, nil
}
