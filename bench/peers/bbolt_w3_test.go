package main

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/walq/walq/bench"
)

// BenchmarkBboltBatch compares the adapter's EnqueueBatch with the
// straightforward bbolt batch written inline (one Update, one Put per job
// under a sequential 8-byte big-endian key, fdatasync per commit), in the
// same process, on W3's shape: batches of 1,000 × 256 B, 100 batches.
func BenchmarkBboltBatch(b *testing.B) {
	payload := make([]byte, 256)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = payload
	}
	const batches = 100
	b.Run("adapter", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			be, err := bboltTarget(bench.Sync).Open(context.Background(), bench.Params{Dir: b.TempDir(), Producers: 1})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for k := 0; k < batches; k++ {
				if err := be.EnqueueBatch(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batches*len(batch))/time.Since(start).Seconds(), "jobs/s")
			be.Close()
		}
	})
	b.Run("inline", func(b *testing.B) {
		for n := 0; n < b.N; n++ {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "q.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("q")); return err })
			var seq uint64
			start := time.Now()
			for k := 0; k < batches; k++ {
				err := db.Update(func(tx *bolt.Tx) error {
					bk := tx.Bucket([]byte("q"))
					for _, p := range batch {
						seq++
						if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), p); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batches*len(batch))/time.Since(start).Seconds(), "jobs/s")
			db.Close()
		}
	})
}
