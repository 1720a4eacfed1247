package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// FormatVersion is the entry format this version of walq writes and the
// newest it reads. Part of the on-disk format: bump it, never reuse it.
const FormatVersion = 1

// entryHeader is the size of an entry's fixed header: CRC-32C (4 bytes) and
// the format version (1 byte). Part of the on-disk format; never change.
const entryHeader = 5

// Record field tags: the keys of the msgpack map that encodes a Record. Part
// of the on-disk format; never change or reuse a tag.
const (
	tagKind        = 1
	tagJob         = 2
	tagAt          = 3
	tagQueue       = 4
	tagKey         = 5
	tagPayload     = 6
	tagPriority    = 7
	tagRunAt       = 8
	tagMaxAttempts = 9
	tagBackoffBase = 10
	tagBackoffCap  = 11
	tagTimeout     = 12
	tagAttempt     = 13
	tagDeadline    = 14
	tagError       = 15
	tagResult      = 16
	tagState       = 17
	tagHistory     = 18
	tagCreated     = 19
	tagFinished    = 20
	tagNextID      = 21
)

// An attempt in a history is a msgpack array of attemptFields values
// (started, ended, outcome, error) or, when it carries its numbers, of
// attemptFieldsNumbered (then attempt number and lease number). Readers
// accept both; a writer uses the short form when both numbers are zero.
// Part of the on-disk format; never change.
const (
	attemptFields         = 4
	attemptFieldsNumbered = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// entryCRC is the checksum stored in an entry: CRC-32C over everything after
// the checksum field, followed by the entry's log index (little-endian), so
// that valid bytes at the wrong index fail too.
func entryCRC(body uint32, index uint64) uint32 {
	var ib [8]byte
	binary.LittleEndian.PutUint64(ib[:], index)
	return crc32.Update(body, castagnoli, ib[:])
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// EncodeEntry encodes recs as the bytes of one log entry at log index index,
// checksum included. It sets recs[i].PayloadAt to each payload's offset in the
// returned bytes.
func EncodeEntry(index uint64, recs []Record) ([]byte, error) {
	buf := new(bytes.Buffer)
	body, err := encodeBody(buf, recs)
	if err != nil {
		return nil, err
	}
	data := buf.Bytes()
	binary.LittleEndian.PutUint32(data, entryCRC(body, index))
	return data, nil
}

// encodeBody writes an entry with a zero checksum field into buf and returns
// the CRC-32C of the bytes after that field; the caller mixes in the index
// with entryCRC once it is known.
func encodeBody(buf *bytes.Buffer, recs []Record) (uint32, error) {
	buf.Write([]byte{0, 0, 0, 0, FormatVersion})
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	if err := enc.EncodeArrayLen(len(recs)); err != nil {
		return 0, err
	}
	for i := range recs {
		if err := encodeRecord(enc, buf, &recs[i]); err != nil {
			return 0, err
		}
	}
	return crc32.Checksum(buf.Bytes()[4:], castagnoli), nil
}

// field is one tagged value of a record, written only when non-zero.
type field struct {
	tag int
	i   int64
	u   uint64
	s   string
	b   []byte
	typ byte // 'i', 'u', 's', 'b'
}

func encodeRecord(enc *msgpack.Encoder, buf *bytes.Buffer, r *Record) error {
	if !r.Kind.Valid() {
		// Refuse here: an entry with an unknown kind would pass its
		// checksum and then stop every replay.
		return fmt.Errorf("walq/log: record of unknown kind %d", r.Kind)
	}
	var fs [24]field
	n := 0
	add := func(f field) { fs[n] = f; n++ }
	add(field{tag: tagKind, u: uint64(r.Kind), typ: 'u'})
	ints := [...]struct {
		tag int
		v   int64
	}{
		{tagAt, r.At}, {tagPriority, r.Priority}, {tagRunAt, r.RunAt},
		{tagMaxAttempts, r.MaxAttempts}, {tagBackoffBase, r.BackoffBase},
		{tagBackoffCap, r.BackoffCap}, {tagTimeout, r.Timeout},
		{tagAttempt, r.Attempt}, {tagDeadline, r.Deadline},
		{tagState, int64(r.State)}, {tagCreated, r.Created}, {tagFinished, r.Finished},
	}
	if r.Job != 0 {
		add(field{tag: tagJob, u: r.Job, typ: 'u'})
	}
	if r.NextID != 0 {
		add(field{tag: tagNextID, u: r.NextID, typ: 'u'})
	}
	for _, f := range ints {
		if f.v != 0 {
			add(field{tag: f.tag, i: f.v, typ: 'i'})
		}
	}
	if r.Queue != "" {
		add(field{tag: tagQueue, s: r.Queue, typ: 's'})
	}
	if r.Key != "" {
		add(field{tag: tagKey, s: r.Key, typ: 's'})
	}
	if r.Error != "" {
		add(field{tag: tagError, s: r.Error, typ: 's'})
	}
	if r.Result != nil {
		add(field{tag: tagResult, b: r.Result, typ: 'b'})
	}
	if r.Payload != nil {
		add(field{tag: tagPayload, b: r.Payload, typ: 'b'})
	}
	hist := len(r.History) > 0
	size := n
	if hist {
		size++
	}
	if err := enc.EncodeMapLen(size); err != nil {
		return err
	}
	for _, f := range fs[:n] {
		if err := enc.EncodeUint(uint64(f.tag)); err != nil {
			return err
		}
		var err error
		switch f.typ {
		case 'u':
			err = enc.EncodeUint(f.u)
		case 'i':
			err = enc.EncodeInt(f.i)
		case 's':
			err = enc.EncodeString(f.s)
		case 'b':
			if err = enc.EncodeBytesLen(len(f.b)); err == nil {
				if f.tag == tagPayload {
					r.PayloadAt = buf.Len()
				} else {
					r.ResultAt = buf.Len()
				}
				_, err = buf.Write(f.b)
			}
		}
		if err != nil {
			return err
		}
	}
	if hist {
		return encodeHistory(enc, r.History)
	}
	return nil
}

func encodeHistory(enc *msgpack.Encoder, h []Attempt) error {
	if err := enc.EncodeUint(tagHistory); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(len(h)); err != nil {
		return err
	}
	for _, a := range h {
		numbered := a.Number != 0 || a.Lease != 0
		n := attemptFields
		if numbered {
			n = attemptFieldsNumbered
		}
		if err := enc.EncodeArrayLen(n); err != nil {
			return err
		}
		if err := enc.EncodeInt(a.Started); err != nil {
			return err
		}
		if err := enc.EncodeInt(a.Ended); err != nil {
			return err
		}
		if err := enc.EncodeUint(uint64(a.Outcome)); err != nil {
			return err
		}
		if err := enc.EncodeString(a.Error); err != nil {
			return err
		}
		if !numbered {
			continue
		}
		if err := enc.EncodeInt(int64(a.Number)); err != nil {
			return err
		}
		if err := enc.EncodeInt(int64(a.Lease)); err != nil {
			return err
		}
	}
	return nil
}

// CheckEntry verifies the checksum and version of the entry at log index
// index without decoding its records. The error is a *CorruptError without a
// location.
func CheckEntry(index uint64, data []byte) error {
	if len(data) < entryHeader {
		return corruptf(nil, "entry of %d bytes is shorter than its %d-byte header", len(data), entryHeader)
	}
	want := binary.LittleEndian.Uint32(data)
	got := entryCRC(crc32.Checksum(data[4:], castagnoli), index)
	if want != got {
		if allZero(data) {
			return corruptf(nil, "entry of %d zero bytes", len(data))
		}
		return corruptf(nil, "checksum mismatch: stored %08x, computed %08x", want, got)
	}
	if v := data[4]; v != FormatVersion {
		if v > FormatVersion {
			return corruptf(ErrVersion, "entry version %d is newer than %d (written by a newer walq)", v, FormatVersion)
		}
		return corruptf(ErrVersion, "entry version %d is unknown", v)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// DecodeEntry verifies the entry at log index index and calls fn with each of
// its records in order. The Record passed to fn is reused between calls and
// its Payload and Result alias data. Any failure is a *CorruptError (without
// a segment location); an error returned by fn is passed through.
func DecodeEntry(index uint64, data []byte, fn func(i int, r *Record) error) error {
	if err := CheckEntry(index, data); err != nil {
		return err
	}
	return decodeRecords(data, nil, new(Record), fn)
}

// intern returns b as a string, shared with earlier equal names.
func intern(names map[string]string, b []byte) string {
	if names == nil {
		return string(b)
	}
	if s, ok := names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(names) < 1024 {
		names[s] = s
	}
	return s
}

func intField(r *Record, tag uint64) *int64 {
	switch tag {
	case tagAt:
		return &r.At
	case tagPriority:
		return &r.Priority
	case tagRunAt:
		return &r.RunAt
	case tagMaxAttempts:
		return &r.MaxAttempts
	case tagBackoffBase:
		return &r.BackoffBase
	case tagBackoffCap:
		return &r.BackoffCap
	case tagTimeout:
		return &r.Timeout
	case tagAttempt:
		return &r.Attempt
	case tagDeadline:
		return &r.Deadline
	case tagCreated:
		return &r.Created
	default: // tagFinished; decodeRecord has ruled out unknown tags
		return &r.Finished
	}
}
