package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . ./bench/
//
// BenchmarkBaseline is the disk's own limit in the same directory kind;
// BenchmarkWorkload runs walq's hot paths (append = W1–W3, lease and
// complete = W4/W4rt, fold on open = W5, index memory = W6) through the
// same procedures `walq bench` and the side-by-side run use, each verifying
// its result. W7 is a latency distribution at an offered load and is
// measured by Run only.

// benchPending is how many pending jobs W5 and W6 open here.
const benchPending = 100_000

func BenchmarkBaseline(b *testing.B) {
	b.Run("op=append-fdatasync/bytes=256", func(b *testing.B) {
		f := benchFile(b)
		buf := make([]byte, PayloadSize)
		b.ReportAllocs()
		b.SetBytes(PayloadSize)
		for b.Loop() {
			if err := appendSynced(f, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("op=group-append-fdatasync/producers=64", func(b *testing.B) {
		rate, err := groupRun(b.TempDir(), time.Second, GroupProducers, PayloadSize)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(rate, "records/s")
	})
	b.Run("op=write/bytes=1MiB", func(b *testing.B) {
		f := benchFile(b)
		buf := make([]byte, 1<<20)
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := fdatasync(f); err != nil {
			b.Fatal(err)
		}
	})
}

func benchFile(b *testing.B) *os.File {
	f, err := os.CreateTemp(b.TempDir(), "baseline-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkWorkload runs each workload against walq in each durability
// class (W5 and W6 in sync only). One benchmark operation is one enqueue
// call (W1–W3), one job leased and completed (W4, W4rt), or one reopen (W5,
// W6); ns/op is the workload's own timed part, without its untimed setup.
func BenchmarkWorkload(b *testing.B) {
	for _, w := range Workloads {
		if w.kind == kindLatency {
			continue
		}
		for _, d := range []string{Sync, Relaxed} {
			if w.stateful() && d != Sync {
				continue
			}
			b.Run(fmt.Sprintf("w=%s/durability=%s", w.ID, d), func(b *testing.B) { benchWorkload(b, w, d) })
		}
	}
}

func benchWorkload(b *testing.B, w Workload, durability string) {
	ctx := context.Background()
	t, err := Walq(durability)
	if err != nil {
		b.Fatal(err)
	}
	sz := Sizes{MaxDuration: time.Hour, EnqueueJobs: b.N, BatchJobs: b.N * max(w.batch, 1), DrainJobs: b.N, RecoverJobs: benchPending}.withDefaults(false)
	tr := &trial{t: t, w: w, sz: sz, dir: b.TempDir()}
	if w.kind == kindDrain || w.stateful() {
		tr.fix = benchFixture(b, t, w, sz)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !w.stateful() {
		s, err := tr.run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(s.value, "jobs/s")
		b.ReportMetric(1e9*float64(max(w.batch, 1))/s.value, "ns/op")
		return
	}
	var sum float64
	for range b.N {
		s, err := tr.run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sum += s.value
	}
	b.ReportMetric(sum/float64(b.N), w.Unit)
	if w.kind == kindRecover {
		b.ReportMetric(sum/float64(b.N)*1e6, "ns/op")
	}
}

// benchFixture fills a fixture before the timer starts: DrainJobs pending
// jobs for W4, benchPending for W5 and W6.
func benchFixture(b *testing.B, t Target, w Workload, sz Sizes) *fixture {
	n := sz.DrainJobs
	if w.stateful() {
		n = sz.RecoverJobs
	}
	fx := newFixture(t, b.TempDir(), n)
	bk, err := fx.open(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	err = fx.topUp(context.Background(), bk, n)
	if cerr := bk.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	return fx
}
