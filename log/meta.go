package log

import (
	"errors"
	"fmt"
	"sort"
	"unicode/utf8"
)

// A job's metadata (string headers such as a W3C traceparent) is stored in
// its KindEnqueued or KindCarry record under tag 22, as a msgpack map of
// str keys to str values. The writer places it immediately after the
// payload bytes. The index keeps only where a job's payload is, so a reader
// that has read the payload finds the metadata by looking at the byte after
// it (PayloadMeta): the index spends nothing on metadata, and a job without
// any costs one byte comparison to read. The byte after a payload is
// otherwise another field's tag (history, 18), the next record's map header
// or the end of the entry, none of which is tag 22's fixint (0x16).

// errMeta is a metadata map of the wrong shape.
var errMeta = errors.New("metadata is not a map of strings")

// EncodeMeta encodes m as Record.Meta: a msgpack map with its keys in
// sorted order (so equal maps encode to equal bytes). It returns nil for
// an empty map.
func EncodeMeta(m map[string]string) []byte {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	n := 5
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 10
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = appendLen(b, 0x80, 0xde, 0xdf, len(m))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, m[k])
	}
	return b
}

// appendLen appends a map header (fix form from fix, else 16- or 32-bit).
func appendLen(b []byte, fix, c16, c32 byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= 0xffff:
		return append(b, c16, byte(n>>8), byte(n))
	}
	return append(b, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendStr appends s as a msgpack str in its shortest form.
func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= 0xff:
		b = append(b, 0xd9, byte(n))
	case n <= 0xffff:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// DecodeMeta decodes Record.Meta. It returns nil for empty input; any other
// input that is not exactly one msgpack map of strings is an error.
func DecodeMeta(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := reader{b: b}
	n, err := d.mapLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errMeta
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k, _, err := d.str()
		if err != nil {
			return nil, err
		}
		v, _, err := d.str()
		if err != nil {
			return nil, err
		}
		m[string(k)] = string(v)
	}
	if d.left() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMeta, d.left())
	}
	return m, nil
}

// str decodes a msgpack str (not nil, not bin) that is valid UTF-8.
func (d *reader) str() ([]byte, int, error) {
	if d.off < len(d.b) {
		if c := d.b[d.off]; c == 0xc0 || c == 0xc4 || c == 0xc5 || c == 0xc6 {
			return nil, 0, fmt.Errorf("%w: code %#x where a string belongs", errType, c)
		}
	}
	b, off, err := d.raw()
	if err == nil && !utf8.Valid(b) {
		err = errMeta
	}
	return b, off, err
}

// meta decodes the value of a meta field: it checks that it is a map of
// strings and returns its bytes (no copy) and their offset in the entry.
func (d *reader) meta() ([]byte, int, error) {
	start := d.off
	n, err := d.mapLen()
	if err != nil {
		return nil, 0, err
	}
	if n < 1 {
		// The writer leaves an empty map out: anything else is not ours.
		return nil, 0, fmt.Errorf("%w: %d entries", errMeta, n)
	}
	for i := 0; i < 2*n; i++ {
		if _, _, err := d.str(); err != nil {
			return nil, 0, err
		}
	}
	return d.b[start:d.off:d.off], start, nil
}

// PayloadMeta returns the metadata stored right after a payload that ends
// at offset end of the entry data (see Record.Meta), or nil if there is
// none there. data is an entry whose checksum was verified; a malformed map
// is a *CorruptError without a location.
func PayloadMeta(data []byte, end int) ([]byte, error) {
	if end >= len(data) || data[end] != tagMeta {
		return nil, nil
	}
	d := reader{b: data, off: end + 1}
	b, _, err := d.meta()
	if err != nil {
		return nil, corruptf(err, "bad metadata after the payload at offset %d", end)
	}
	return b, nil
}

// putMeta writes the meta field, unless m is empty, after checking that it
// decodes: a malformed map would pass its checksum and then stop every
// replay.
func (w *recordWriter) putMeta(m []byte) {
	if len(m) == 0 || w.err != nil {
		return
	}
	d := reader{b: m}
	if _, _, err := d.meta(); err != nil || d.left() != 0 {
		w.do(fmt.Errorf("walq/log: record metadata is not one msgpack map of strings: %v", err))
		return
	}
	w.do(w.enc.EncodeUint(tagMeta))
	_, err := w.buf.Write(m)
	w.do(err)
}
