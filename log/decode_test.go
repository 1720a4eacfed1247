package log

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestDecodeAnyEncoding: the hand-written reader decodes a value in every
// msgpack form the library would accept for it (fixed-width integers of
// every size and signedness, nil, str and bin, 16- and 32-bit headers),
// not only the compact forms EncodeEntry writes, so that entries written
// by any msgpack encoder of the same records decode alike. Each case
// encodes one record with the library's Encoder and compares the decoded
// record with the expected one.
func TestDecodeAnyEncoding(t *testing.T) {
	t.Parallel()
	type kv = func(e *msgpack.Encoder, b *bytes.Buffer)
	ints := map[string]func(e *msgpack.Encoder, v int64) error{
		"uint8":  func(e *msgpack.Encoder, v int64) error { return e.EncodeUint8(uint8(v)) },
		"uint16": func(e *msgpack.Encoder, v int64) error { return e.EncodeUint16(uint16(v)) },
		"uint32": func(e *msgpack.Encoder, v int64) error { return e.EncodeUint32(uint32(v)) },
		"uint64": func(e *msgpack.Encoder, v int64) error { return e.EncodeUint64(uint64(v)) },
		"int8":   func(e *msgpack.Encoder, v int64) error { return e.EncodeInt8(int8(v)) },
		"int16":  func(e *msgpack.Encoder, v int64) error { return e.EncodeInt16(int16(v)) },
		"int32":  func(e *msgpack.Encoder, v int64) error { return e.EncodeInt32(int32(v)) },
		"int64":  func(e *msgpack.Encoder, v int64) error { return e.EncodeInt64(v) },
		"compact": func(e *msgpack.Encoder, v int64) error {
			return e.EncodeInt(v)
		},
	}
	for name, enc := range ints {
		for _, v := range []int64{0, 1, 100, -1, -100} {
			if name[0] == 'u' && v < 0 {
				continue
			}
			body := new(bytes.Buffer)
			e := msgpack.NewEncoder(body)
			e.EncodeArrayLen(1)
			body.Write([]byte{0xde, 0, 4}) // map16, 4 fields
			e.EncodeUint(tagKind)
			enc(e, int64(KindEnqueued))
			e.EncodeUint(tagJob)
			enc(e, 7)
			e.EncodeUint(tagPriority)
			enc(e, v)
			e.EncodeUint(tagQueue)
			e.EncodeString("q")
			want := Record{Kind: KindEnqueued, Job: 7, Priority: v, Queue: "q"}
			checkDecoded(t, name, body.Bytes(), want)
		}
	}
	forms := map[string]kv{
		"nil payload": func(e *msgpack.Encoder, b *bytes.Buffer) {
			e.EncodeUint(tagPayload)
			e.EncodeNil()
		},
		"str8 key, bin16 payload, str32 error": func(e *msgpack.Encoder, b *bytes.Buffer) {
			e.EncodeUint(tagKey)
			b.Write([]byte{0xd9, 2, 'k', '1'})
			e.EncodeUint(tagPayload)
			b.Write([]byte{0xc5, 0, 3, 'a', 'b', 'c'})
			e.EncodeUint(tagError)
			b.Write([]byte{0xdb, 0, 0, 0, 1, 'x'})
		},
		"payload as str, key as bin": func(e *msgpack.Encoder, b *bytes.Buffer) {
			e.EncodeUint(tagPayload)
			e.EncodeString("abc")
			e.EncodeUint(tagKey)
			e.EncodeBytes([]byte("k1"))
		},
		"history in array16 and array32": func(e *msgpack.Encoder, b *bytes.Buffer) {
			e.EncodeUint(tagHistory)
			b.Write([]byte{0xdc, 0, 1})       // array16 of 1
			b.Write([]byte{0xdd, 0, 0, 0, 4}) // array32 of 4
			e.EncodeInt64(-3)
			e.EncodeUint64(9)
			e.EncodeUint8(uint8(KindFailed))
			e.EncodeNil()
		},
	}
	wants := map[string]Record{
		"nil payload":                          {Kind: KindEnqueued, Job: 7},
		"str8 key, bin16 payload, str32 error": {Kind: KindEnqueued, Job: 7, Key: "k1", Payload: []byte("abc"), Error: "x"},
		"payload as str, key as bin":           {Kind: KindEnqueued, Job: 7, Payload: []byte("abc"), Key: "k1"},
		"history in array16 and array32": {Kind: KindEnqueued, Job: 7,
			History: []Attempt{{Started: -3, Ended: 9, Outcome: KindFailed}}},
	}
	for name, write := range forms {
		body := new(bytes.Buffer)
		e := msgpack.NewEncoder(body)
		e.EncodeArrayLen(1)
		n := 2 + map[string]int{"nil payload": 1, "str8 key, bin16 payload, str32 error": 3,
			"payload as str, key as bin": 2, "history in array16 and array32": 1}[name]
		body.Write([]byte{0xdf, 0, 0, 0, byte(n)}) // map32
		e.EncodeUint(tagKind)
		e.EncodeUint(uint64(KindEnqueued))
		e.EncodeUint(tagJob)
		e.EncodeUint(7)
		write(e, body)
		checkDecoded(t, name, body.Bytes(), wants[name])
	}
}

func checkDecoded(t *testing.T, name string, body []byte, want Record) {
	t.Helper()
	var got []Record
	err := DecodeEntry(3, seal(3, FormatVersion, body), func(_ int, r *Record) error {
		c := *r
		c.PayloadAt, c.ResultAt = 0, 0
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("%s: decoded %+v, want %+v", name, got, want)
	}
}

// BenchmarkDecodeEntry decodes a typical enqueue entry (one record, a
// 256-byte payload, a key).
func BenchmarkDecodeEntry(b *testing.B) {
	recs := enqueue(1, 256)
	recs[0].Key = "order-42/charge"
	data, err := EncodeEntry(1, recs)
	if err != nil {
		b.Fatal(err)
	}
	names := map[string]string{}
	var r Record
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeRecords(data, names, &r, func(int, *Record) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
