package log

import (
	"bytes"
	"hash/crc32"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// refEncodeBody is the encoder walq used before it wrote msgpack itself:
// msgpack/v5's Encoder, value by value. Entries are part of the on-disk
// format, so the encoder must keep writing them byte for byte the same.
func refEncodeBody(recs []Record) ([]byte, uint32) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0, FormatVersion})
	e := msgpack.NewEncoder(&buf)
	e.EncodeArrayLen(len(recs))
	for i := range recs {
		r := &recs[i]
		e.EncodeMapLen(fieldCount(r))
		u := func(tag int, v uint64) {
			if v != 0 {
				e.EncodeUint(uint64(tag))
				e.EncodeUint(v)
			}
		}
		n := func(tag int, v int64) {
			if v != 0 {
				e.EncodeUint(uint64(tag))
				e.EncodeInt(v)
			}
		}
		s := func(tag int, v string) {
			if v != "" {
				e.EncodeUint(uint64(tag))
				e.EncodeString(v)
			}
		}
		b := func(tag int, v []byte) {
			if v != nil {
				e.EncodeUint(uint64(tag))
				e.EncodeBytesLen(len(v))
				buf.Write(v)
			}
		}
		u(tagKind, uint64(r.Kind))
		u(tagJob, r.Job)
		u(tagNextID, r.NextID)
		n(tagAt, r.At)
		n(tagPriority, r.Priority)
		n(tagRunAt, r.RunAt)
		n(tagMaxAttempts, r.MaxAttempts)
		n(tagBackoffBase, r.BackoffBase)
		n(tagBackoffCap, r.BackoffCap)
		n(tagTimeout, r.Timeout)
		n(tagAttempt, r.Attempt)
		n(tagDeadline, r.Deadline)
		n(tagState, int64(r.State))
		n(tagCreated, r.Created)
		n(tagFinished, r.Finished)
		s(tagQueue, r.Queue)
		s(tagKey, r.Key)
		s(tagError, r.Error)
		b(tagResult, r.Result)
		b(tagPayload, r.Payload)
		if len(r.Meta) > 0 {
			e.EncodeUint(tagMeta)
			buf.Write(r.Meta)
		}
		if len(r.History) > 0 {
			e.EncodeUint(tagHistory)
			e.EncodeArrayLen(len(r.History))
			for _, a := range r.History {
				numbered := a.Number != 0 || a.Lease != 0
				if numbered {
					e.EncodeArrayLen(attemptFieldsNumbered)
				} else {
					e.EncodeArrayLen(attemptFields)
				}
				e.EncodeInt(a.Started)
				e.EncodeInt(a.Ended)
				e.EncodeUint(uint64(a.Outcome))
				e.EncodeString(a.Error)
				if numbered {
					e.EncodeInt(int64(a.Number))
					e.EncodeInt(int64(a.Lease))
				}
			}
		}
	}
	return buf.Bytes(), crc32.Checksum(buf.Bytes()[4:], castagnoli)
}

// edgeInt draws integers at and around every boundary of msgpack's integer
// forms, and any other.
func edgeInt(t *rapid.T, label string) int64 {
	edges := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	if rapid.Bool().Draw(t, label+"-edge") {
		return rapid.SampledFrom(edges).Draw(t, label)
	}
	return rapid.Int64().Draw(t, label)
}

// edgeLen draws lengths at the boundaries of msgpack's str and bin forms.
func edgeLen(t *rapid.T, label string) int {
	return rapid.SampledFrom([]int{0, 1, 31, 32, 255, 256, 65535, 65536}).Draw(t, label)
}

// The hand-written encoder writes every record exactly as msgpack/v5's
// Encoder did, byte for byte, including every integer, string and bytes
// form at its boundaries.
func TestEncoderMatchesMsgpack(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		recs := make([]Record, rapid.IntRange(1, 20).Draw(t, "n"))
		for i := range recs {
			r := &recs[i]
			r.Kind = Kind(rapid.IntRange(1, kindMax-1).Draw(t, "kind"))
			r.Job = uint64(edgeInt(t, "job"))
			r.NextID = uint64(edgeInt(t, "next"))
			r.State = uint8(rapid.IntRange(0, 255).Draw(t, "state"))
			for _, f := range []*int64{&r.At, &r.Priority, &r.RunAt, &r.MaxAttempts, &r.BackoffBase,
				&r.BackoffCap, &r.Timeout, &r.Attempt, &r.Deadline, &r.Created, &r.Finished} {
				*f = edgeInt(t, "int")
			}
			r.Queue = string(bytes.Repeat([]byte("q"), edgeLen(t, "queue")))
			r.Key = string(bytes.Repeat([]byte("k"), edgeLen(t, "key")))
			r.Error = string(bytes.Repeat([]byte("e"), edgeLen(t, "error")))
			if rapid.Bool().Draw(t, "payload") {
				r.Payload = bytes.Repeat([]byte{7}, edgeLen(t, "payload-len"))
			}
			if rapid.Bool().Draw(t, "result") {
				r.Result = bytes.Repeat([]byte{9}, edgeLen(t, "result-len"))
			}
			if rapid.Bool().Draw(t, "meta") {
				r.Meta = EncodeMeta(map[string]string{"a": "b", "trace": "xyz"})
			}
			for range rapid.IntRange(0, 3).Draw(t, "history") {
				r.History = append(r.History, Attempt{
					Started: edgeInt(t, "started"), Ended: edgeInt(t, "ended"),
					Number: int32(edgeInt(t, "number")), Lease: int32(edgeInt(t, "lease")),
					Outcome: Kind(rapid.IntRange(0, 255).Draw(t, "outcome")),
					Error:   string(bytes.Repeat([]byte("x"), edgeLen(t, "attempt-error"))),
				})
			}
		}
		want, wantCRC := refEncodeBody(recs)
		var buf entryBuf
		gotCRC, err := encodeBody(&buf, recs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) || gotCRC != wantCRC {
			t.Fatalf("encodeBody wrote %d bytes (crc %08x), msgpack/v5 %d (crc %08x); first difference at %d",
				len(buf.Bytes()), gotCRC, len(want), wantCRC, firstDiff(buf.Bytes(), want))
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
