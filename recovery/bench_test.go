package recovery_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

// benchBatch is how many Enqueued records one entry of the benchmark log
// holds, as a batch enqueue writes them.
const benchBatch = 1000

// writeBenchLog writes jobs Enqueued records with 256-byte payloads to a new
// log in dir, in entries of benchBatch records.
func writeBenchLog(b *testing.B, dir string, jobs int) {
	b.Helper()
	l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, Durability: wlog.None})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]wlog.Record, 0, benchBatch)
	for id := uint64(1); id <= uint64(jobs); id++ {
		r := enqueued(id, 25)
		r.At, r.RunAt = ns(0)+int64(id), ns(0)+int64(id)
		recs = append(recs, r)
		if len(recs) == benchBatch || id == uint64(jobs) {
			if _, err := l.Append(recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

// writeBenchCheckpoint writes the checkpoint of the log in dir.
func writeBenchCheckpoint(b *testing.B, dir string) {
	b.Helper()
	l, x, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet}, Now: t0, NoCheckpoint: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := recovery.WriteCheckpoint(l, x, nil, nil); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplay times opening a directory of jobs pending jobs.
// stage=open is the whole recovery.Open with a full replay (log open with
// its tail check, replay, voiding); stage=checkpoint is recovery.Open from
// the checkpoint; stage=iterate (read and checksum every entry),
// stage=decode (also decode every record, without folding), stage=logopen
// (the log's own open) and stage=readcheckpoint (decoding the checkpoint
// alone) are baselines that show where the time of an open goes.
func BenchmarkReplay(b *testing.B) {
	stages := []struct {
		name string
		run  func(b *testing.B, dir string) int // returns records seen
	}{
		{"iterate", iterateLog(false)},
		{"decode", iterateLog(true)},
		{"open", func(b *testing.B, dir string) int {
			l, x, rep, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet}, Now: t0, NoCheckpoint: true})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if x.Len() != rep.Records {
				b.Fatalf("%d jobs from %d records", x.Len(), rep.Records)
			}
			l.Close()
			b.StartTimer()
			return rep.Records
		}},
		{"logopen", func(b *testing.B, dir string) int {
			l, err := wlog.Open(dir, &wlog.Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			l.Close()
			return -1
		}},
		{"readcheckpoint", func(b *testing.B, dir string) int {
			f, err := os.Open(filepath.Join(dir, recovery.CheckpointName))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			x, _, err := index.ReadCheckpoint(f, st.Size(), t0.UnixNano())
			if err != nil {
				b.Fatal(err)
			}
			return x.Len()
		}},
		{"checkpoint", func(b *testing.B, dir string) int {
			l, x, rep, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet}, Now: t0})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if !rep.Checkpoint.Used {
				b.Fatalf("checkpoint not used: %s", rep.Checkpoint.Reason)
			}
			l.Close()
			b.StartTimer()
			return x.Len()
		}},
	}
	for _, jobs := range []int{200_000, 1_000_000} {
		dir := b.TempDir()
		written := false
		for _, st := range stages {
			b.Run(fmt.Sprintf("jobs=%d/stage=%s", jobs, st.name), func(b *testing.B) {
				if !written {
					writeBenchLog(b, dir, jobs)
					writeBenchCheckpoint(b, dir)
					written = true
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if n := st.run(b, dir); n != jobs && n >= 0 {
						b.Fatalf("%d records, want %d", n, jobs)
					}
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(jobs)*float64(b.N)/sec, "records/s")
				b.ReportMetric(sec*1000/float64(b.N), "ms/open")
			})
		}
	}
}

// iterateLog returns a stage that opens the log read-only and walks every
// entry, decoding its records if decode is set.
func iterateLog(decode bool) func(b *testing.B, dir string) int {
	return func(b *testing.B, dir string) int {
		l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		n := 0
		err = l.Iterate(1, func(i uint64, data []byte) error {
			if !decode {
				n += benchBatch
				return nil
			}
			return wlog.DecodeEntry(i, data, func(int, *wlog.Record) error { n++; return nil })
		})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
}
