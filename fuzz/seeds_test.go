package fuzz

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
)

// TestWriteSeeds regenerates the generated seed corpora under
// testdata/fuzz/ (files named gen-*; hand-written seeds and inputs the
// fuzzer saved are left alone). It runs only with WALQ_WRITE_SEEDS=1:
//
//	WALQ_WRITE_SEEDS=1 go test ./fuzz -run TestWriteSeeds
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("WALQ_WRITE_SEEDS") != "1" {
		t.Skip("set WALQ_WRITE_SEEDS=1 to regenerate the seed corpora")
	}
	for name, seeds := range map[string]map[string][]any{
		"FuzzDecodeEntry": decodeSeeds(t),
		"FuzzOpenDir":     openDirSeeds(t),
		"FuzzAPISequence": apiSeeds(),
		"FuzzCheckpoint":  checkpointSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		old, _ := filepath.Glob(filepath.Join(dir, "gen-*"))
		for _, f := range old {
			os.Remove(f)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for seed, vals := range seeds {
			if err := os.WriteFile(filepath.Join(dir, "gen-"+seed), corpusFile(vals...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d seeds", name, len(seeds))
	}
}

// corpusFile encodes values in the "go test fuzz v1" format.
func corpusFile(vals ...any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: unsupported %T", v))
		}
	}
	return []byte(b.String())
}

const seedAt = 1_893_456_000_000_000_000

// sampleRecords returns one record of every kind with its fields set.
func sampleRecords() []wlog.Record {
	var out []wlog.Record
	for _, k := range wlog.Kinds() {
		r := wlog.Record{Kind: k, Job: 42, At: seedAt, Attempt: 2}
		switch k {
		case wlog.KindEnqueued, wlog.KindCarry:
			r.Queue, r.Key, r.Payload, r.Priority, r.RunAt, r.MaxAttempts = "mail", "k1", []byte("payload"), -3, seedAt+5e9, 5
			r.BackoffBase, r.BackoffCap, r.Timeout = 1e9, 3600e9, 30e9
			if k == wlog.KindCarry {
				r.State, r.Error, r.Result, r.Created, r.Finished = 4, "boom", []byte{}, seedAt-1e9, seedAt
				r.History = []wlog.Attempt{{Started: seedAt - 2e9, Ended: seedAt - 1e9, Outcome: wlog.KindFailed, Error: "x"}, {Started: seedAt}}
			}
		case wlog.KindCompleted:
			r.Result = []byte("result")
		case wlog.KindFailed, wlog.KindDead, wlog.KindExpired:
			r.Error, r.RunAt = "boom", seedAt+1e9
		case wlog.KindLeased, wlog.KindExtended:
			r.Deadline = seedAt + 30e9
		case wlog.KindRequeued, wlog.KindPaused, wlog.KindResumed:
			r.Queue = "other"
		case wlog.KindCheckpoint:
			r.Job, r.NextID = 0, 1<<40
		}
		out = append(out, r)
	}
	return out
}

// sealed returns body as an entry at index with a valid checksum.
func sealed(index uint64, version byte, body []byte) []byte {
	data := append([]byte{0, 0, 0, 0, version}, body...)
	var ib [8]byte
	binary.LittleEndian.PutUint64(ib[:], index)
	tab := crc32.MakeTable(crc32.Castagnoli)
	sum := crc32.Update(crc32.Checksum(data[4:], tab), tab, ib[:])
	binary.LittleEndian.PutUint32(data, sum)
	return data
}

func decodeSeeds(t *testing.T) map[string][]any {
	seeds := map[string][]any{}
	recs := sampleRecords()
	for _, r := range recs {
		data, err := wlog.EncodeEntry(7, []wlog.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		seeds["kind-"+r.Kind.String()] = []any{data, uint64(7)}
	}
	all, err := wlog.EncodeEntry(1, slices.Clone(recs))
	if err != nil {
		t.Fatal(err)
	}
	seeds["every-kind"] = []any{all, uint64(1)}
	// Metadata (tag 22) after the payload, in both records that carry it.
	meta := wlog.EncodeMeta(map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme"})
	for _, r := range recs {
		if r.Kind == wlog.KindEnqueued || r.Kind == wlog.KindCarry {
			r.Meta = meta
			data, err := wlog.EncodeEntry(7, []wlog.Record{r, {Kind: wlog.KindLeased, Job: 42, At: seedAt}})
			if err != nil {
				t.Fatal(err)
			}
			seeds["meta-"+r.Kind.String()] = []any{data, uint64(7)}
		}
	}
	// A meta field whose map claims 2^31 entries, and one holding a bin.
	seeds["hostile-meta"] = []any{sealed(9, 1, []byte{0x91, 0x82, 0x01, 0x01, 0x16, 0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 'a'}), uint64(9)}
	seeds["meta-bin-value"] = []any{sealed(9, 1, []byte{0x91, 0x82, 0x01, 0x01, 0x16, 0x81, 0xa1, 'a', 0xc4, 0x01, 'b'}), uint64(9)}
	seeds["wrong-index"] = []any{all, uint64(2)}
	seeds["truncated-half"] = []any{all[:len(all)/2], uint64(1)}
	seeds["truncated-header"] = []any{all[:3], uint64(1)}
	seeds["zeros"] = []any{make([]byte, 32), uint64(1)}
	seeds["empty"] = []any{[]byte{}, uint64(0)}
	seeds["version-2"] = []any{sealed(5, 2, all[5:]), uint64(5)}
	// Sealed hostile bodies: counts and lengths far beyond the entry.
	seeds["hostile-record-count"] = []any{sealed(9, 1, []byte{0xdd, 0x7f, 0xff, 0xff, 0xff, 0x81, 0x01, 0x01}), uint64(9)}
	seeds["hostile-history"] = []any{sealed(9, 1, []byte{0x91, 0x82, 0x01, 0x08, 0x12, 0xdd, 0x7f, 0xff, 0xff, 0xff, 0x94, 0, 0, 0, 0xa0}), uint64(9)}
	seeds["hostile-payload"] = []any{sealed(9, 1, []byte{0x91, 0x82, 0x01, 0x01, 0x06, 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a'}), uint64(9)}
	// The known allocation bug: a string claiming 2^31 bytes.
	seeds["hostile-string"] = []any{sealed(9, 1, []byte{0x91, 0x82, 0x01, 0x01, 0x04, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'}), uint64(9)}
	return seeds
}

// seedWorkload runs a small, deterministic workload on a queue in dir and
// returns its segment files' names and bytes, oldest first.
func seedWorkload(t *testing.T, dir string, jobs int, compact bool) ([]string, [][]byte) {
	ctx := context.Background()
	mc := mockClock()
	q, err := queue.Open(dir, &queue.Options{Clock: mc, Logger: quiet, SegmentSize: 4 << 10, CompactRatio: -1,
		KeyRetention: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < jobs; i++ {
		nj := queue.NewJob{Payload: make([]byte, rng.IntN(300)), Key: fmt.Sprintf("k%d", rng.IntN(jobs))}
		if i%5 == 0 {
			nj.Queue, nj.Delay = "later", time.Hour
		}
		if _, err := q.Enqueue(ctx, nj); err != nil {
			t.Fatal(err)
		}
		l, err := q.TryLease(ctx, "")
		if errors.Is(err, queue.ErrNoJob) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		switch i % 4 {
		case 0:
			err = q.Fail(ctx, l.Token, errors.New("boom"))
		case 1:
			err = q.Fail(ctx, l.Token, queue.Permanent(errors.New("bad")))
		case 2:
			err = q.Complete(ctx, l.Token, []byte("ok"))
		}
		if err != nil {
			t.Fatal(err)
		}
		mc.Add(10 * time.Second)
	}
	if compact {
		if _, err := q.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Left open on purpose: a lease may be held, as after a crash.
	segs, _ := filepath.Glob(filepath.Join(dir, "0*"))
	var data [][]byte
	for _, s := range segs {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, b)
	}
	q.Close()
	for i := range segs {
		segs[i] = filepath.Base(segs[i])
	}
	return segs, data
}

func openDirSeeds(t *testing.T) map[string][]any {
	var first uint64
	seeds := map[string][]any{}
	_, segs := seedWorkload(t, t.TempDir(), 8, false)
	seeds["one-segment"] = []any{segs[0], uint64(1), []byte{}, uint64(0)}
	seeds["torn-tail"] = []any{segs[0][:len(segs[0])-7], uint64(1), []byte{}, uint64(0)}
	seeds["zero-tail"] = []any{append(slices.Clone(segs[0]), make([]byte, 40)...), uint64(1), []byte{}, uint64(0)}
	names, segs := seedWorkload(t, t.TempDir(), 60, false)
	if len(segs) < 2 {
		t.Fatalf("workload left %d segments", len(segs))
	}
	fmt.Sscan(names[1], &first)
	seeds["two-segments"] = []any{segs[0], uint64(1), segs[1], first}
	flipped := slices.Clone(segs[0])
	flipped[len(flipped)/2] ^= 0x20
	seeds["bit-flip-old-segment"] = []any{flipped, uint64(1), segs[1], first}
	seeds["gap-between-segments"] = []any{segs[0], uint64(1), segs[1], first + 3}
	names, segs = seedWorkload(t, t.TempDir(), 60, true)
	var f1, f2 uint64
	fmt.Sscan(names[0], &f1)
	s2 := []byte{}
	if len(segs) > 1 {
		fmt.Sscan(names[1], &f2)
		s2 = segs[1]
	}
	seeds["compacted"] = []any{segs[0], f1, s2, f2}
	seeds["empty"] = []any{[]byte{}, uint64(1), []byte{}, uint64(0)}
	seeds["zeros"] = []any{make([]byte, 100), uint64(1), []byte{}, uint64(0)}
	seeds["garbage"] = []any{[]byte("\x05hello\x07world!!\x00\x00\xff\xff\xff\xff\x0f"), uint64(1), []byte{}, uint64(0)}
	return seeds
}

func apiSeeds() map[string][]any {
	seeds := map[string][]any{
		// enqueue, lease, complete, crash, complete again with the old token
		"complete-crash-stale": {[]byte{0, 1, 3, 0, 5, 0, 15, 5, 0}},
		// enqueue with a key twice, lease, fail, advance, lease, complete
		"retry": {[]byte{0, 4, 0, 4, 3, 0, 6, 0, 0, 9, 4, 3, 0, 5, 0}},
		// lease, release, lease again, complete with the released token
		"release-reuse": {[]byte{0, 1, 3, 0, 8, 0, 3, 0, 5, 1}},
		// batch, lease, permanent failure, requeue, purge, compact, reopen
		"dead-letter": {[]byte{2, 2, 9, 9, 9, 3, 0, 6, 0, 1, 10, 1, 12, 1, 13, 14}},
		// lease, let the lease expire, complete late
		"expiry": {[]byte{0, 1, 3, 0, 9, 100, 5, 0}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i, n := range []int{32, 128, 512} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		seeds[fmt.Sprintf("random-%d", i)] = []any{b}
	}
	return seeds
}
