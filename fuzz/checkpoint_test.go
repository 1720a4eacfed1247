package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// checkpointIndex returns an index with jobs in every state (keys, a
// result, a history, per-job policy, a paused queue, ordered groups,
// progress, a schedule, a batch), folded from valid
// records at entries 1.., and the last entry used.
func checkpointIndex(t testing.TB) (*index.Index, uint64) {
	x := index.New()
	x.Promote(seedAt)
	at := uint64(0)
	apply := func(recs ...wlog.Record) {
		for i := range recs {
			at++
			if err := x.Apply(&recs[i], index.Pos{Index: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	enq := func(id uint64, queue, key string, runAt int64) wlog.Record {
		return wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: seedAt, Queue: queue, Key: key,
			Payload: []byte("payload"), PayloadAt: 9, RunAt: runAt, MaxAttempts: 3, BackoffBase: 1e9}
	}
	apply(enq(1, "mail", "k1", seedAt), enq(2, "mail", "", seedAt+9e9), enq(3, "mail", "k3", seedAt),
		enq(4, "other", "", seedAt), enq(5, "other", "k5", seedAt), enq(6, "mail", "", seedAt))
	apply(wlog.Record{Kind: wlog.KindLeased, Job: 3, At: seedAt, Attempt: 1, Deadline: seedAt + 30e9},
		wlog.Record{Kind: wlog.KindCompleted, Job: 3, At: seedAt + 1, Attempt: 1, Result: []byte("ok"), ResultAt: 4},
		wlog.Record{Kind: wlog.KindLeased, Job: 4, At: seedAt, Attempt: 1, Deadline: seedAt + 30e9},
		wlog.Record{Kind: wlog.KindDead, Job: 4, At: seedAt + 2, Attempt: 1, Error: "boom"},
		wlog.Record{Kind: wlog.KindLeased, Job: 5, At: seedAt, Attempt: 1, Deadline: seedAt + 30e9},
		wlog.Record{Kind: wlog.KindCancelled, Job: 6, At: seedAt + 3},
		wlog.Record{Kind: wlog.KindPaused, Queue: "other", At: seedAt})
	// The features: an ordered group with its holder leased and progress
	// reported, a member parked behind it, a group whose head waits; a
	// periodic schedule; a batch with its callback.
	grouped := func(id uint64, group string, runAt int64) wlog.Record {
		r := enq(id, "mail", "", runAt)
		r.Group = group
		return r
	}
	apply(grouped(7, "cust-1", seedAt), grouped(8, "cust-1", seedAt), grouped(9, "cust-2", seedAt+9e9),
		grouped(10, "cust-2", seedAt),
		wlog.Record{Kind: wlog.KindLeased, Job: 7, At: seedAt, Attempt: 1, Deadline: seedAt + 30e9},
		wlog.Record{Kind: wlog.KindProgress, Job: 7, At: seedAt, Attempt: 1, Progress: 60, Note: "3/5"},
		wlog.Record{Kind: wlog.KindSchedule, Key: "nightly", Spec: "0 3 * * *", Queue: "mail", Payload: []byte("n"),
			Created: seedAt, At: seedAt, Group: "cust-1"},
		wlog.Record{Kind: wlog.KindBatch, Job: 9, Attempt: 2, Queue: "mail", Payload: []byte("then"), At: seedAt})
	return x, at
}

// checkpointSeeds returns FuzzCheckpoint's generated seeds: a valid
// checkpoint, damaged copies, and an empty one.
func checkpointSeeds(t testing.TB) map[string][]any {
	x, last := checkpointIndex(t)
	var b bytes.Buffer
	if _, err := x.WriteCheckpoint(&b, index.CheckpointMeta{Index: last, First: 1, EntryLen: 40, EntryHash: 7}); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	var e bytes.Buffer
	if _, err := index.New().WriteCheckpoint(&e, index.CheckpointMeta{Index: 1, First: 1}); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[100] ^= 4
	return map[string][]any{
		"valid":       {good, uint64(0)},
		"valid-fixed": {good, uint64(1)},
		"empty-index": {e.Bytes(), uint64(0)},
		"flipped":     {flipped, uint64(0)},
		"flipped-fix": {flipped, uint64(1)},
		"truncated":   {good[:len(good)/2], uint64(1)},
		"header-only": {good[:84], uint64(1)},
		"nothing":     {[]byte{}, uint64(0)},
	}
}

// FuzzCheckpoint: any bytes decode as a checkpoint to an index that passes
// its invariant check and re-encodes to a checkpoint that decodes to the
// same state, or fail with a *index.CheckpointError (matching
// index.ErrCheckpoint); never a panic, and no allocation beyond what the
// input's size allows. With mode&1 the trailing checksum is made valid
// first, so that the fuzzer reaches past it.
func FuzzCheckpoint(f *testing.F) {
	for _, s := range checkpointSeeds(f) {
		f.Add(s[0].([]byte), s[1].(uint64))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint64) {
		data = bytes.Clone(data)
		if mode&1 == 1 && len(data) >= 4 {
			sum := crc32.Checksum(data[:len(data)-4], crc32.MakeTable(crc32.Castagnoli))
			binary.LittleEndian.PutUint32(data[len(data)-4:], sum)
		}
		x, meta, err := index.ReadCheckpoint(bytes.NewReader(data), int64(len(data)), seedAt)
		if err != nil {
			var ce *index.CheckpointError
			if !errors.Is(err, index.ErrCheckpoint) || !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *CheckpointError", err, err)
			}
			return
		}
		if err := x.Check(); err != nil {
			t.Fatalf("decoded index breaks its invariants: %v", err)
		}
		var again bytes.Buffer
		if _, err := x.WriteCheckpoint(&again, meta); err != nil {
			t.Fatal(err)
		}
		y, _, err := index.ReadCheckpoint(bytes.NewReader(again.Bytes()), int64(again.Len()), seedAt)
		if err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
		var d1, d2 bytes.Buffer
		if err := x.Digest(&d1); err != nil {
			t.Fatal(err)
		}
		if err := y.Digest(&d2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d1.Bytes(), d2.Bytes()) {
			t.Fatal("re-encoded checkpoint decodes to another state")
		}
	})
}
