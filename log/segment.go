package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
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
//
// The segment is already in memory, so a length that fits in it allocates
// nothing; maxEntry only names what an impossible length is.
func nextFrame(buf []byte, off int64, maxEntry int) (f frame, ok bool, err error) {
	size, n := binary.Uvarint(buf[off:])
	if n == 0 {
		return frame{}, false, nil
	}
	start := off + int64(n)
	if n < 0 || uint64(int64(len(buf))-start) < size {
		if n < 0 || size > uint64(maxEntry) {
			return frame{}, false, corruptf(nil, "entry length %d exceeds the %d-byte limit", size, maxEntry)
		}
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
			res.validAfter = anyValidAfter(buf, off+1, index+1)
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

// lookAhead is how many indexes past a damaged entry anyValidAfter tries:
// damage that swallowed more entries than this goes unnoticed.
const lookAhead = 64

// anyValidAfter reports whether any valid entry for an index in
// [index, index+lookAhead) starts at or after off. It tries every byte
// offset, since the damage may be in a length prefix, so that framing
// cannot be followed; a cheap filter (the frame fits, the version byte, a
// msgpack array header) keeps the checksum work small.
func anyValidAfter(buf []byte, off int64, index uint64) bool {
	for p := off; p < int64(len(buf)); p++ {
		size, n := binary.Uvarint(buf[p:])
		if n <= 0 || size < entryHeader+1 || size > uint64(int64(len(buf))-p-int64(n)) {
			continue
		}
		data := buf[p+int64(n) : p+int64(n)+int64(size)]
		if data[4] != FormatVersion || !isArrayHeader(data[5]) {
			continue
		}
		body := crc32.Checksum(data[4:], castagnoli)
		want := binary.LittleEndian.Uint32(data)
		for i := uint64(0); i < lookAhead; i++ {
			if entryCRC(body, index+i) == want {
				return true
			}
		}
	}
	return false
}

// isArrayHeader reports whether c starts a msgpack array.
func isArrayHeader(c byte) bool { return c&0xf0 == 0x90 || c == 0xdc || c == 0xdd }
