package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Decoding reads records straight from the entry's bytes. msgpack/v5's
// Decoder, field by field through an io.Reader, cost three quarters of
// replay (about 650 ns a record); records use a handful of msgpack types
// (maps, arrays, ints, strings, bins, nil), which this reader decodes in
// place, with the same meaning as msgpack/v5's DecodeArrayLen, DecodeMapLen,
// DecodeUint64, DecodeInt64 and DecodeBytesLen: nil is an empty length (-1)
// or zero, and any integer code is accepted for any integer field. Encoding
// stays with msgpack/v5, so what the reader accepts is checked against
// the library by the codec tests and the FuzzDecodeEntry round trip.

// errType is a msgpack value of a type the field cannot hold.
var errType = errors.New("unexpected msgpack type")

// reader decodes msgpack values from b, starting at off.
type reader struct {
	b   []byte
	off int
}

func (d *reader) left() int { return len(d.b) - d.off }

func (d *reader) code() (byte, error) {
	if d.off >= len(d.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

// fixed reads an n-byte big-endian unsigned number.
func (d *reader) fixed(n int) (uint64, error) {
	if d.left() < n {
		return 0, io.ErrUnexpectedEOF
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	}
	return binary.BigEndian.Uint64(p), nil
}

// int decodes any msgpack integer (or nil, as 0) as the int64 with its bits.
func (d *reader) int() (int64, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f: // positive fixint
		return int64(c), nil
	case c >= 0xe0: // negative fixint
		return int64(int8(c)), nil
	}
	var u uint64
	switch c {
	case 0xc0: // nil
		return 0, nil
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8, 16, 32, 64
		u, err = d.fixed(1 << (c - 0xcc))
		return int64(u), err
	case 0xd0:
		u, err = d.fixed(1)
		return int64(int8(u)), err
	case 0xd1:
		u, err = d.fixed(2)
		return int64(int16(u)), err
	case 0xd2:
		u, err = d.fixed(4)
		return int64(int32(u)), err
	case 0xd3:
		u, err = d.fixed(8)
		return int64(u), err
	}
	return 0, fmt.Errorf("%w: code %#x where an integer belongs", errType, c)
}

// int32 decodes an integer that must fit in 32 bits.
func (d *reader) int32() (int32, error) {
	v, err := d.int()
	if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
		err = fmt.Errorf("integer %d does not fit in 32 bits", v)
	}
	return int32(v), err
}

func (d *reader) uint() (uint64, error) {
	v, err := d.int()
	return uint64(v), err
}

// length decodes a length header: one of the fix codes (fixLo..fixLo+mask)
// or the 8-, 16- or 32-bit forms (codes c8, c16, c32; 0 where a form does
// not exist), or nil as -1.
func (d *reader) length(what string, fixLo, mask, c8, c16, c32 byte) (int, error) {
	c, err := d.code()
	if err != nil {
		return 0, err
	}
	if c&^mask == fixLo {
		return int(c & mask), nil
	}
	var n uint64
	switch {
	case c == 0xc0:
		return -1, nil
	case c8 != 0 && c == c8:
		n, err = d.fixed(1)
	case c == c16:
		n, err = d.fixed(2)
	case c == c32:
		n, err = d.fixed(4)
	default:
		return 0, fmt.Errorf("%w: code %#x where %s belongs", errType, c, what)
	}
	if err == nil && n > uint64(d.left()) {
		// Every element takes at least a byte: a length beyond the
		// input is hostile or torn, refused before anything is sized
		// by it.
		err = io.ErrUnexpectedEOF
	}
	return int(n), err
}

func (d *reader) arrayLen() (int, error) { return d.length("an array", 0x90, 0x0f, 0, 0xdc, 0xdd) }

func (d *reader) mapLen() (int, error) { return d.length("a map", 0x80, 0x0f, 0, 0xde, 0xdf) }

// raw decodes a str or bin header and returns the bytes it covers (no copy,
// capacity capped) and their offset in the entry; nil for a msgpack nil.
func (d *reader) raw() ([]byte, int, error) {
	c, err := d.code()
	if err != nil {
		return nil, 0, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0: // fixstr
		n = uint64(c & 0x1f)
	case c == 0xc0:
		return nil, 0, nil
	case c == 0xd9, c == 0xc4: // str8, bin8
		n, err = d.fixed(1)
	case c == 0xda, c == 0xc5:
		n, err = d.fixed(2)
	case c == 0xdb, c == 0xc6:
		n, err = d.fixed(4)
	default:
		return nil, 0, fmt.Errorf("%w: code %#x where bytes belong", errType, c)
	}
	if err != nil {
		return nil, 0, err
	}
	if n > uint64(d.left()) {
		return nil, 0, io.ErrUnexpectedEOF
	}
	off := d.off
	d.off += int(n)
	return d.b[off : off+int(n) : off+int(n)], off, nil
}

func (d *reader) string() (string, error) {
	b, _, err := d.raw()
	return string(b), err
}

// decodeRecords decodes the records of an already verified entry into r,
// one at a time, calling fn with each. r is scratch space that the caller
// may reuse across entries (a Record passed to a callback escapes, so one
// per entry would be an allocation per entry). names, if not nil, interns
// queue names across calls so that replaying a million records does not
// allocate a million copies of "default".
func decodeRecords(data []byte, names map[string]string, r *Record, fn func(i int, r *Record) error) error {
	d := reader{b: data, off: entryHeader}
	n, err := d.arrayLen()
	if err != nil {
		return corruptf(err, "bad record list")
	}
	// Every record takes at least two bytes, so a count larger than that
	// is hostile: refuse it before anything is allocated for it.
	if n < 1 || n > d.left()/2 {
		return corruptf(nil, "record count %d does not fit in %d bytes", n, d.left())
	}
	for i := 0; i < n; i++ {
		*r = Record{}
		if err := decodeRecord(&d, names, r); err != nil {
			ce := corruptf(err, "bad record")
			ce.Record = i
			return ce
		}
		if err := fn(i, r); err != nil {
			return err
		}
	}
	if d.left() != 0 {
		return corruptf(nil, "%d trailing bytes after %d records", d.left(), n)
	}
	return nil
}

func decodeRecord(d *reader, names map[string]string, r *Record) error {
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	if n < 1 {
		return corruptf(nil, "field count %d out of range", n)
	}
	var seen uint32
	for j := 0; j < n; j++ {
		tag, err := d.uint()
		if err != nil {
			return err
		}
		if tag == 0 || tag > tagMax {
			return corruptf(nil, "unknown field tag %d", tag)
		}
		if seen&(1<<tag) != 0 {
			return corruptf(nil, "duplicate field tag %d", tag)
		}
		seen |= 1 << tag
		if err := decodeField(d, names, r, tag); err != nil {
			return err
		}
	}
	if !r.Kind.Valid() {
		return corruptf(nil, "unknown record kind %d", r.Kind)
	}
	return nil
}

func decodeField(d *reader, names map[string]string, r *Record, tag uint64) error {
	var err error
	switch tag {
	case tagKind:
		var k uint64
		k, err = d.uint()
		r.Kind = Kind(uint8(k))
	case tagJob:
		r.Job, err = d.uint()
	case tagNextID:
		r.NextID, err = d.uint()
	case tagFlags:
		r.Flags, err = d.uint()
	case tagQueue:
		var b []byte
		if b, _, err = d.raw(); err == nil {
			r.Queue = intern(names, b)
		}
	case tagKey:
		r.Key, err = d.string()
	case tagError:
		r.Error, err = d.string()
	case tagSpec:
		r.Spec, err = d.string()
	case tagGroup:
		r.Group, err = d.string()
	case tagNote:
		r.Note, err = d.string()
	case tagPayload:
		r.Payload, r.PayloadAt, err = d.raw()
	case tagResult:
		r.Result, r.ResultAt, err = d.raw()
	case tagState:
		var v uint64
		v, err = d.uint()
		r.State = uint8(v)
	case tagHistory:
		r.History, err = decodeHistory(d, r.History)
	case tagMeta:
		r.Meta, r.MetaAt, err = d.meta()
	default:
		*intField(r, tag), err = d.int()
	}
	return err
}

func decodeHistory(d *reader, h []Attempt) ([]Attempt, error) {
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	// An attempt takes at least five bytes.
	if n < 0 || n > d.left()/5 {
		return nil, corruptf(nil, "history length %d out of range", n)
	}
	for i := 0; i < n; i++ {
		m, err := d.arrayLen()
		if err != nil {
			return nil, err
		}
		if m != attemptFields && m != attemptFieldsNumbered {
			return nil, corruptf(nil, "attempt of %d fields, want %d or %d", m, attemptFields, attemptFieldsNumbered)
		}
		var a Attempt
		if a.Started, err = d.int(); err != nil {
			return nil, err
		}
		if a.Ended, err = d.int(); err != nil {
			return nil, err
		}
		var k uint64
		if k, err = d.uint(); err != nil {
			return nil, err
		}
		a.Outcome = Kind(uint8(k))
		if a.Error, err = d.string(); err != nil {
			return nil, err
		}
		if m == attemptFieldsNumbered {
			if a.Number, err = d.int32(); err != nil {
				return nil, err
			}
			if a.Lease, err = d.int32(); err != nil {
				return nil, err
			}
		}
		h = append(h, a)
	}
	return h, nil
}
