package queue

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
)

// TestMetaStoredWithJob: metadata given to Enqueue comes back from Lease
// and Get, from a follow-up made by CompleteAndEnqueue, after compaction
// has restated the jobs (carry) and after a reopen replays the log; a job
// without metadata has none.
func TestMetaStoredWithJob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := &Options{SegmentSize: 4 << 10, CompactRatio: -1}
	q := openTest(t, dir, opts)
	meta := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme"}
	with := enqueueT(t, q, NewJob{Queue: "a", Payload: []byte("with"), Meta: meta})
	meta["tenant"] = "changed after enqueue" // the queue keeps a copy
	meta["tenant"] = "acme"
	without := enqueueT(t, q, NewJob{Queue: "b", Payload: []byte("without")})

	l := leaseT(t, q, "a")
	if !maps.Equal(l.Job.Meta, meta) || string(l.Job.Payload) != "with" {
		t.Fatalf("Lease: meta %v payload %q, want %v %q", l.Job.Meta, l.Job.Payload, meta, "with")
	}
	follow := map[string]string{"parent": "1"}
	enq, err := q.CompleteAndEnqueue(ctx, l.Token, []byte("r"), []NewJob{{Queue: "c", Payload: []byte("next"), Meta: follow}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for id, want := range map[uint64]map[string]string{with: meta, without: nil, enq[0].ID: follow} {
			j := getT(t, q, id)
			if !maps.Equal(j.Meta, want) || (want == nil) != (j.Meta == nil) {
				t.Errorf("%s: Get(%d).Meta = %v, want %v", when, id, j.Meta, want)
			}
		}
		if l := leaseT(t, q, "c"); !maps.Equal(l.Job.Meta, follow) {
			t.Errorf("%s: Lease of the follow-up: meta %v, want %v", when, l.Job.Meta, follow)
		} else if err := q.Release(ctx, l.Token); err != nil {
			t.Fatal(err)
		}
	}
	check("before compaction")
	// Enough later entries that the jobs' entries are compacted away.
	for range 50 {
		enqueueT(t, q, NewJob{Queue: "filler", Payload: make([]byte, 400)})
	}
	st, err := q.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Carried == 0 {
		t.Fatalf("compaction carried nothing: %+v", st)
	}
	check("after compaction")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	check("after reopen")
}

// TestMetaValidated: metadata over the bounds, or with a bad key, is
// refused with a *MetaError naming the field and key, matching
// ErrTooLarge or ErrInvalid, and nothing is enqueued.
func TestMetaValidated(t *testing.T) {
	q := openTest(t, t.TempDir(), nil)
	many := map[string]string{}
	for i := range MaxMetaEntries + 1 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		name string
		meta map[string]string
		is   error
		msg  string
	}{
		{"too-many", many, ErrTooLarge, "NewJob.Meta: 65 entries, limit 64 (MaxMetaEntries)"},
		{"too-big", map[string]string{"big": strings.Repeat("x", MaxMetaBytes)}, ErrTooLarge, "NewJob.Meta: 8195 bytes"},
		{"empty-key", map[string]string{"": "v"}, ErrInvalid, `NewJob.Meta[""]: empty key`},
		{"long-key", map[string]string{strings.Repeat("k", 256): "v"}, ErrInvalid, "key of 256 bytes, limit 255"},
		{"bad-utf8", map[string]string{"k": "\xff"}, ErrInvalid, `NewJob.Meta["k"]: value is not valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := q.Enqueue(context.Background(), NewJob{Meta: tc.meta})
			var me *MetaError
			if !errors.Is(err, tc.is) || !errors.As(err, &me) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Enqueue: %v, want a *MetaError matching %v saying %q", err, tc.is, tc.msg)
			}
			if _, err := q.EnqueueBatch(context.Background(), []NewJob{{}, {Meta: tc.meta}}); !errors.Is(err, tc.is) {
				t.Fatalf("EnqueueBatch: %v, want %v", err, tc.is)
			}
		})
	}
	if st, _ := q.Stats(context.Background()); len(st.Queues) != 0 {
		t.Fatalf("refused calls enqueued jobs: %+v", st.Queues)
	}
}
