package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
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

// successor is the segment that follows one in a log: it must continue it,
// starting at the index just past the segment's last entry (tidwall/wal
// names each segment after its first index). Both a gap (entries lost) and
// an overlap (two segments claim an index, and which holds the
// acknowledged entry cannot be told) are corruption of the earlier segment.
type successor struct {
	seg  string // the earlier segment's path
	next uint64 // the successor's first index; 0 if the segment is the tail
}

// successorOf returns the successor of segs[i].
func successorOf(segs []segment, i int) successor {
	s := successor{seg: segs[i].path}
	if i+1 < len(segs) {
		s.next = segs[i+1].first
	}
	return s
}

// claims returns the corruption of the segment's entry at index, whose
// frame is at off, when the successor claims that index too; nil if not.
func (s successor) claims(index uint64, off int64) *CorruptError {
	if s.next == 0 || index < s.next {
		return nil
	}
	return corruptAt(s.seg, off, index, fmt.Sprintf("segment holds index %d but the next segment starts at %d", index, s.next), nil)
}

// gap returns the corruption of a segment whose entries end before index
// end, at offset off, when the successor starts after end; nil if not.
func (s successor) gap(end uint64, off int64) *CorruptError {
	if s.next == 0 || end >= s.next {
		return nil
	}
	return corruptAt(s.seg, off, end, fmt.Sprintf("segment ends before index %d but the next segment starts at %d", end, s.next), nil)
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
// msgpack array header) skips most offsets.
//
// Checksumming each candidate frame on its own would cost the sum of their
// lengths: quadratic in crafted bytes where most offsets pass the filter
// (1 MiB took seconds). Instead one forward pass takes the CRC-32C of
// every prefix of the region (kept every ckEvery bytes), and a candidate's
// checksum comes from two prefixes by CRC algebra (see below), at a cost
// that does not depend on its length: the whole scan is linear in the
// bytes after off. A match found that way is confirmed directly before it
// counts.
func anyValidAfter(buf []byte, off int64, index uint64) bool {
	var work int64
	return validAfter(buf, off, index, &work)
}

// ckEvery is how many bytes apart validAfter keeps prefix checksums: a
// candidate's checksum then costs at most 2*ckEvery bytes of CRC.
const ckEvery = 32

// validAfter is anyValidAfter; it adds the work it does to *work (bytes
// checksummed, plus 32 per polynomial multiplication) so that tests can
// check that the work is linear.
func validAfter(buf []byte, off int64, index uint64, work *int64) bool {
	if off >= int64(len(buf)) {
		return false
	}
	region := buf[off:]
	// prefix[j] is the CRC-32C of region[:j*ckEvery].
	prefix := make([]uint32, len(region)/ckEvery+1)
	for j := 1; j < len(prefix); j++ {
		prefix[j] = crc32.Update(prefix[j-1], castagnoli, region[(j-1)*ckEvery:j*ckEvery])
	}
	*work += int64(len(region))
	crcTo := func(x int) uint32 { // the CRC-32C of region[:x]
		j := x / ckEvery
		*work += int64(x - j*ckEvery)
		return crc32.Update(prefix[j], castagnoli, region[j*ckEvery:x])
	}
	// An entry at index i is valid iff its stored checksum equals
	// entryCRC(body, i) = shift(body, 8) ^ crc(le64(i)): the keys are the
	// crc(le64(i)) of the window.
	var keys [lookAhead]uint32
	var ib [8]byte
	for i := range keys {
		binary.LittleEndian.PutUint64(ib[:], index+uint64(i))
		keys[i] = crc32.Checksum(ib[:], castagnoli)
	}
	slices.Sort(keys[:])
	pow := newCRCPowers(len(region))
	for p := 0; p < len(region); p++ {
		size, n := binary.Uvarint(region[p:])
		if n <= 0 || size < entryHeader+1 || size > uint64(len(region)-p-n) {
			continue
		}
		data := region[p+n : p+n+int(size)]
		if data[4] != FormatVersion || !isArrayHeader(data[5]) {
			continue
		}
		start, end := p+n+4, p+n+int(size) // the checksummed bytes: data[4:]
		body := crcTo(end) ^ pow.shift(crcTo(start), end-start)
		key := binary.LittleEndian.Uint32(data) ^ shift8(body)
		*work += 2*32 + 8
		if _, ok := slices.BinarySearch(keys[:], key); !ok {
			continue
		}
		// Confirm the algebra's match the direct way (once: it returns).
		*work += int64(len(data))
		for i := range uint64(lookAhead) {
			if CheckEntry(index+i, data) == nil {
				return true
			}
		}
	}
	return false
}

// The CRC algebra validAfter relies on (zlib's crc32_combine): for byte
// strings A and B, crc(A||B) = shift(crc(A), len(B)) ^ crc(B), where crc
// is CRC-32C as hash/crc32 computes it and shift(c, k) multiplies c by
// x^(8k) modulo the CRC polynomial. So crc(B) = crc(A||B) ^
// shift(crc(A), len(B)): the checksum of any span follows from the
// checksums of two prefixes.

// crcOne is the polynomial 1 (x^0) in the reflected bit order of CRC-32C.
const crcOne = uint32(1) << 31

// crcMul multiplies a and b modulo the CRC-32C polynomial, both in
// reflected bit order (bit 31 is x^0), by Horner's rule over a's nibbles:
// a table of b times each nibble polynomial, and x^4 steps reduced through
// crcX4.
func crcMul(a, b uint32) uint32 {
	var t [16]uint32 // t[v] = b * v, v's bit 3 being x^0
	t[8] = b
	t[4] = crcTimesX(t[8])
	t[2] = crcTimesX(t[4])
	t[1] = crcTimesX(t[2])
	for v := 3; v < 16; v++ {
		if v&(v-1) != 0 {
			t[v] = t[v&(v-1)] ^ t[v&-v]
		}
	}
	var p uint32
	for k := 0; k < 8; k++ { // nibble k holds x^(28-4k) .. x^(31-4k)
		p = p>>4 ^ crcX4[p&0xf] ^ t[a>>(4*k)&0xf]
	}
	return p
}

// crcTimesX multiplies c by x modulo the CRC-32C polynomial.
func crcTimesX(c uint32) uint32 {
	if c&1 != 0 {
		return c>>1 ^ crc32.Castagnoli
	}
	return c >> 1
}

// crcX4[v] reduces the four bits a multiplication by x^4 pushes past
// x^31: c * x^4 = c>>4 ^ crcX4[c&0xf].
var crcX4 = func() (t [16]uint32) {
	for v := range uint32(16) {
		c := v
		for range 4 {
			c = crcTimesX(c)
		}
		t[v] = c
	}
	return t
}()

// crcLoBits sizes crcPowLo.
const crcLoBits = 12

// crcPowLo[k] is x^(8k) modulo the CRC-32C polynomial for k < 1<<crcLoBits.
var crcPowLo = func() []uint32 {
	t := make([]uint32, 1<<crcLoBits)
	t[0] = crcOne
	for k := 1; k < len(t); k++ {
		t[k] = crcMul(t[k-1], crcOne>>8) // times x^8
	}
	return t
}()

// crcPowers computes shift(c, k) for k up to a limit with two
// multiplications: x^(8k) = crcPowLo[k mod 4096] * hi[k / 4096].
type crcPowers struct{ hi []uint32 }

// newCRCPowers prepares shift for k up to limit.
func newCRCPowers(limit int) crcPowers {
	hi := make([]uint32, limit>>crcLoBits+1)
	hi[0] = crcOne
	if len(hi) > 1 {
		step := crcMul(crcPowLo[len(crcPowLo)-1], crcOne>>8) // x^(8*4096)
		for j := 1; j < len(hi); j++ {
			hi[j] = crcMul(hi[j-1], step)
		}
	}
	return crcPowers{hi: hi}
}

// shift returns c times x^(8k): the checksum c of some bytes A turned into
// its contribution to the checksum of A followed by k more bytes.
func (pw crcPowers) shift(c uint32, k int) uint32 {
	c = crcMul(crcPowLo[k&(1<<crcLoBits-1)], c)
	if hi := k >> crcLoBits; hi > 0 {
		c = crcMul(pw.hi[hi], c)
	}
	return c
}

// shift8 is shift(c, 8): eight steps of the table-driven CRC over zero
// bytes, each a multiplication by x^8.
func shift8(c uint32) uint32 {
	for range 8 {
		c = castagnoli[c&0xff] ^ c>>8
	}
	return c
}

// isArrayHeader reports whether c starts a msgpack array.
func isArrayHeader(c byte) bool { return c&0xf0 == 0x90 || c == 0xdc || c == 0xdd }
