package queue

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCheckpointWrite measures writing the index checkpoint of a
// queue holding jobs pending jobs: stall-ms is how long new calls are held
// back and the queue's mutex held (waiting for entries in flight, then
// encoding the index into the file), total-ms the whole write with its
// fsyncs, and bytes/job the checkpoint's size per job.
//
//	go test ./queue -run '^$' -bench BenchmarkCheckpointWrite -benchtime 3x
func BenchmarkCheckpointWrite(b *testing.B) {
	for _, jobs := range []int{200_000, 1_000_000} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			q := openTest(b, noBackgroundDir(b), &Options{Durability: None})
			batch := make([]NewJob, 1000)
			for i := range batch {
				batch[i] = NewJob{Payload: make([]byte, 256)}
			}
			for n := 0; n < jobs; n += len(batch) {
				if _, err := q.EnqueueBatch(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var stall, total time.Duration
			var size int64
			for i := 0; i < b.N; i++ {
				st := checkpointT(b, q)
				stall += st.Stall
				total += st.Duration
				size = st.Bytes
			}
			b.ReportMetric(float64(stall.Milliseconds())/float64(b.N), "stall-ms")
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "total-ms")
			b.ReportMetric(float64(size)/float64(jobs), "bytes/job")
		})
	}
}
