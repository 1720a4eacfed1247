package log

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Run with: go test -bench . -run '^$' ./log/
//
// BenchmarkRawFsync is the baseline: the device's own limit on durable
// writes in the same kind of directory. BenchmarkAppend/mode=sync/appenders=1
// can at best match it; with 64 appenders group commit should beat it by
// sharing each fsync among many records.

const benchPayload = 256

// openBench opens a log in a fresh directory and closes it when the
// benchmark ends.
func openBench(b *testing.B, o *Options) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), withQuiet(o))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Error(err)
		}
	})
	return l
}

// reportRecords reports records/s over the timed part of the benchmark.
func reportRecords(b *testing.B, records int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(records)/s, "records/s")
	}
}

// runSplit runs op b.N times in total, spread over n goroutines that take
// iterations from a shared counter.
func runSplit(b *testing.B, n int, op func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, mode := range []Durability{Sync, Interval, None} {
		for _, appenders := range []int{1, 64} {
			b.Run(fmt.Sprintf("mode=%s/appenders=%d", mode, appenders), func(b *testing.B) {
				l := openBench(b, &Options{Durability: mode})
				b.ReportAllocs()
				b.SetBytes(benchPayload)
				b.ResetTimer()
				runSplit(b, appenders, func(i int) error {
					_, err := l.Append([]Record{{Kind: KindEnqueued, Job: uint64(i + 1), At: int64(i), Queue: "default", Payload: payload}})
					return err
				})
				b.StopTimer()
				reportRecords(b, b.N)
			})
		}
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	payload := make([]byte, benchPayload)
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			l := openBench(b, nil)
			recs := make([]Record, n)
			for i := range recs {
				recs[i] = Record{Kind: KindEnqueued, Job: uint64(i + 1), Queue: "default", Payload: payload}
			}
			b.ReportAllocs()
			b.SetBytes(int64(n * benchPayload))
			b.ResetTimer()
			for range b.N {
				if _, err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportRecords(b, b.N*n)
		})
	}
}

// BenchmarkRawFsync measures 256-byte appends to a plain file, each made
// durable with fsync or fdatasync, in the same kind of directory the logs
// above use: the floor under every durable append.
func BenchmarkRawFsync(b *testing.B) {
	syncs := []struct {
		name string
		fn   func(f *os.File) error
	}{
		{"fsync", (*os.File).Sync},
		{"fdatasync", func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }},
	}
	for _, s := range syncs {
		b.Run("op="+s.name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, benchPayload)
			b.ReportAllocs()
			b.SetBytes(benchPayload)
			b.ResetTimer()
			for range b.N {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := s.fn(f); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if sec := b.Elapsed().Seconds(); sec > 0 {
				b.ReportMetric(float64(b.N)/sec, "ops/s")
			}
		})
	}
}

func BenchmarkReplay(b *testing.B) {
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			l := openBench(b, &Options{Durability: None})
			payload := make([]byte, benchPayload)
			var last *Pending
			for i := range n {
				p, err := l.Submit([]Record{{Kind: KindEnqueued, Job: uint64(i + 1), Queue: "default", Payload: payload}})
				if err != nil {
					b.Fatal(err)
				}
				last = p
			}
			if err := last.Wait(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				count := 0
				err := l.Replay(0, func(uint64, int, *Record) error { count++; return nil })
				if err != nil {
					b.Fatal(err)
				}
				if count != n {
					b.Fatalf("replayed %d records, want %d", count, n)
				}
			}
			b.StopTimer()
			reportRecords(b, b.N*n)
		})
	}
}

// BenchmarkEncodeEntry encodes entries as Submit does (a pooled buffer,
// checksum without the index): a typical enqueue, a completion, a carry
// with a history (compaction's record) and a batch of 1000 enqueues.
func BenchmarkEncodeEntry(b *testing.B) {
	payload := make([]byte, benchPayload)
	carry, _ := sampleRecord(KindCarry)
	batch := make([]Record, 1000)
	for i := range batch {
		batch[i] = Record{Kind: KindEnqueued, Job: uint64(i + 1), At: testAt, Queue: "default", Payload: payload}
	}
	for _, bc := range []struct {
		name string
		recs []Record
	}{
		{"record=enqueued", []Record{{Kind: KindEnqueued, Job: 1, At: testAt, Queue: "default", Key: "order-42/charge", Payload: payload, MaxAttempts: 5}}},
		{"record=completed", []Record{{Kind: KindCompleted, Job: 1, At: testAt, Attempt: 1, Result: []byte(`{"ok":true}`)}}},
		{"record=carry", []Record{carry}},
		{"record=enqueued/n=1000", batch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := bufPool.Get().(*bytes.Buffer)
				buf.Reset()
				if _, err := encodeBody(buf, bc.recs); err != nil {
					b.Fatal(err)
				}
				bufPool.Put(buf)
			}
		})
	}
}
