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
	tagMeta        = 22
	tagSpec        = 23
	tagGroup       = 24
	tagProgress    = 25
	tagNote        = 26
	tagFlags       = 27

	// tagMax is the largest known tag.
	tagMax = tagFlags
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
// with entryCRC once it is known. It sets each record's PayloadAt and
// ResultAt (for a payload or result it has).
func encodeBody(buf *bytes.Buffer, recs []Record) (uint32, error) {
	buf.Write([]byte{0, 0, 0, 0, FormatVersion})
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	w := recordWriter{buf: buf, enc: enc}
	w.do(enc.EncodeArrayLen(len(recs)))
	for i := range recs {
		r := &recs[i]
		at := w.record(r)
		if w.err != nil {
			return 0, w.err
		}
		if r.Payload != nil {
			r.PayloadAt = at.payload
		}
		if r.Result != nil {
			r.ResultAt = at.result
		}
	}
	return crc32.Checksum(buf.Bytes()[4:], castagnoli), nil
}

// recordWriter writes records as msgpack maps into an entry's bytes. Like
// bufio.Writer (and raft-wal's and etcd's encoders) it keeps the first error
// and writes no record after it, so that a record's encoding reads as the
// list of its fields and the caller checks err once per record. It never
// changes the records it writes: it returns the offsets of their bytes.
type recordWriter struct {
	buf *bytes.Buffer // enc writes into it, so its length is the offset
	enc *msgpack.Encoder
	err error
}

// offsets are where a record's payload and result bytes start in the entry.
type offsets struct{ payload, result int }

// do keeps err if it is the first error.
func (w *recordWriter) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

// record writes r as a map of its non-zero fields, in tag order except that
// the Job, NextID and integer fields come first and the history last (the
// order is not part of the format, but keeping it keeps entries byte for
// byte what earlier versions wrote).
func (w *recordWriter) record(r *Record) offsets {
	if w.err != nil {
		return offsets{}
	}
	if !r.Kind.Valid() {
		// Refuse here: an entry with an unknown kind would pass its
		// checksum and then stop every replay.
		w.do(fmt.Errorf("walq/log: record of unknown kind %d", r.Kind))
		return offsets{}
	}
	w.do(w.enc.EncodeMapLen(fieldCount(r)))
	w.putUint(tagKind, uint64(r.Kind))
	w.putUint(tagJob, r.Job)
	w.putUint(tagNextID, r.NextID)
	w.putInt(tagAt, r.At)
	w.putInt(tagPriority, r.Priority)
	w.putInt(tagRunAt, r.RunAt)
	w.putInt(tagMaxAttempts, r.MaxAttempts)
	w.putInt(tagBackoffBase, r.BackoffBase)
	w.putInt(tagBackoffCap, r.BackoffCap)
	w.putInt(tagTimeout, r.Timeout)
	w.putInt(tagAttempt, r.Attempt)
	w.putInt(tagDeadline, r.Deadline)
	w.putInt(tagState, int64(r.State))
	w.putInt(tagCreated, r.Created)
	w.putInt(tagFinished, r.Finished)
	w.putString(tagQueue, r.Queue)
	w.putString(tagKey, r.Key)
	w.putString(tagError, r.Error)
	w.putString(tagSpec, r.Spec)
	w.putString(tagGroup, r.Group)
	w.putInt(tagProgress, r.Progress)
	w.putString(tagNote, r.Note)
	w.putUint(tagFlags, r.Flags)
	var at offsets
	at.result = w.putBytes(tagResult, r.Result)
	at.payload = w.putBytes(tagPayload, r.Payload)
	w.putMeta(r.Meta) // right after the payload: see PayloadMeta
	w.putHistory(r.History)
	return at
}

// fieldCount is the number of fields record writes for r, the length of
// its map: one per non-zero field (Kind is never zero; a nil Payload or
// Result is zero, an empty one is not). Every round-trip test fails if the
// two disagree.
func fieldCount(r *Record) int {
	n := 1 // Kind
	for _, v := range [...]uint64{r.Job, r.NextID, uint64(r.State)} {
		n += nonZero(v != 0)
	}
	for _, v := range [...]int64{r.At, r.Priority, r.RunAt, r.MaxAttempts, r.BackoffBase,
		r.BackoffCap, r.Timeout, r.Attempt, r.Deadline, r.Created, r.Finished} {
		n += nonZero(v != 0)
	}
	n += nonZero(r.Queue != "") + nonZero(r.Key != "") + nonZero(r.Error != "") + nonZero(r.Spec != "") + nonZero(r.Group != "")
	n += nonZero(r.Progress != 0) + nonZero(r.Note != "")
	n += nonZero(r.Result != nil) + nonZero(r.Payload != nil) + nonZero(len(r.History) > 0)
	n += nonZero(len(r.Meta) > 0) + nonZero(r.Flags != 0)
	return n
}

// nonZero is 1 for a field that is written, 0 for one that is not.
func nonZero(written bool) int {
	if written {
		return 1
	}
	return 0
}

// The put methods write one field, its tag then its value, unless the
// value is zero. Each is a check the compiler inlines in front of a call
// that writes, so that the many zero fields of a typical record cost
// nothing.

func (w *recordWriter) putUint(tag int, v uint64) {
	if v != 0 {
		w.writeUint(tag, v)
	}
}

func (w *recordWriter) writeUint(tag int, v uint64) {
	w.do(w.enc.EncodeUint(uint64(tag)))
	w.do(w.enc.EncodeUint(v))
}

func (w *recordWriter) putInt(tag int, v int64) {
	if v != 0 {
		w.writeInt(tag, v)
	}
}

func (w *recordWriter) writeInt(tag int, v int64) {
	w.do(w.enc.EncodeUint(uint64(tag)))
	w.do(w.enc.EncodeInt(v))
}

func (w *recordWriter) putString(tag int, s string) {
	if s != "" {
		w.writeString(tag, s)
	}
}

func (w *recordWriter) writeString(tag int, s string) {
	w.do(w.enc.EncodeUint(uint64(tag)))
	w.do(w.enc.EncodeString(s))
}

// putBytes writes b unless it is nil (an empty, non-nil b is written) and
// returns the offset of its first byte in the entry.
func (w *recordWriter) putBytes(tag int, b []byte) int {
	if b == nil {
		return 0
	}
	w.do(w.enc.EncodeUint(uint64(tag)))
	w.do(w.enc.EncodeBytesLen(len(b)))
	at := w.buf.Len()
	_, err := w.buf.Write(b)
	w.do(err)
	return at
}

// putHistory writes h, if not empty, as an array of attempts.
func (w *recordWriter) putHistory(h []Attempt) {
	if len(h) == 0 {
		return
	}
	w.do(w.enc.EncodeUint(tagHistory))
	w.do(w.enc.EncodeArrayLen(len(h)))
	for _, a := range h {
		numbered := a.Number != 0 || a.Lease != 0
		n := attemptFields
		if numbered {
			n = attemptFieldsNumbered
		}
		w.do(w.enc.EncodeArrayLen(n))
		w.do(w.enc.EncodeInt(a.Started))
		w.do(w.enc.EncodeInt(a.Ended))
		w.do(w.enc.EncodeUint(uint64(a.Outcome)))
		w.do(w.enc.EncodeString(a.Error))
		if numbered {
			w.do(w.enc.EncodeInt(int64(a.Number)))
			w.do(w.enc.EncodeInt(int64(a.Lease)))
		}
	}
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
	case tagProgress:
		return &r.Progress
	default: // tagFinished; decodeRecord has ruled out unknown tags
		return &r.Finished
	}
}
