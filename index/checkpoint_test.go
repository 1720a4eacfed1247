package index_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// checkpointFixture returns an applier whose index holds jobs in every
// state, in several queues (one paused), with keys, histories, results,
// per-job policies and a scheduled job, plus purged jobs.
func checkpointFixture(t testing.TB) *applier {
	a := newApplier(t)
	states := []from{pending, scheduled, leased, completed, dead, cancelled, gone}
	id := uint64(1)
	for round := 0; round < 3; round++ {
		for _, s := range states {
			a.drive(id, s)
			id++
		}
	}
	r := enqueued(id, "other")
	r.Priority, r.BackoffBase, r.BackoffCap, r.Timeout = 7, 11, 22, 33
	a.apply(r)
	a.apply(step(wlog.KindLeased, id, 0))
	a.apply(step(wlog.KindFailed, id, 1))
	id++
	a.apply(enqueued(id, "other"), wlog.Record{Kind: wlog.KindPaused, Queue: "other", At: t0})
	a.apply(wlog.Record{Kind: wlog.KindPaused, Queue: "emptyq", At: t0},
		wlog.Record{Kind: wlog.KindResumed, Queue: "emptyq", At: t0})
	a.apply(wlog.Record{Kind: wlog.KindCheckpoint, NextID: id + 10, At: t0})
	return a
}

// roundTrip writes a checkpoint of x and reads it back.
func roundTrip(t *testing.T, x *index.Index, meta index.CheckpointMeta) (*index.Index, []byte) {
	t.Helper()
	var buf bytes.Buffer
	n, err := x.WriteCheckpoint(&buf, meta)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteCheckpoint: %d, %v (buffer %d)", n, err, buf.Len())
	}
	y, got, err := index.ReadCheckpoint(bytes.NewReader(buf.Bytes()), int64(buf.Len()), t0)
	if err != nil {
		t.Fatalf("ReadCheckpoint: %v", err)
	}
	if got.Index != meta.Index || got.EntryHash != meta.EntryHash || got.EntryLen != meta.EntryLen || got.First != meta.First {
		t.Fatalf("meta %+v, wrote %+v", got, meta)
	}
	return y, buf.Bytes()
}

func digest(t testing.TB, x *index.Index) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := x.Digest(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCheckpointRoundTrip checks that a checkpoint reloads to the same
// observable index (jobs, keys, heaps, counts, next ID, paused queues),
// which then evolves like the original under the same records.
func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	a := checkpointFixture(t)
	meta := index.CheckpointMeta{Index: a.pos.Index - 1, First: 1, EntryLen: 9, EntryHash: 0xfeed}
	y, _ := roundTrip(t, a.x, meta)
	if err := y.Check(); err != nil {
		t.Fatalf("Check after load: %v", err)
	}
	want, got := snapIndex(a.x), snapIndex(y)
	// Records applied and stale creation positions are not state.
	want.Records, got.Records, want.Created, got.Created = 0, 0, 0, 0
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("loaded index differs:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(digest(t, a.x), digest(t, y)) {
		t.Fatal("digests differ")
	}
	// Both evolve alike: lease everything ready, promote past the
	// scheduled job, expire leases.
	b := &applier{t: t, x: y, pos: a.pos}
	for _, ap := range []*applier{a, b} {
		ap.x.Promote(t0 + 2_000_000)
		ap.apply(enqueued(1000, "q"))
	}
	if w, g := popReady(a.x, "q"), popReady(y, "q"); !reflect.DeepEqual(w, g) {
		t.Fatalf("ready order after load %v, want %v", g, w)
	}
	if w, g := expiredIDs(a.x, t0+5000), expiredIDs(y, t0+5000); !reflect.DeepEqual(w, g) {
		t.Fatalf("expired after load %v, want %v", g, w)
	}
}

// TestCheckpointDamage checks that every truncation and every flipped bit
// of a checkpoint, an unknown version and locations outside the log are
// refused with an error matching ErrCheckpoint, never a panic.
func TestCheckpointDamage(t *testing.T) {
	t.Parallel()
	a := checkpointFixture(t)
	_, good := roundTrip(t, a.x, index.CheckpointMeta{Index: a.pos.Index - 1, First: 1})
	refused := func(name string, b []byte) {
		t.Helper()
		_, _, err := index.ReadCheckpoint(bytes.NewReader(b), int64(len(b)), t0)
		var ce *index.CheckpointError
		if !errors.Is(err, index.ErrCheckpoint) || !errors.As(err, &ce) {
			t.Fatalf("%s: got %v, want a *CheckpointError", name, err)
		}
	}
	for n := 0; n < len(good); n++ {
		refused(fmt.Sprintf("truncated to %d", n), good[:n])
	}
	for i := 0; i < len(good); i++ {
		b := bytes.Clone(good)
		b[i] ^= 1 << (i % 8)
		refused(fmt.Sprintf("bit flipped at %d", i), b)
	}
	t.Run("version", func(t *testing.T) {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[8:], index.CheckpointVersion+1)
		refused("version", b)
	})
	t.Run("locations outside the log", func(t *testing.T) {
		// Jobs are located at entries 1.. of the fixture: a checkpoint
		// claiming the log starts later must be refused even with a
		// valid checksum.
		var buf bytes.Buffer
		if _, err := a.x.WriteCheckpoint(&buf, index.CheckpointMeta{Index: a.pos.Index - 1, First: 5}); err != nil {
			t.Fatal(err)
		}
		refused("first after a location", buf.Bytes())
		buf.Reset()
		if _, err := a.x.WriteCheckpoint(&buf, index.CheckpointMeta{Index: 3, First: 1}); err != nil {
			t.Fatal(err)
		}
		refused("index before a location", buf.Bytes())
	})
}

// TestCheckpointHeapify checks that a large load builds valid heaps whose
// order is the same as pushes gave.
func TestCheckpointHeapify(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	for id := uint64(1); id <= 5000; id++ {
		r := enqueued(id, fmt.Sprintf("q%d", id%3))
		r.Priority = int64(id % 7)
		r.RunAt = t0 - int64(id%13)*1000 + int64(id%5)*1_000_000
		a.fold(r)
	}
	y, _ := roundTrip(t, a.x, index.CheckpointMeta{Index: a.pos.Index - 1, First: 1})
	if err := y.Check(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q0", "q1", "q2"} {
		a.x.Promote(t0 + 10_000_000)
		y.Promote(t0 + 10_000_000)
		if w, g := popReady(a.x, q), popReady(y, q); !reflect.DeepEqual(w, g) {
			t.Fatalf("queue %s: order after load differs (%d vs %d jobs)", q, len(g), len(w))
		}
	}
}
