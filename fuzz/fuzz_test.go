package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
)

var quiet = slog.New(slog.DiscardHandler)

// epoch is where the fuzz targets' mock clocks start.
var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

func mockClock() *clock.Mock {
	mc := clock.NewMock()
	mc.Set(epoch)
	return mc
}

// allocSlack is what decoding an entry may allocate beyond 64 bytes per
// input byte: a size claimed by the input is checked against the input
// before anything is allocated for it.
const allocSlack = 64 << 10

// FuzzDecodeEntry feeds arbitrary bytes, at an arbitrary log index, to
// log.DecodeEntry: it must return records or an error matching
// log.ErrCorrupt, never panic, and allocate in proportion to the input.
// Records it accepts must survive a round trip through EncodeEntry.
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, index uint64) {
		var recs []wlog.Record
		err := wlog.DecodeEntry(index, data, func(i int, r *wlog.Record) error {
			if i != len(recs) {
				t.Fatalf("record %d passed as %d", len(recs), i)
			}
			recs = append(recs, cloneRecord(r))
			return nil
		})
		if n := decodeAllocs(index, data); n > allocSlack+64*uint64(len(data)) {
			t.Fatalf("decoding %d bytes allocated %d bytes (err %v)", len(data), n, err)
		}
		if err != nil {
			var ce *wlog.CorruptError
			if !errors.Is(err, wlog.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("DecodeEntry error %v (%T) does not match ErrCorrupt and *CorruptError", err, err)
			}
			if len(recs) > 0 && ce.Record != len(recs) {
				t.Errorf("error after %d good records names record %d: %v", len(recs), ce.Record, err)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("DecodeEntry accepted an entry of no records")
		}
		again, err := wlog.EncodeEntry(index, slices.Clone(recs))
		if err != nil {
			t.Fatalf("EncodeEntry of decoded records: %v", err)
		}
		var round []wlog.Record
		if err := wlog.DecodeEntry(index, again, func(_ int, r *wlog.Record) error {
			round = append(round, cloneRecord(r))
			return nil
		}); err != nil {
			t.Fatalf("decoding the re-encoded entry: %v", err)
		}
		if !sameRecords(recs, round) {
			t.Fatalf("round trip changed the records:\n got %+v\nwant %+v", round, recs)
		}
	})
}

// decodeAllocs returns the heap bytes one DecodeEntry of data allocates.
// The runtime counts every goroutine's allocations, and the fuzz engine's
// own (corpus and coverage bookkeeping) can land in the window, so it takes
// the least of a few measurements: decoding allocates the same each time.
func decodeAllocs(index uint64, data []byte) uint64 {
	least := ^uint64(0)
	for range 3 {
		before := allocated()
		wlog.DecodeEntry(index, data, func(int, *wlog.Record) error { return nil })
		least = min(least, allocated()-before)
	}
	return least
}

// allocated returns the bytes allocated on the heap so far by the process.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// cloneRecord copies r out of the decoder's buffers, without the offsets
// (which depend on the encoding).
func cloneRecord(r *wlog.Record) wlog.Record {
	c := *r
	c.Payload, c.Result = bytes.Clone(r.Payload), bytes.Clone(r.Result)
	c.Meta = bytes.Clone(r.Meta)
	c.History = slices.Clone(r.History)
	if len(c.History) == 0 {
		c.History = nil
	}
	c.PayloadAt, c.ResultAt, c.MetaAt = 0, 0, 0
	return c
}

func sameRecords(a, b []wlog.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := cloneRecord(&a[i]), cloneRecord(&b[i])
		if (x.Payload == nil) != (y.Payload == nil) || (x.Result == nil) != (y.Result == nil) || !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// segName is a segment file's name for its first index.
func segName(first uint64) string { return fmt.Sprintf("%020d", first) }

// FuzzOpenDir writes arbitrary bytes as the one or two segment files of a
// queue directory (named by the first indexes first1 and first2, so that the
// log may look compacted) and opens it, read-only and then writable. Each
// open must succeed with a consistent queue or fail with a typed error,
// never panic. A directory refused as corrupt must open after log.Salvage
// (or fail only because its records do not fit together). A writable queue
// that opens must take new work and reopen to the same jobs.
func FuzzOpenDir(f *testing.F) {
	f.Fuzz(func(t *testing.T, seg1 []byte, first1 uint64, seg2 []byte, first2 uint64) {
		dir := t.TempDir()
		first1 = max(1, first1%(1<<20))
		files := map[string][]byte{"FORMAT": []byte("walq 1\n"), segName(first1): seg1}
		if len(seg2) > 0 {
			first2 = max(first1+1, first2%(1<<20))
			files[segName(first2)] = seg2
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ro, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: mockClock(), Logger: quiet})
		if err == nil {
			consistent(t, ro, "read-only")
			ro.Close()
		} else {
			typedOpenError(t, err, "read-only")
		}
		opts := &queue.Options{Clock: mockClock(), Logger: quiet, CompactRatio: -1, Durability: queue.None}
		q, err := queue.Open(dir, opts)
		if errors.Is(err, queue.ErrCorrupt) {
			// The documented way out: Salvage keeps the valid prefix,
			// which must then open (its records may still not fit
			// together: that is not Salvage's to fix).
			if _, serr := wlog.Salvage(dir, false); serr != nil {
				t.Fatalf("Salvage after %v: %v", err, serr)
			}
			if q, err = queue.Open(dir, opts); errors.Is(err, queue.ErrCorrupt) {
				t.Fatalf("Open after Salvage: %v", err)
			}
		}
		if err != nil {
			typedOpenError(t, err, "writable")
			return
		}
		defer q.Close()
		before := consistent(t, q, "writable")
		worksOn(t, q)
		after := consistent(t, q, "after new work")
		if len(after) != len(before)+1 {
			t.Fatalf("%d jobs before new work, %d after", len(before), len(after))
		}
		if err := q.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		q2, err := queue.Open(dir, opts)
		if err != nil {
			t.Fatalf("reopening a directory that opened: %v", err)
		}
		defer q2.Close()
		if again := consistent(t, q2, "reopened"); !reflect.DeepEqual(again, after) {
			t.Fatalf("reopen changed the jobs:\n got %+v\nwant %+v", again, after)
		}
	})
}

// typedOpenError fails unless err says what is wrong with the directory in
// a way a caller can test for: corrupt bytes (log.ErrCorrupt) or records
// that do not fit together (index.ErrInconsistent).
func typedOpenError(t *testing.T, err error, how string) {
	t.Helper()
	if errors.Is(err, queue.ErrCorrupt) || errors.Is(err, queue.ErrInconsistent) {
		return
	}
	t.Fatalf("%s Open: untyped error %v", how, err)
}

// jobView is what a job looks like for comparing opens: no clock-dependent
// fields.
type jobView struct {
	ID              uint64
	Queue, Key      string
	State           queue.JobState
	Attempt         int
	Payload, Result []byte
}

// consistent checks that Stats agrees with the job listing, that every job
// can be read, and that keys are unique; it returns the jobs.
func consistent(t *testing.T, q *queue.Queue, how string) []jobView {
	t.Helper()
	ctx := context.Background()
	jobs, err := q.Jobs(ctx, queue.JobFilter{})
	if err != nil {
		t.Fatalf("%s: Jobs: %v", how, err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatalf("%s: Stats: %v", how, err)
	}
	counts := map[string]queue.QueueStats{}
	keys := map[string]uint64{}
	var out []jobView
	for _, j := range jobs {
		c := counts[j.Queue]
		switch j.State {
		case queue.StateReady:
			c.Ready++
		case queue.StateScheduled:
			c.Scheduled++
		case queue.StateLeased:
			c.Leased++
		case queue.StateCompleted:
			c.Completed++
		case queue.StateDead:
			c.Dead++
		case queue.StateCancelled:
			c.Cancelled++
		default:
			t.Fatalf("%s: job %d in unknown state %q", how, j.ID, j.State)
		}
		counts[j.Queue] = c
		if j.Key != "" {
			if other, ok := keys[j.Key]; ok {
				t.Fatalf("%s: key %q held by jobs %d and %d", how, j.Key, other, j.ID)
			}
			keys[j.Key] = j.ID
		}
		full, err := q.Get(ctx, j.ID)
		if err != nil {
			if errors.Is(err, queue.ErrCorrupt) {
				continue // an unreadable payload is reported, not a panic
			}
			t.Fatalf("%s: Get(%d): %v", how, j.ID, err)
		}
		out = append(out, jobView{j.ID, j.Queue, j.Key, j.State, j.Attempt, full.Payload, full.Result})
	}
	for name, qs := range st.Queues {
		c := counts[name]
		if qs.Ready != c.Ready || qs.Scheduled != c.Scheduled || qs.Leased != c.Leased ||
			qs.Completed != c.Completed || qs.Dead != c.Dead || qs.Cancelled != c.Cancelled {
			t.Fatalf("%s: Stats of queue %q = %+v, the listing counts %+v", how, name, qs, c)
		}
		delete(counts, name)
	}
	if len(counts) > 0 {
		t.Fatalf("%s: Stats lacks queues %v", how, counts)
	}
	return out
}

// worksOn enqueues, leases and completes a job on a freshly opened queue.
func worksOn(t *testing.T, q *queue.Queue) {
	t.Helper()
	ctx := context.Background()
	r, err := q.Enqueue(ctx, queue.NewJob{Queue: "fuzz-new", Payload: []byte("new work")})
	if err != nil {
		t.Fatalf("Enqueue on an opened queue: %v", err)
	}
	l, err := q.TryLease(ctx, "fuzz-new")
	if err != nil || l.Job.ID != r.ID || string(l.Job.Payload) != "new work" {
		t.Fatalf("TryLease = %+v, %v; want job %d", l, err, r.ID)
	}
	if err := q.Complete(ctx, l.Token, []byte("done")); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}
