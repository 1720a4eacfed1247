package index_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"slices"
	"testing"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// grouped returns an enqueue of job id into queue and group.
func grouped(id uint64, queue, group string) wlog.Record {
	r := enqueued(id, queue)
	r.Group = group
	return r
}

// featuresFixture returns checkpointFixture's index plus the state of the
// features beyond the core: ordered groups (a head that is ready, one
// that is scheduled, one leased with parked members behind it, members of
// several priorities and queues), progress reports (one of them zero),
// periodic schedules (one removed) and batches (one ended).
func featuresFixture(t testing.TB) *applier {
	a := checkpointFixture(t)
	// g1: head 101 ready; 102 and 103 parked (103 of a higher priority,
	// 104 scheduled far ahead).
	r103 := grouped(103, "q", "g1")
	r103.Priority = 9
	r104 := grouped(104, "q", "g1")
	r104.RunAt = t0 + 5_000_000
	a.apply(grouped(101, "q", "g1"), grouped(102, "q", "g1"), r103, r104)
	// g2: 111 leased with a progress report; 112 and 113 parked.
	a.apply(grouped(111, "other", "g2"), grouped(112, "other", "g2"), grouped(113, "q", "g2"))
	a.apply(step(wlog.KindLeased, 111, 0))
	a.apply(wlog.Record{Kind: wlog.KindProgress, Job: 111, Attempt: 1, At: t0 + 11, Progress: 40, Note: "two of five"})
	// g3: 121 completed (no longer a member); head 122 scheduled, 123
	// parked although due.
	r122 := grouped(122, "q", "g3")
	r122.RunAt = t0 + 3_000_000
	a.apply(grouped(121, "q", "g3"), r122, grouped(123, "q", "g3"))
	a.apply(step(wlog.KindLeased, 121, 0), step(wlog.KindCompleted, 121, 1))
	// g4: 131 dead, 132 the head, in another queue with another priority.
	r132 := grouped(132, "other", "g4")
	r132.Priority = -3
	a.apply(grouped(131, "other", "g4"), r132)
	a.apply(step(wlog.KindLeased, 131, 0), step(wlog.KindDead, 131, 1))
	// Progress on ungrouped jobs: a report, and a report of zero (which
	// still gives the job its Features).
	a.apply(enqueued(141, "q"), enqueued(142, "q"))
	a.apply(step(wlog.KindLeased, 141, 0), step(wlog.KindLeased, 142, 0))
	a.apply(wlog.Record{Kind: wlog.KindProgress, Job: 141, Attempt: 1, At: t0 + 12, Progress: 50, Note: "half"},
		wlog.Record{Kind: wlog.KindProgress, Job: 142, Attempt: 1, At: t0 + 12})
	// A job that released its key when it died, and the new holder of
	// the key; a pending job that will release its key.
	r151 := enqueued(151, "q")
	r151.Key, r151.Flags = "rk", wlog.FlagReleaseKeyOnDeath
	a.apply(r151)
	a.apply(step(wlog.KindLeased, 151, 0), step(wlog.KindDead, 151, 1))
	r152 := enqueued(152, "q")
	r152.Key, r152.Flags = "rk", wlog.FlagReleaseKeyOnDeath
	a.apply(r152)
	// Schedules: two kept, one removed; batches: two kept, one ended.
	a.apply(wlog.Record{Kind: wlog.KindSchedule, Key: "nightly", Spec: "0 3 * * *", Queue: "q", Payload: []byte("n"),
		Created: t0 - 500, RunAt: t0 - 100, State: 1, Priority: 2, MaxAttempts: 4, BackoffBase: 5, BackoffCap: 6,
		Timeout: 7, Group: "g9", At: t0},
		wlog.Record{Kind: wlog.KindSchedule, Key: "every", Spec: "@every 1m0s", Queue: "other", Payload: []byte{}, Created: t0, At: t0},
		wlog.Record{Kind: wlog.KindSchedule, Key: "gone", Spec: "@hourly", Queue: "q", Created: t0, At: t0},
		wlog.Record{Kind: wlog.KindSchedule, Key: "gone", At: t0})
	a.apply(wlog.Record{Kind: wlog.KindBatch, Job: 101, Attempt: 4, Queue: "cb", Payload: []byte("then"),
		Priority: 1, MaxAttempts: 2, BackoffBase: 3, BackoffCap: 4, Timeout: 5, Group: "g1", At: t0},
		wlog.Record{Kind: wlog.KindBatch, Job: 111, Attempt: 3, Queue: "cb", Payload: []byte{}, At: t0},
		wlog.Record{Kind: wlog.KindBatch, Job: 141, Attempt: 2, Queue: "cb", At: t0},
		wlog.Record{Kind: wlog.KindBatch, Job: 141, State: 1, At: t0})
	return a
}

// featureSnap is what the features make observable in an index.
type featureSnap struct {
	Schedules []index.Schedule
	Batches   []index.Batch
	Groups    []index.GroupInfo
	Parked    []uint64
	Features  map[uint64]index.Features
	Ready     map[string][]uint64 // the order leases would take
}

func snapFeatures(x *index.Index) featureSnap {
	var s featureSnap
	for _, sc := range x.Schedules() {
		s.Schedules = append(s.Schedules, *sc)
	}
	for _, b := range x.Batches() {
		s.Batches = append(s.Batches, *b)
	}
	x.Groups(func(g index.GroupInfo) { s.Groups = append(s.Groups, g) })
	slices.SortFunc(s.Groups, func(a, b index.GroupInfo) int {
		return bytes.Compare([]byte(a.Name), []byte(b.Name))
	})
	x.Parked(func(j *index.Job) { s.Parked = append(s.Parked, j.ID) })
	slices.Sort(s.Parked)
	s.Features = map[uint64]index.Features{}
	for _, j := range x.Jobs() {
		if j.X != nil && j.X.F != nil {
			s.Features[j.ID] = *j.X.F
		}
	}
	return s
}

// TestCheckpointFeatures checks that a checkpoint restates schedules,
// batches, groups and progress: the loaded index equals the original
// (and passes Check, which requires every parked group member out of the
// heaps), digests agree, and both go on alike as groups hand their turn
// on.
func TestCheckpointFeatures(t *testing.T) {
	t.Parallel()
	a := featuresFixture(t)
	y, _ := roundTrip(t, a.x, index.CheckpointMeta{Index: a.pos.Index - 1, First: 1})
	if err := y.Check(); err != nil {
		t.Fatalf("Check after load: %v", err)
	}
	want, got := snapIndex(a.x), snapIndex(y)
	want.Records, got.Records, want.Created, got.Created = 0, 0, 0, 0
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("loaded index differs:\n got %+v\nwant %+v", got, want)
	}
	wf, gf := snapFeatures(a.x), snapFeatures(y)
	if len(wf.Parked) != 6 || len(wf.Schedules) != 2 || len(wf.Batches) != 2 || len(wf.Groups) != 4 || len(wf.Features) != 15 || wf.Features[151].ReleasedKey != "rk" {
		t.Fatalf("fixture: %+v", wf)
	}
	if !reflect.DeepEqual(wf, gf) {
		t.Fatalf("features after load differ:\n got %+v\nwant %+v", gf, wf)
	}
	if !bytes.Equal(digest(t, a.x), digest(t, y)) {
		t.Fatal("digests differ")
	}
	// Both go on alike: g2's leased job completes, handing the turn on;
	// time passes the scheduled heads; then everything ready is leased
	// in order.
	b := &applier{t: t, x: y, pos: a.pos}
	for _, ap := range []*applier{a, b} {
		ap.apply(step(wlog.KindCompleted, 111, 1))
		ap.x.Promote(t0 + 4_000_000)
		ap.check()
	}
	if w, g := snapFeatures(a.x), snapFeatures(y); !reflect.DeepEqual(w, g) {
		t.Fatalf("features after going on differ:\n got %+v\nwant %+v", g, w)
	}
	for _, q := range []string{"q", "other"} {
		if w, g := popReady(a.x, q), popReady(y, q); !reflect.DeepEqual(w, g) || len(w) == 0 {
			t.Fatalf("queue %s: ready order after load %v, want %v", q, g, w)
		}
	}
}

// TestCheckpointVersion1 checks that a version-1 checkpoint (the version-2
// encoding of an index without features, under the old version number)
// loads, and that version 1 refuses the features flag.
func TestCheckpointVersion1(t *testing.T) {
	t.Parallel()
	a := checkpointFixture(t)
	meta := index.CheckpointMeta{Index: a.pos.Index - 1, First: 1}
	_, good := roundTrip(t, a.x, meta)
	v1 := bytes.Clone(good)
	binary.LittleEndian.PutUint32(v1[8:], 1)
	refix(v1)
	y, _, err := index.ReadCheckpoint(bytes.NewReader(v1), int64(len(v1)), t0)
	if err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if !bytes.Equal(digest(t, a.x), digest(t, y)) {
		t.Fatal("version 1 loads to another state")
	}
	f := featuresFixture(t)
	_, feat := roundTrip(t, f.x, index.CheckpointMeta{Index: f.pos.Index - 1, First: 1})
	binary.LittleEndian.PutUint32(feat[8:], 1)
	binary.LittleEndian.PutUint32(feat[28:], 0) // no schedules
	binary.LittleEndian.PutUint32(feat[60:], 0) // no batches
	refix(feat)
	if _, _, err := index.ReadCheckpoint(bytes.NewReader(feat), int64(len(feat)), t0); err == nil {
		t.Fatal("version 1 with features loaded")
	}
}

// refix recomputes a checkpoint's trailing checksum in place.
func refix(b []byte) {
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
}

// TestCheckpointFeaturesDamage checks that every truncation and flipped
// bit of a checkpoint with features is refused, and that sections that
// checksum but do not make sense (a schedule or batch out of order or
// without a queue, counts beyond the file) are too.
func TestCheckpointFeaturesDamage(t *testing.T) {
	t.Parallel()
	a := featuresFixture(t)
	meta := index.CheckpointMeta{Index: a.pos.Index - 1, First: 1}
	_, good := roundTrip(t, a.x, meta)
	refused := func(name string, b []byte) {
		t.Helper()
		if _, _, err := index.ReadCheckpoint(bytes.NewReader(b), int64(len(b)), t0); !isCheckpointError(err) {
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
	// Checksummed but inconsistent: the sections sit at the end, batches
	// last; the last batch (111) starts 8+8 bytes plus its template
	// before the checksum.
	le := binary.LittleEndian
	tmpl := 4 + 2 + 4 + 0 + 5*8 + 4 // queue "cb", empty payload, numbers, no group
	lastBatch := len(good) - 4 - tmpl - 16
	if le.Uint64(good[lastBatch:]) != 111 {
		t.Fatalf("layout: %d at the last batch", le.Uint64(good[lastBatch:]))
	}
	edits := map[string]func(b []byte) []byte{
		"batches out of order": func(b []byte) []byte { le.PutUint64(b[lastBatch:], 100); return b },
		"batch of no jobs":     func(b []byte) []byte { le.PutUint64(b[lastBatch+8:], 0); return b },
		"batch without queue": func(b []byte) []byte {
			// Queue "cb" becomes "": its length 0, its bytes gone.
			out := append(bytes.Clone(b[:lastBatch+16]), 0, 0, 0, 0)
			return append(out, b[lastBatch+16+4+2:]...)
		},
		"more schedules":            func(b []byte) []byte { le.PutUint32(b[28:], 3); return b },
		"fewer batches":             func(b []byte) []byte { le.PutUint32(b[60:], 1); return b },
		"schedules beyond the file": func(b []byte) []byte { le.PutUint32(b[28:], 1<<30); return b },
		"features without extra": func(b []byte) []byte {
			// Job 1 is the first job: pending, keyed, without extra.
			b[80+queueTableLen(good)+13] |= 4
			return b
		},
	}
	for name, edit := range edits {
		b := edit(bytes.Clone(good))
		refix(b)
		refused(name, b)
	}
}

// queueTableLen returns the length of a checkpoint's queue table.
func queueTableLen(b []byte) int {
	n := int(binary.LittleEndian.Uint32(b[56:]))
	off := 80
	for i := 0; i < n; i++ {
		off += 4 + int(binary.LittleEndian.Uint32(b[off:])) + 1 + 5*8
	}
	return off - 80
}

// isCheckpointError reports whether err is a *CheckpointError matching
// ErrCheckpoint.
func isCheckpointError(err error) bool {
	var ce *index.CheckpointError
	return errors.Is(err, index.ErrCheckpoint) && errors.As(err, &ce)
}
