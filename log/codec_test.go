package log

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testAt = 1_700_000_000_000_000_000 // a Unix-nanosecond timestamp

// sampleRecord returns a record of kind k with every field its kind
// documents set to a non-zero value, and false for a kind it does not know
// (so that a new kind fails the round-trip test until it gets a sample).
func sampleRecord(k Kind) (Record, bool) {
	r := Record{Kind: k, Job: 42, At: testAt}
	switch k {
	case KindEnqueued:
		r.Queue, r.Key, r.Payload = "emails", "welcome:42", []byte(`{"to":"a@example.com"}`)
		r.Priority, r.RunAt, r.MaxAttempts = -3, testAt+5e9, 25
		r.BackoffBase, r.BackoffCap, r.Timeout = 1e9, 3600e9, 30e9
	case KindLeased:
		r.Attempt, r.Deadline = 1, testAt+30e9
	case KindCompleted:
		r.Attempt, r.Result = 1, []byte(`{"sent":true}`)
	case KindFailed:
		r.Attempt, r.Error, r.RunAt = 2, "smtp: 451 try again later", testAt+2e9
	case KindDead:
		r.Attempt, r.Error = 25, "gave up: 550 no such user"
	case KindRequeued:
		r.Queue, r.RunAt = "emails-retry", testAt+1
	case KindCancelled, KindPurged:
	case KindCarry:
		r.Queue, r.Key, r.Payload = "emails", "welcome:42", []byte("carried payload")
		r.Priority, r.RunAt, r.MaxAttempts = 7, testAt+9e9, 5
		r.BackoffBase, r.BackoffCap, r.Timeout = 2e9, 60e9, 10e9
		r.State, r.Attempt, r.Error, r.Result = 4, 3, "last error", []byte("partial")
		r.Deadline, r.Created, r.Finished = testAt+1e9, testAt-100e9, testAt+2e9
		r.History = []Attempt{
			{Started: testAt - 50e9, Ended: testAt - 49e9, Outcome: KindFailed, Error: "boom"},
			{Started: testAt - 20e9, Ended: testAt - 10e9, Outcome: KindExpired},
			{Started: testAt - 1e9}, // still running: Ended, Outcome and Error are zero
		}
	case KindExpired, KindReleased:
		r.Attempt, r.RunAt = 3, testAt+1e9
	case KindExtended:
		r.Attempt, r.Deadline = 3, testAt+60e9
	case KindPaused, KindResumed:
		r.Job, r.Queue = 0, "emails"
	case KindCheckpoint:
		r.Job, r.NextID = 0, 1<<40+17
	case KindSchedule:
		r.Job, r.Key, r.Spec, r.Queue = 0, "nightly-report", "0 3 * * *", "reports"
		r.Payload, r.Priority, r.MaxAttempts, r.Timeout = []byte(`{"kind":"daily"}`), 2, 3, 60e9
		r.State, r.Created, r.RunAt = 1, testAt-86400e9, testAt-3600e9
	case KindBatch:
		r.Job, r.Attempt, r.Queue, r.Payload = 40, 3, "callbacks", []byte(`{"order":7}`)
	case KindProgress:
		r.Attempt, r.Progress, r.Note = 2, 40, "resized 40 of 100 images"
	default:
		return r, false
	}
	return r, true
}

// decodeAll decodes an entry and returns copies of its records.
func decodeAll(index uint64, data []byte) ([]Record, error) {
	var out []Record
	err := DecodeEntry(index, data, func(i int, r *Record) error {
		if i != len(out) {
			return errors.New("records out of order")
		}
		out = append(out, cloneRecord(r))
		return nil
	})
	return out, err
}

// checkPayloadAt asserts that each decoded record's PayloadAt and ResultAt
// equal the ones the encoder set and locate the Payload and Result bytes in
// data; a nil slice has offset 0.
func checkPayloadAt(t *testing.T, data []byte, want, got []Record) {
	t.Helper()
	for i := range want {
		for _, f := range []struct {
			name         string
			b            []byte
			encAt, decAt int
		}{
			{"Payload", want[i].Payload, want[i].PayloadAt, got[i].PayloadAt},
			{"Result", want[i].Result, want[i].ResultAt, got[i].ResultAt},
		} {
			if f.b == nil {
				if f.decAt != 0 {
					t.Errorf("record %d: nil %s but offset %d", i, f.name, f.decAt)
				}
				continue
			}
			if f.decAt != f.encAt {
				t.Errorf("record %d: decoder %sAt %d, encoder %d", i, f.name, f.decAt, f.encAt)
			}
			if f.decAt < entryHeader || f.decAt+len(f.b) > len(data) || !bytes.Equal(data[f.decAt:f.decAt+len(f.b)], f.b) {
				t.Errorf("record %d: %sAt %d does not point at its %d bytes", i, f.name, f.decAt, len(f.b))
			}
		}
	}
}

// checkAliasing asserts that the decoder hands out Payload as a sub-slice of
// the entry at PayloadAt (no copy), as Record's doc says.
func checkAliasing(t *testing.T, index uint64, data []byte) {
	t.Helper()
	err := DecodeEntry(index, data, func(i int, r *Record) error {
		if len(r.Payload) > 0 && &r.Payload[0] != &data[r.PayloadAt] {
			t.Errorf("record %d: Payload does not alias the entry at PayloadAt %d", i, r.PayloadAt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKinds(t *testing.T) {
	t.Parallel()
	ks := Kinds()
	if len(ks) != 18 {
		t.Fatalf("Kinds() has %d kinds, want 18", len(ks))
	}
	seen := map[string]bool{}
	for i, k := range ks {
		if k != Kind(i+1) {
			t.Errorf("Kinds()[%d] = %d, want %d (numeric order, no gaps)", i, k, i+1)
		}
		if !k.Valid() {
			t.Errorf("%v.Valid() = false", k)
		}
		name := k.String()
		if strings.HasPrefix(name, "kind(") || seen[name] {
			t.Errorf("kind %d has name %q (missing or duplicate)", k, name)
		}
		seen[name] = true
	}
	if KindEnqueued.String() != "enqueued" || KindCheckpoint.String() != "checkpoint" {
		t.Errorf("names: %q, %q", KindEnqueued, KindCheckpoint)
	}
	for _, k := range []Kind{0, kindMax, 255} {
		if k.Valid() {
			t.Errorf("Kind(%d).Valid() = true", k)
		}
		if want := "kind(" + strconv.Itoa(int(k)) + ")"; k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

func TestEntryRoundTripEveryKind(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds() {
		t.Run("kind="+k.String(), func(t *testing.T) {
			t.Parallel()
			rec, ok := sampleRecord(k)
			if !ok {
				t.Fatalf("no sample record for kind %v: add one to sampleRecord", k)
			}
			index := 1000 + uint64(k)
			in := []Record{rec}
			data, err := EncodeEntry(index, in)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckEntry(index, data); err != nil {
				t.Fatalf("CheckEntry: %v", err)
			}
			got, err := decodeAll(index, data)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !sameRecords(got, in) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
			}
			checkPayloadAt(t, data, in, got)
			checkAliasing(t, index, data)
		})
	}
}

func TestEntryRoundTripExtremes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  Record
	}{
		{"kind only", Record{Kind: KindCancelled}},
		{"max unsigned", Record{Kind: KindCheckpoint, Job: math.MaxUint64, NextID: math.MaxUint64, State: math.MaxUint8}},
		{"max signed", Record{Kind: KindCarry, At: math.MaxInt64, Priority: math.MaxInt64, RunAt: math.MaxInt64,
			MaxAttempts: math.MaxInt64, BackoffBase: math.MaxInt64, BackoffCap: math.MaxInt64, Timeout: math.MaxInt64,
			Attempt: math.MaxInt64, Deadline: math.MaxInt64, Created: math.MaxInt64, Finished: math.MaxInt64}},
		{"min signed", Record{Kind: KindCarry, At: math.MinInt64, Priority: math.MinInt64, RunAt: -1,
			Created: math.MinInt64, History: []Attempt{{Started: math.MinInt64, Ended: math.MaxInt64, Outcome: KindDead}}}},
		{"unicode strings", Record{Kind: KindFailed, Job: 1, Queue: "очередь/队列", Key: "ключ\x00with nul", Error: strings.Repeat("é", 40000)}},
		{"payload bin8", Record{Kind: KindEnqueued, Job: 2, Payload: payloadFor(2, 200)}},
		{"payload bin16", Record{Kind: KindEnqueued, Job: 3, Payload: payloadFor(3, 300)}},
		{"payload bin32", Record{Kind: KindEnqueued, Job: 4, Payload: payloadFor(4, 70000), Result: payloadFor(5, 70000)}},
		{"long history", Record{Kind: KindCarry, Job: 6, History: manyAttempts(1000)}},
		{"group", Record{Kind: KindEnqueued, Job: 7, Queue: "orders", Group: "customer/42", Payload: []byte{}}},
		{"spec", Record{Kind: KindSchedule, Key: "s", Spec: "CRON_TZ=Asia/Tokyo 0 3 * * *"}},
		{"progress", Record{Kind: KindCarry, Job: 8, Progress: math.MinInt64, Note: "ünïcode"}},
		{"flags", Record{Kind: KindCarry, Job: 9, Key: "k", Flags: FlagReleaseKeyOnDeath | FlagKeyReleased}},
		{"max flags", Record{Kind: KindEnqueued, Job: 10, Flags: math.MaxUint64, Payload: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []Record{tt.rec}
			data, err := EncodeEntry(math.MaxUint64, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeAll(math.MaxUint64, data)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !sameRecords(got, in) {
				t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", got[0], in[0])
			}
		})
	}
}

func manyAttempts(n int) []Attempt {
	h := make([]Attempt, n)
	for i := range h {
		h[i] = Attempt{Started: int64(i), Ended: int64(i) + 1, Outcome: KindFailed, Error: "e" + strconv.Itoa(i)}
	}
	return h
}

// TestEntryMultiRecord puts one record of every kind in one entry: they come
// back in order, each with its own payload location.
func TestEntryMultiRecord(t *testing.T) {
	t.Parallel()
	var in []Record
	for _, k := range Kinds() {
		r, _ := sampleRecord(k)
		r.Job = uint64(k) * 10
		in = append(in, r)
	}
	// Two payload-bearing records after a history (the decoder reuses the
	// History array between records; it must not leak into the next one).
	in = append(in, Record{Kind: KindEnqueued, Job: 99, Payload: []byte("tail payload")},
		Record{Kind: KindCompleted, Job: 99, Result: []byte("r")})
	const index = 77
	data, err := EncodeEntry(index, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(index, data)
	if err != nil {
		t.Fatalf("DecodeEntry: %v", err)
	}
	if !sameRecords(got, in) {
		t.Fatalf("multi-record round trip:\n got %+v\nwant %+v", got, in)
	}
	checkPayloadAt(t, data, in, got)
	checkAliasing(t, index, data)
}

// TestEntryPayloadNilVersusEmpty documents how nil and empty byte slices are
// encoded: a nil Payload or Result is not written at all and decodes as nil;
// an empty one is written (as a zero-length bin) and decodes as a non-nil
// empty slice, with PayloadAt pointing just past its header.
func TestEntryPayloadNilVersusEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		payload   []byte
		result    []byte
		wantBytes int // entry size
	}{
		{"nil", nil, nil, 5 + 1 + 1 + 2},
		{"empty", []byte{}, []byte{}, 5 + 1 + 1 + 2 + 3 + 3},
		{"one byte", []byte{7}, []byte{8}, 5 + 1 + 1 + 2 + 4 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []Record{{Kind: KindCompleted, Payload: tt.payload, Result: tt.result}}
			data, err := EncodeEntry(1, in)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != tt.wantBytes {
				t.Errorf("entry is %d bytes, want %d", len(data), tt.wantBytes)
			}
			var got Record
			err = DecodeEntry(1, data, func(_ int, r *Record) error { got = *r; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if (got.Payload == nil) != (tt.payload == nil) || !bytes.Equal(got.Payload, tt.payload) {
				t.Errorf("Payload = %#v, want %#v", got.Payload, tt.payload)
			}
			if (got.Result == nil) != (tt.result == nil) || !bytes.Equal(got.Result, tt.result) {
				t.Errorf("Result = %#v, want %#v", got.Result, tt.result)
			}
			checkPayloadAt(t, data, in, []Record{got})
			switch {
			case tt.payload == nil && got.PayloadAt != 0:
				t.Errorf("nil payload: PayloadAt = %d, want 0", got.PayloadAt)
			case tt.payload != nil && got.PayloadAt != in[0].PayloadAt:
				t.Errorf("decoder PayloadAt %d, encoder %d", got.PayloadAt, in[0].PayloadAt)
			case tt.payload != nil && !bytes.Equal(data[got.PayloadAt:got.PayloadAt+len(tt.payload)], tt.payload):
				t.Errorf("PayloadAt %d does not point at the payload", got.PayloadAt)
			}
		})
	}
}

// TestDecodeEntryCallbackError checks that an error from fn stops decoding
// and comes back as it is, not as corruption.
func TestDecodeEntryCallbackError(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop here")
	data, err := EncodeEntry(3, []Record{{Kind: KindLeased}, {Kind: KindLeased}, {Kind: KindLeased}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = DecodeEntry(3, data, func(i int, r *Record) error {
		calls++
		if i == 1 {
			return stop
		}
		return nil
	})
	if err != stop || errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeEntry = %v, want the callback's error unchanged", err)
	}
	if calls != 2 {
		t.Fatalf("fn called %d times, want 2", calls)
	}
}

// TestDecodeEntryEveryBitFlip flips every bit of an entry: each flip must be
// caught by the checksum and reported as a *CorruptError, never decoded.
func TestDecodeEntryEveryBitFlip(t *testing.T) {
	t.Parallel()
	r1, _ := sampleRecord(KindEnqueued)
	r2, _ := sampleRecord(KindCarry)
	const index = 12345
	data, err := EncodeEntry(index, []Record{r1, r2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		for bit := range uint(8) {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			err := DecodeEntry(index, bad, func(int, *Record) error {
				t.Fatalf("byte %d bit %d: a record was decoded from a corrupt entry", i, bit)
				return nil
			})
			ce := mustCorrupt(t, err)
			if ce.Record != -1 || ce.Segment != "" {
				t.Fatalf("byte %d bit %d: %+v, want a checksum failure without location", i, bit, ce)
			}
			if CheckEntry(index, bad) == nil {
				t.Fatalf("byte %d bit %d: CheckEntry accepted it", i, bit)
			}
		}
	}
}

func TestDecodeEntryWrongIndex(t *testing.T) {
	t.Parallel()
	const index = 1 << 33
	data, err := EncodeEntry(index, []Record{{Kind: KindPurged, Job: 9}})
	if err != nil {
		t.Fatal(err)
	}
	for _, other := range []uint64{0, 1, index - 1, index + 1, index | 1<<63} {
		err := DecodeEntry(other, data, func(int, *Record) error { return nil })
		ce := mustCorrupt(t, err)
		if !strings.Contains(ce.Reason, "checksum") {
			t.Errorf("index %d: reason %q, want a checksum mismatch", other, ce.Reason)
		}
	}
}

func TestDecodeEntryShortAndZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"zero length", []byte{}},
		{"4 bytes", []byte{1, 2, 3, 4}},
		{"header only", seal(1, FormatVersion, nil)},
		{"5 zero bytes", make([]byte, 5)},
		{"6 zero bytes", make([]byte, 6)},
		{"100 zero bytes", make([]byte, 100)},
		{"4096 zero bytes", make([]byte, 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, index := range []uint64{0, 1, 2, 1 << 40} {
				err := DecodeEntry(index, tt.data, func(int, *Record) error {
					t.Fatal("decoded a record")
					return nil
				})
				mustCorrupt(t, err)
			}
		})
	}
}

// TestDecodeEntryVersion checks that an entry with a correct checksum but an
// unknown version is refused with ErrVersion (and ErrCorrupt).
func TestDecodeEntryVersion(t *testing.T) {
	t.Parallel()
	good, err := EncodeEntry(5, []Record{{Kind: KindPaused, Queue: "q"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{0, 2, 255} {
		t.Run("version="+strconv.Itoa(int(v)), func(t *testing.T) {
			t.Parallel()
			data := seal(5, v, good[entryHeader:])
			for _, check := range []func() error{
				func() error { return CheckEntry(5, data) },
				func() error { return DecodeEntry(5, data, func(int, *Record) error { return nil }) },
			} {
				err := check()
				mustCorrupt(t, err)
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("errors.Is(%v, ErrVersion) = false", err)
				}
			}
		})
	}
}

// hostileBodies are msgpack bodies that pass the checksum (seal fixes it up)
// but must be refused: malformed, inconsistent, or claiming sizes far beyond
// the bytes present. record is the position the error should name, -1 for
// an error in the record list itself.
var hostileBodies = []struct {
	name   string
	body   []byte
	record int
}{
	{"no records", []byte{0x90}, -1},
	{"nil record list", []byte{0xc0}, -1},
	{"not an array", []byte{0x01}, -1},
	{"2^31 records", []byte{0xdd, 0x80, 0, 0, 0, 0x81, 0x01, 0x01, 0x81, 0x01, 0x01, 0x81, 0x01, 0x01}, -1},
	{"2^32-1 records", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01, 0x01}, -1},
	{"more records than bytes", []byte{0x92, 0x81, 0x01, 0x01}, -1},
	{"2^31 fields", []byte{0x91, 0xdf, 0x80, 0, 0, 0, 0x01, 0x01}, 0},
	{"empty map", []byte{0x91, 0x80, 0x00}, 0},
	{"field tag 0", []byte{0x91, 0x82, 0x00, 0x01, 0x01, 0x01}, 0},
	{"field tag 22", []byte{0x91, 0x82, 0x01, 0x01, 0x16, 0x01}, 0},
	{"huge field tag", []byte{0x91, 0x82, 0x01, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0},
	{"duplicate tag", []byte{0x91, 0x82, 0x01, 0x01, 0x01, 0x02}, 0},
	{"missing kind", []byte{0x91, 0x81, 0x02, 0x05}, 0},
	{"kind 0", []byte{0x91, 0x81, 0x01, 0x00}, 0},
	{"kind 19", []byte{0x91, 0x81, 0x01, 0x13}, 0},
	{"second record bad", []byte{0x92, 0x81, 0x01, 0x01, 0x81, 0x01, 0x63}, 1},
	{"truncated record", []byte{0x91, 0x83, 0x01, 0x01, 0x02}, 0},
	{"trailing bytes", []byte{0x91, 0x81, 0x01, 0x01, 0x00}, -1},
	{"string where int", []byte{0x91, 0x82, 0x01, 0x01, 0x03, 0xa1, 'x'}, 0},
	{"int where string", []byte{0x91, 0x82, 0x01, 0x01, 0x04, 0x05}, 0},
	{"2^31 history", []byte{0x91, 0x82, 0x01, 0x08, 0x12, 0xdd, 0x80, 0, 0, 0, 0x94, 0, 0, 0, 0xa0}, 0},
	{"attempt of 3 fields", []byte{0x91, 0x82, 0x01, 0x08, 0x12, 0x91, 0x93, 0x01, 0x02, 0x03}, 0},
	{"2^31-byte payload", []byte{0x91, 0x82, 0x01, 0x01, 0x06, 0xc6, 0x80, 0, 0, 0, 'a', 'b', 'c'}, 0},
	{"payload past end", []byte{0x91, 0x82, 0x01, 0x01, 0x06, 0xc4, 0x09, 'a', 'b'}, 0},
	{"2^31-byte result", []byte{0x91, 0x82, 0x01, 0x03, 0x10, 0xc6, 0x80, 0, 0, 0, 'a', 'b', 'c'}, 0},
	{"2^31-byte queue", []byte{0x91, 0x82, 0x01, 0x01, 0x04, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'}, 0},
	{"2^31-byte error", []byte{0x91, 0x82, 0x01, 0x04, 0x0f, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'}, 0},
	{"2^31-byte attempt error", []byte{0x91, 0x82, 0x01, 0x08, 0x12, 0x91, 0x94, 0x01, 0x02, 0x03, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b'}, 0},
}

func TestDecodeEntryHostile(t *testing.T) {
	t.Parallel()
	for _, tt := range hostileBodies {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const index = 9
			data := seal(index, FormatVersion, tt.body)
			if err := CheckEntry(index, data); err != nil {
				t.Fatalf("CheckEntry refused a sealed entry: %v", err)
			}
			start := time.Now()
			err := DecodeEntry(index, data, func(int, *Record) error { return nil })
			if d := time.Since(start); d > time.Second {
				t.Errorf("refusing %d bytes took %v", len(data), d)
			}
			ce := mustCorrupt(t, err)
			if ce.Record != tt.record {
				t.Errorf("Record = %d, want %d (%v)", ce.Record, tt.record, err)
			}
		})
	}
}

// TestDecodeEntryHostileAllocation checks the rule "a size limit is checked
// before any allocation when decoding": a few dozen bytes that claim 2^31
// records, fields, attempts or bytes must be refused without allocating
// anywhere near what they claim. It measures bytes allocated, so it is not
// parallel.
func TestDecodeEntryHostileAllocation(t *testing.T) {
	const limit = 64 << 10 // bytes per decode; a real decode here needs < 1 KiB
	for _, tt := range hostileBodies {
		if !strings.HasPrefix(tt.name, "2^") {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			data := seal(9, FormatVersion, tt.body)
			decode := func() { _ = DecodeEntry(9, data, func(int, *Record) error { return nil }) }
			// Few runs, from empty pools: msgpack's pooled decoder keeps
			// the buffer it grew for a claimed length, so every further
			// hostile decode grows it by another MiB.
			runtime.GC()
			runtime.GC()
			if b := bytesPerRun(3, decode); b > limit {
				t.Errorf("BUG: refusing a %d-byte entry that claims a huge length allocates %d bytes per decode (limit %d)",
					len(data), b, limit)
			}
		})
	}
}

// bytesPerRun returns the average heap bytes allocated by one call of f.
func bytesPerRun(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// TestEncodeEntryInvalidKind: a record of a kind the decoder refuses must
// not be encodable, or the log would make it durable and then refuse to
// replay it (see TestAppendInvalidKind).
func TestEncodeEntryInvalidKind(t *testing.T) {
	t.Parallel()
	for _, k := range []Kind{0, kindMax, 200} {
		t.Run("kind="+strconv.Itoa(int(k)), func(t *testing.T) {
			t.Parallel()
			data, err := EncodeEntry(1, []Record{{Kind: k, Job: 1}})
			if err != nil {
				return // refused up front: good
			}
			if _, derr := decodeAll(1, data); derr != nil {
				t.Errorf("BUG: EncodeEntry accepted %v but DecodeEntry refuses what it wrote: %v", k, derr)
			}
		})
	}
}

func TestCorruptErrorFormat(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	tests := []struct {
		name string
		err  *CorruptError
		want string
	}{
		{"no location", corruptf(nil, "bad %s", "thing"), "walq/log: corrupt log: bad thing"},
		{"full", &CorruptError{Segment: "/d/00000000000000000001", Offset: 12, Index: 3, Record: 1, Reason: "r", Err: cause},
			"walq/log: corrupt log: segment /d/00000000000000000001 offset 12 index 3 record 1: r: cause"},
		{"index only", &CorruptError{Offset: -1, Index: 7, Record: -1, Reason: "r"}, "walq/log: corrupt log: index 7: r"},
		{"segment and index", corruptAt("/d/00000000000000000001", -1, 3, "r", nil),
			"walq/log: corrupt log: segment /d/00000000000000000001 index 3: r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if loc := tt.err.Location(); !strings.Contains(tt.want, ": "+loc+": ") && loc != "" {
				t.Errorf("Location() = %q is not the location in %q", loc, tt.want)
			}
			if !errors.Is(tt.err, ErrCorrupt) {
				t.Error("not ErrCorrupt")
			}
			if (tt.err.Err != nil) != errors.Is(tt.err, cause) {
				t.Error("Unwrap does not reach the cause")
			}
		})
	}
	// locate fills in only what is unknown.
	err := locate(&CorruptError{Offset: -1, Record: -1, Index: 7}, "seg", 40, 9)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Segment != "seg" || ce.Offset != 40 || ce.Index != 7 {
		t.Errorf("locate: %+v", ce)
	}
}

// encodingDigest encodes one record of every kind, the extremes of
// TestEntryRoundTripExtremes and a batch of them all, and returns the
// SHA-256 of the entries' bytes and of the payload and result offsets the
// encoder reported.
func encodingDigest(t *testing.T) string {
	t.Helper()
	var all []Record
	for _, k := range Kinds() {
		if k > KindCheckpoint {
			continue // newer kinds are pinned by TestEncodingStableNewKinds
		}
		r, _ := sampleRecord(k)
		all = append(all, r)
	}
	all = append(all,
		Record{Kind: KindCarry, Job: 6, History: manyAttempts(40)},
		Record{Kind: KindCarry, Job: 7, History: []Attempt{{Started: 1, Number: 2, Lease: 3, Outcome: KindReleased}}},
		Record{Kind: KindCompleted, Job: 8, Result: []byte{}},
		Record{Kind: KindEnqueued, Job: 9, Payload: payloadFor(9, 70000), Result: payloadFor(10, 300)},
		Record{Kind: KindCheckpoint, Job: math.MaxUint64, NextID: math.MaxUint64, State: math.MaxUint8, At: math.MinInt64})
	h := sha256.New()
	entry := func(index uint64, recs []Record) {
		data, err := EncodeEntry(index, recs)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data)
		for _, r := range recs {
			fmt.Fprintf(h, "%d/%d;", r.PayloadAt, r.ResultAt)
		}
	}
	for i := range all {
		entry(uint64(i+1), all[i:i+1])
	}
	entry(1<<40, all)
	return hex.EncodeToString(h.Sum(nil))
}

// TestEncodingStableNewKinds pins the bytes of the kinds added after
// TestEncodingStable's digest was taken, so that adding them provably left
// every older record's bytes unchanged.
func TestEncodingStableNewKinds(t *testing.T) {
	t.Parallel()
	const want = "e6a355d35b1e4d0c15c3e64c8631c32aec2ad40d7e7436ecc52261fad3a704d6"
	h := sha256.New()
	for _, k := range Kinds() {
		if k <= KindCheckpoint {
			continue
		}
		r, _ := sampleRecord(k)
		data, err := EncodeEntry(uint64(k), []Record{r})
		if err != nil {
			t.Fatal(err)
		}
		h.Write(data)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("the encoder's bytes changed: digest %s, want %s", got, want)
	}
}

// TestEncodingStable pins the bytes the encoder writes: a change of the
// encoder's code must not change the on-disk format (readers would still
// decode a reordered map, but a checksum-identical format keeps old and new
// binaries' logs byte for byte the same and benchmarks comparable).
func TestEncodingStable(t *testing.T) {
	t.Parallel()
	const want = "a8bc14c0a98803814fba7746e73f716098d140fca535710f29116da319ce1961"
	if got := encodingDigest(t); got != want {
		t.Fatalf("the encoder's bytes changed: digest %s, want %s", got, want)
	}
}
