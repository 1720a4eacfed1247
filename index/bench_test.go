package index_test

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// benchPayload is the payload size the benchmarks assume; the index keeps
// only its location, so only the length matters.
var benchPayload = make([]byte, 256)

// recordsPerEntry is how many records the benchmarks put in one log entry,
// as a batch enqueue does.
const recordsPerEntry = 1000

// benchPos returns the position of record i when records are written in
// entries of recordsPerEntry.
func benchPos(i int) index.Pos {
	return index.Pos{Index: uint64(i/recordsPerEntry + 1), Slot: i % recordsPerEntry}
}

// benchEnqueued returns the Enqueued record of the i-th job (ID i+1) in
// queue "default", with its payload where a batch entry would put it.
func benchEnqueued(i int) wlog.Record {
	return wlog.Record{Kind: wlog.KindEnqueued, Job: uint64(i + 1), At: t0 + int64(i), Queue: "default",
		Payload: benchPayload, PayloadAt: 8 + (i%recordsPerEntry)*290, RunAt: t0 + int64(i), MaxAttempts: 25}
}

// BenchmarkApply measures how fast the fold applies records of one kind.
// kind=checkpoint, which touches no job, is the baseline.
func BenchmarkApply(b *testing.B) {
	cases := []struct {
		kind wlog.Kind
		// setup prepares an index for n records of the kind (untimed).
		setup func(a *applier, n int)
		rec   func(i int) wlog.Record
	}{
		{
			kind: wlog.KindCheckpoint,
			rec:  func(i int) wlog.Record { return wlog.Record{Kind: wlog.KindCheckpoint, NextID: uint64(i)} },
		},
		{
			kind: wlog.KindEnqueued,
			rec:  benchEnqueued,
		},
		{
			kind:  wlog.KindLeased,
			setup: enqueueN,
			rec: func(i int) wlog.Record {
				return wlog.Record{Kind: wlog.KindLeased, Job: uint64(i + 1), At: t0, Attempt: 1, Deadline: t0 + int64(time.Minute)}
			},
		},
		{
			kind: wlog.KindCompleted,
			setup: func(a *applier, n int) {
				enqueueN(a, n)
				for i := 0; i < n; i++ {
					a.fold(wlog.Record{Kind: wlog.KindLeased, Job: uint64(i + 1), At: t0, Attempt: 1, Deadline: t0 + int64(i)})
				}
			},
			rec: func(i int) wlog.Record {
				return wlog.Record{Kind: wlog.KindCompleted, Job: uint64(i + 1), At: t0, Attempt: 1}
			},
		},
	}
	for _, tc := range cases {
		b.Run("kind="+tc.kind.String(), func(b *testing.B) {
			a := newApplier(b)
			if tc.setup != nil {
				tc.setup(a, b.N)
			}
			x := a.x
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := tc.rec(i)
				if err := x.Apply(&r, benchPos(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func enqueueN(a *applier, n int) {
	for i := 0; i < n; i++ {
		a.fold(benchEnqueued(i))
	}
}

// BenchmarkLeaseCycle measures one job's trip through the index as the
// queue drives it: Promote, Next, Reserve, apply Leased, Unreserve, then
// Reserve, apply Completed, Unreserve. The backlog of ready jobs is kept at
// the given size (refilled, with completed jobs purged, untimed).
func BenchmarkLeaseCycle(b *testing.B) {
	for _, pending := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			a := newApplier(b)
			x := a.x
			var next int // jobs enqueued so far
			var done []uint64
			refill := func() {
				for _, id := range done {
					a.fold(wlog.Record{Kind: wlog.KindPurged, Job: id, At: t0})
				}
				done = done[:0]
				for i := 0; i < pending; i++ {
					r := benchEnqueued(next)
					r.RunAt = t0
					a.fold(r)
					next++
				}
			}
			refill()
			q := x.Queue("default")
			pos := index.Pos{Index: a.pos.Index}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if q.Ready() == 0 {
					b.StopTimer()
					refill()
					b.StartTimer()
				}
				now := t0 + int64(i)
				x.Promote(now)
				j := q.Next()
				x.Reserve(j)
				pos.Index++
				r := wlog.Record{Kind: wlog.KindLeased, Job: j.ID, At: now, Attempt: int64(j.Attempt) + 1, Deadline: now + int64(time.Minute)}
				if err := x.Apply(&r, pos); err != nil {
					b.Fatal(err)
				}
				x.Unreserve(j)
				x.Reserve(j)
				pos.Index++
				r = wlog.Record{Kind: wlog.KindCompleted, Job: j.ID, At: now, Attempt: int64(j.Attempt)}
				if err := x.Apply(&r, pos); err != nil {
					b.Fatal(err)
				}
				x.Unreserve(j)
				done = append(done, j.ID)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
		})
	}
}

// BenchmarkMemoryPerPendingJob folds 200,000 and 1,000,000 Enqueued records
// (queue "default", 256-byte payloads in batch entries of 1000) into a fresh
// index, trims it as recovery does after a replay, and reports the heap it
// retains per job. The work is done once per call, whatever b.N: run it
// with -benchtime 1x. key=16B gives every job a distinct 16-byte
// idempotency key, to show the key's overhead.
func BenchmarkMemoryPerPendingJob(b *testing.B) {
	for _, jobs := range []int{200_000, 1_000_000} {
		for _, keyLen := range []int{0, 16} {
			name := fmt.Sprintf("jobs=%d/key=none", jobs)
			if keyLen > 0 {
				name = fmt.Sprintf("jobs=%d/key=%dB", jobs, keyLen)
			}
			b.Run(name, func(b *testing.B) { memoryPerPendingJob(b, jobs, keyLen) })
		}
	}
}

func memoryPerPendingJob(b *testing.B, jobs, keyLen int) {
	b.ReportAllocs()
	var raw [8]byte
	keyBuf := make([]byte, keyLen)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := index.New()
	x.Promote(t0 + int64(jobs)) // every job is due, as after an open
	for i := 0; i < jobs; i++ {
		r := benchEnqueued(i)
		if keyLen > 0 {
			binary.BigEndian.PutUint64(raw[:], uint64(i))
			hex.Encode(keyBuf, raw[:]) // 16 hex digits
			r.Key = string(keyBuf)
		}
		if err := x.Apply(&r, benchPos(i)); err != nil {
			b.Fatal(err)
		}
	}
	x.Trim()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if x.Len() != jobs {
		b.Fatalf("Len %d, want %d", x.Len(), jobs)
	}
	runtime.KeepAlive(x)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(jobs), "B/job")
}
