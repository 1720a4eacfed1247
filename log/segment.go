package log

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// segmentNameLen is the length of a segment file name: the segment's first
// log index as 20 zero-padded decimal digits (tidwall/wal's naming). Part of
// the on-disk format; never change.
const segmentNameLen = 20

// segmentName returns the file name of the segment whose first entry has
// log index first.
func segmentName(first uint64) string { return fmt.Sprintf("%020d", first) }

// segment is one segment file: its path and the index of its first entry.
type segment struct {
	path  string
	first uint64
	size  int64 // bytes, as last known
}

// listSegments returns the segment files in dir in index order. Files whose
// names are not exactly 20 digits are not segments and are ignored.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) != segmentNameLen {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil || first == 0 {
			continue
		}
		var size int64
		if info, err := e.Info(); err == nil {
			size = info.Size()
		}
		segs = append(segs, segment{path: filepath.Join(dir, name), first: first, size: size})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// frame is one entry found in a segment: its byte offset, the offset of its
// data and the data itself (aliasing the segment's bytes).
type frame struct {
	off  int64
	data []byte
}

// frameEnd is the offset just past a frame.
func (f frame) end() int64 {
	return f.off + int64(uvarintLen(uint64(len(f.data)))) + int64(len(f.data))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// nextFrame parses the frame at off in buf (tidwall/wal's framing: a uvarint
// length followed by that many bytes). ok is false when the frame does not
// fit in buf (a torn or truncated tail); err reports a length that is
// impossible whatever follows (a length over maxEntry).
func nextFrame(buf []byte, off int64, maxEntry int) (f frame, ok bool, err error) {
	size, n := binary.Uvarint(buf[off:])
	if n == 0 {
		return frame{}, false, nil
	}
	if n < 0 || size > uint64(maxEntry) {
		return frame{}, false, corruptf(nil, "entry length %d exceeds the %d-byte limit", size, maxEntry)
	}
	start := off + int64(n)
	if uint64(int64(len(buf))-start) < size {
		return frame{}, false, nil
	}
	return frame{off: off, data: buf[start : start+int64(size) : start+int64(size)]}, true, nil
}

// scanResult is what scanSegment learned about a segment.
type scanResult struct {
	entries int   // valid entries before end
	end     int64 // offset just past the last valid entry
	// bad describes the first invalid bytes at end, nil when the segment
	// ends cleanly.
	bad *CorruptError
	// validAfter reports that a valid entry follows the invalid bytes, so
	// that they cannot be a torn tail.
	validAfter bool
}

// scanSegment walks the entries of one segment's bytes, checking each
// entry's checksum against its expected index, and calls fn (if not nil)
// for each valid one. It stops at the first invalid entry and then looks
// ahead for any further valid entry, which tells a torn tail (nothing valid
// follows) from corruption in the middle.
func scanSegment(buf []byte, seg segment, maxEntry int, fn func(index uint64, f frame) error) (scanResult, error) {
	var res scanResult
	var off int64
	index := seg.first
	for off < int64(len(buf)) {
		f, ok, err := nextFrame(buf, off, maxEntry)
		if err == nil && !ok {
			err = corruptf(nil, "entry frame at offset %d runs past the end of the segment (%d bytes)", off, len(buf))
		}
		if err == nil {
			err = CheckEntry(index, f.data)
		}
		if err != nil {
			res.end = off
			res.bad = locate(err, seg.path, off, index).(*CorruptError)
			if ok {
				res.validAfter = anyValidAfter(buf, f.end(), index+1, maxEntry)
			}
			return res, nil
		}
		if fn != nil {
			if err := fn(index, f); err != nil {
				return res, err
			}
		}
		res.entries++
		index++
		off = f.end()
	}
	res.end = off
	return res, nil
}

// anyValidAfter reports whether any frame from off onward, followed in
// framing order, holds a valid entry for the index it would have.
func anyValidAfter(buf []byte, off int64, index uint64, maxEntry int) bool {
	for off < int64(len(buf)) {
		f, ok, err := nextFrame(buf, off, maxEntry)
		if err != nil || !ok {
			return false
		}
		if CheckEntry(index, f.data) == nil {
			return true
		}
		index++
		off = f.end()
	}
	return false
}
