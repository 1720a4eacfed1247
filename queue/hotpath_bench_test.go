package queue

import (
	"context"
	"sync"
	"testing"
)

// BenchmarkHotPath measures the queue's hot paths in Sync mode with 256-byte
// payloads. Run: go test -run '^$' -bench HotPath ./queue/
func BenchmarkHotPath(b *testing.B) {
	ctx := context.Background()
	payload := make([]byte, 256)
	open := func(b *testing.B) *Queue {
		q, err := Open(b.TempDir(), &Options{CompactRatio: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.Close() })
		return q
	}
	b.Run("op=enqueue/producers=1", func(b *testing.B) {
		q := open(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := q.Enqueue(ctx, NewJob{Payload: payload}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("op=enqueue/producers=64", func(b *testing.B) {
		q := open(b)
		b.ReportAllocs()
		var wg sync.WaitGroup
		per := b.N/64 + 1
		for p := 0; p < 64; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					if _, err := q.Enqueue(ctx, NewJob{Payload: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(per*64)/b.Elapsed().Seconds(), "jobs/s")
	})
	b.Run("op=enqueue-batch/size=1000", func(b *testing.B) {
		q := open(b)
		batch := make([]NewJob, 1000)
		for i := range batch {
			batch[i] = NewJob{Payload: payload}
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := q.EnqueueBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "jobs/s")
	})
}
