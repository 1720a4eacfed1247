package log

import (
	"errors"
	"maps"
	"testing"
)

// TestMetaRoundTrip writes metadata in an enqueue and a carry record and
// reads it back both ways: decoded with the record, and found after the
// payload by PayloadMeta, as the queue does with only the payload's
// location.
func TestMetaRoundTrip(t *testing.T) {
	m := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "b": "", "long": string(make([]byte, 300))}
	raw := EncodeMeta(m)
	recs := []Record{
		{Kind: KindEnqueued, Job: 1, Queue: "q", Payload: []byte("p1"), Meta: raw},
		{Kind: KindEnqueued, Job: 2, Queue: "q", Payload: []byte("p2")},
		{Kind: KindCarry, Job: 3, Queue: "q", Payload: []byte{}, Meta: raw, Result: []byte("r"),
			History: []Attempt{{Started: 1, Ended: 2, Outcome: KindFailed, Error: "x"}}},
	}
	data, err := EncodeEntry(5, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{m, nil, m}
	err = DecodeEntry(5, data, func(i int, r *Record) error {
		got, err := DecodeMeta(r.Meta)
		if err != nil {
			t.Fatalf("record %d: DecodeMeta: %v", i, err)
		}
		if !maps.Equal(got, want[i]) {
			t.Errorf("record %d: decoded meta %v, want %v", i, got, want[i])
		}
		after, err := PayloadMeta(data, r.PayloadAt+len(r.Payload))
		if err != nil {
			t.Fatalf("record %d: PayloadMeta: %v", i, err)
		}
		if got, _ := DecodeMeta(after); !maps.Equal(got, want[i]) {
			t.Errorf("record %d: meta after the payload %v, want %v", i, got, want[i])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMetaEncodingDeterministic: equal maps encode to equal bytes, and an
// empty map to nothing (so a job without metadata is written as before).
func TestMetaEncodingDeterministic(t *testing.T) {
	a := EncodeMeta(map[string]string{"x": "1", "y": "2", "z": "3"})
	for range 20 {
		if b := EncodeMeta(map[string]string{"z": "3", "y": "2", "x": "1"}); string(a) != string(b) {
			t.Fatalf("encodings differ: %x and %x", a, b)
		}
	}
	if b := EncodeMeta(map[string]string{}); b != nil {
		t.Fatalf("empty map encoded as %x", b)
	}
	plain, _ := EncodeEntry(1, []Record{{Kind: KindEnqueued, Job: 1, Payload: []byte("p")}})
	empty, _ := EncodeEntry(1, []Record{{Kind: KindEnqueued, Job: 1, Payload: []byte("p"), Meta: EncodeMeta(nil)}})
	if string(plain) != string(empty) {
		t.Fatal("a record with empty metadata is not byte for byte a record without")
	}
}

// TestMetaMalformed: the writer refuses metadata that would not replay,
// and the reader reports a malformed map as corruption.
func TestMetaMalformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"not-a-map":   {0xa1, 'a'},
		"bin-value":   {0x81, 0xa1, 'a', 0xc4, 0x01, 'b'},
		"short":       {0x82, 0xa1, 'a', 0xa1, 'b'},
		"trailing":    {0x81, 0xa1, 'a', 0xa1, 'b', 0x00},
		"bad-utf8":    {0x81, 0xa1, 0xff, 0xa1, 'b'},
		"empty-map":   {0x80},
		"nil-as-key":  {0x81, 0xc0, 0xa1, 'b'},
		"huge-length": {0xdf, 0x7f, 0xff, 0xff, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := EncodeEntry(1, []Record{{Kind: KindEnqueued, Job: 1, Payload: []byte{}, Meta: raw}}); err == nil {
				t.Error("EncodeEntry accepted malformed metadata")
			}
			if _, err := DecodeMeta(raw); err == nil && name != "empty-map" {
				t.Error("DecodeMeta accepted malformed metadata")
			}
			if name == "trailing" {
				return // behind a payload, the next field follows
			}
			// The same bytes behind a payload, as a reader finds them.
			entry := append([]byte{'p', tagMeta}, raw...)
			if _, err := PayloadMeta(entry, 1); !errors.Is(err, ErrCorrupt) {
				t.Errorf("PayloadMeta: %v, want ErrCorrupt", err)
			}
		})
	}
}
