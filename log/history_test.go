package log

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestHistoryNumbersRoundTrip: attempts with numbers are written in the
// six-field form and come back with them; attempts without (requeue
// markers) keep the four-field form; both mix in one history.
func TestHistoryNumbersRoundTrip(t *testing.T) {
	t.Parallel()
	in := []Record{{Kind: KindCarry, Job: 9, Queue: "q", Payload: []byte{}, History: []Attempt{
		{Started: 10, Ended: 11, Outcome: KindReleased, Number: 1, Lease: 1},
		{Started: 12, Ended: 13, Outcome: KindDead, Error: "boom", Number: 1, Lease: 2},
		{Started: 14, Ended: 14, Outcome: KindRequeued},
		{Started: 15, Number: math.MaxInt32, Lease: math.MaxInt32},
	}}}
	data, err := EncodeEntry(4, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(4, data)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRecords(got, in) {
		t.Fatalf("round trip changed the history:\n got %+v\nwant %+v", got[0].History, in[0].History)
	}
	// The marker's array has 4 elements (0x94), the others 6 (0x96).
	if n4, n6 := bytes.Count(data, []byte{0x94}), bytes.Count(data, []byte{0x96}); n4 < 1 || n6 < 3 {
		t.Errorf("encoded %d four-field and %d six-field arrays, want at least 1 and 3", n4, n6)
	}
}

// historyEntry encodes an enqueued record of job 7 whose history is the
// given attempt arrays, each written by write.
func historyEntry(attempts ...func(e *msgpack.Encoder)) []byte {
	body := new(bytes.Buffer)
	e := msgpack.NewEncoder(body)
	e.EncodeArrayLen(1)
	e.EncodeMapLen(3)
	e.EncodeUint(tagKind)
	e.EncodeUint(uint64(KindEnqueued))
	e.EncodeUint(tagJob)
	e.EncodeUint(7)
	e.EncodeUint(tagHistory)
	e.EncodeArrayLen(len(attempts))
	for _, a := range attempts {
		a(e)
	}
	return body.Bytes()
}

// TestHistoryDecodeForms: the four-field form older walq wrote decodes
// with zero numbers; other lengths, and numbers beyond 32 bits, are
// corruption.
func TestHistoryDecodeForms(t *testing.T) {
	t.Parallel()
	old := func(e *msgpack.Encoder) {
		e.EncodeArrayLen(4)
		e.EncodeInt(5)
		e.EncodeInt(6)
		e.EncodeUint(uint64(KindFailed))
		e.EncodeString("x")
	}
	checkDecoded(t, "four fields", historyEntry(old, old), Record{Kind: KindEnqueued, Job: 7,
		History: []Attempt{{Started: 5, Ended: 6, Outcome: KindFailed, Error: "x"}, {Started: 5, Ended: 6, Outcome: KindFailed, Error: "x"}}})

	for name, bad := range map[string]func(e *msgpack.Encoder){
		"five fields": func(e *msgpack.Encoder) {
			e.EncodeArrayLen(5)
			e.EncodeInt(5)
			e.EncodeInt(6)
			e.EncodeUint(uint64(KindFailed))
			e.EncodeString("x")
			e.EncodeInt(1)
		},
		"lease beyond 32 bits": func(e *msgpack.Encoder) {
			e.EncodeArrayLen(6)
			e.EncodeInt(5)
			e.EncodeInt(6)
			e.EncodeUint(uint64(KindFailed))
			e.EncodeString("x")
			e.EncodeInt(1)
			e.EncodeInt(math.MaxInt32 + 1)
		},
	} {
		err := DecodeEntry(3, seal(3, FormatVersion, historyEntry(old, bad)), func(int, *Record) error { return nil })
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
