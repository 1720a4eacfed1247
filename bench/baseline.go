package bench

import (
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Baseline is the disk's own limits, measured in the benchmark directory in
// the same run as the workloads.
type Baseline struct {
	// FsyncRate is serial 256-byte appends, each followed by fdatasync,
	// per second: the most single-producer durable writes the disk allows.
	// Its samples are taken before and after the workloads.
	FsyncRate Stat
	// FsyncP50 and FsyncP99 are the latency of one such append+fdatasync
	// (medians over runs).
	FsyncP50, FsyncP99 time.Duration
	// WriteBandwidth is sequential write bandwidth in bytes per second
	// (1 MiB writes, one fdatasync at the end).
	WriteBandwidth Stat
	// GroupRate is GroupProducers producers each appending 256 bytes and
	// waiting for fdatasync, again and again, through the simplest group
	// commit (see groupRun), in records per second: W2's limit on this
	// disk.
	GroupRate Stat

	p50s, p99s []float64
}

// fsyncRun appends 256-byte records to a new file in dir, each followed by
// fdatasync, for d, and returns the rate and the latencies of each step.
func fsyncRun(dir string, d time.Duration) (float64, []int64, error) {
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return 0, nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, PayloadSize)
	var lats []int64
	start := time.Now()
	for time.Since(start) < d {
		t := time.Now()
		if err := appendSynced(f, buf); err != nil {
			return 0, nil, err
		}
		lats = append(lats, int64(time.Since(t)))
	}
	return float64(len(lats)) / time.Since(start).Seconds(), lats, nil
}

// appendSynced appends buf to f and makes it durable, as a write-ahead log
// with one writer does for every record.
func appendSynced(f *os.File, buf []byte) error {
	if _, err := f.Write(buf); err != nil {
		return err
	}
	return fdatasync(f)
}

// bandwidthRun writes total bytes sequentially to a new file in dir in
// 1 MiB writes, fdatasyncs once, and returns bytes per second.
func bandwidthRun(dir string, total int) (float64, error) {
	f, err := os.CreateTemp(dir, "bandwidth-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(filepath.Clean(f.Name()))
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7) // not all zeros, in case the device compresses
	}
	start := time.Now()
	for n := 0; n < total; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := fdatasync(f); err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// measureBaseline runs both baselines runs times, interleaved, adding to b.
// Run calls it before and after the workloads, so the medians cover the
// disk's state during the whole run.
func measureBaseline(b *Baseline, dir string, runs int, sz Sizes) error {
	for range runs {
		rate, lats, err := fsyncRun(dir, sz.BaselineDuration)
		if err != nil {
			return err
		}
		slices.Sort(lats)
		b.FsyncRate.Samples = append(b.FsyncRate.Samples, rate)
		b.p50s = append(b.p50s, float64(quantile(lats, 0.50)))
		b.p99s = append(b.p99s, float64(quantile(lats, 0.99)))
		bw, err := bandwidthRun(dir, sz.BaselineBytes)
		if err != nil {
			return err
		}
		b.WriteBandwidth.Samples = append(b.WriteBandwidth.Samples, bw)
		gr, err := groupRun(dir, sz.BaselineDuration, GroupProducers, PayloadSize)
		if err != nil {
			return err
		}
		b.GroupRate.Samples = append(b.GroupRate.Samples, gr)
	}
	b.GroupRate.Median = median(b.GroupRate.Samples)
	b.FsyncRate.Median = median(b.FsyncRate.Samples)
	b.WriteBandwidth.Median = median(b.WriteBandwidth.Samples)
	b.FsyncP50 = time.Duration(median(b.p50s))
	b.FsyncP99 = time.Duration(median(b.p99s))
	return nil
}
