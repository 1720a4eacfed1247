package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	wlog "github.com/walq/walq/log"
)

// This file simulates power loss: writes that were never fsynced may vanish,
// be cut short, read back as zeros or as garbage. A journaled workload
// records, after every acknowledged call (an fsync boundary in Sync mode),
// where the log ended and what the queue showed; an image of the directory
// cut at any byte must reopen to exactly the state of the last boundary at
// or before the cut, with its leases voided. The same journal drives the
// bit-rot test: a byte flipped anywhere before the last entry makes Open
// report where, and log.Salvage keeps exactly the prefix before it.

// boundary is the log's extent after one acknowledged call: the tail
// segment, its size, and the jobs as they would reopen.
type boundary struct {
	seg  string // tail segment file name
	size int64
	jobs []viewJob
}

// before reports whether b ends at or before the given position.
func (b boundary) before(seg string, off int64) bool {
	return b.seg < seg || (b.seg == seg && b.size <= off)
}

// viewJob is what must survive a crash of a job: the fields a reopen
// keeps, with states as they reopen (a lease is voided: the job is pending
// with the attempt counted, or dead without attempts left).
type viewJob struct {
	ID       uint64
	Queue    string
	Key      string
	State    string
	Attempt  int
	Payload  string
	Result   string
	HasRes   bool
	Priority int32
}

// viewOf returns every job of q as it would reopen.
func viewOf(t testing.TB, q *Queue) []viewJob {
	t.Helper()
	ctx := context.Background()
	js, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]viewJob, 0, len(js))
	for _, j := range js {
		full, err := q.Get(ctx, j.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", j.ID, err)
		}
		state := string(j.State)
		switch j.State {
		case StateReady, StateScheduled:
			state = "pending"
		case StateLeased:
			state = "pending"
			if j.Attempt >= j.MaxAttempts {
				state = string(StateDead)
			}
		}
		out = append(out, viewJob{ID: j.ID, Queue: j.Queue, Key: j.Key, State: state, Attempt: j.Attempt,
			Payload: string(full.Payload), Result: string(full.Result), HasRes: full.HasResult, Priority: j.Priority})
	}
	return out
}

// journal is a finished workload: the directory it left and its boundaries.
type journal struct {
	dir        string
	boundaries []boundary
	final      map[string][]byte // segment name → bytes at the end
}

// tailOf returns the last segment file of dir and its size.
func tailOf(t testing.TB, dir string) (string, int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, strings.Repeat("[0-9]", 20)))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s (%v)", dir, err)
	}
	slices.Sort(segs)
	st, err := os.Stat(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(segs[len(segs)-1]), st.Size()
}

// runJournal runs n random calls (seeded) on a fresh queue in Sync mode with
// small segments, recording a boundary after each. Each call writes one
// log entry: leases last an hour, so nothing expires and no call writes an
// expiry first.
func runJournal(t *testing.T, seed uint64, n int) *journal {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	mc := newMock()
	q := openTest(t, dir, &Options{Clock: mc, SegmentSize: 4 << 10, CompactRatio: -1,
		LeaseDuration: time.Hour, MaxAttempts: 3})
	rng := rand.New(rand.NewPCG(seed, 99))
	j := &journal{dir: dir}
	record := func() {
		seg, size := tailOf(t, dir)
		j.boundaries = append(j.boundaries, boundary{seg: seg, size: size, jobs: viewOf(t, q)})
	}
	record()
	var tokens []Token
	for i := 0; i < n; i++ {
		var err error
		switch op := rng.IntN(10); {
		case op < 3:
			var jobs []NewJob
			for k := rng.IntN(3); k >= 0; k-- {
				jobs = append(jobs, NewJob{Payload: bytes.Repeat([]byte{byte('a' + i%26)}, rng.IntN(400)),
					Key: fmt.Sprintf("key-%d", rng.IntN(n)), Priority: int32(rng.IntN(3)), Queue: []string{"", "b"}[rng.IntN(2)]})
			}
			_, err = q.EnqueueBatch(ctx, jobs)
		case op < 5:
			var l *Lease
			if l, err = q.TryLease(ctx, []string{"", "b"}[rng.IntN(2)]); err == nil {
				tokens = append(tokens, l.Token)
			} else if errors.Is(err, ErrNoJob) {
				continue // nothing written: no boundary
			}
		case op < 8 && len(tokens) > 0:
			k := rng.IntN(len(tokens))
			tok := tokens[k]
			tokens = slices.Delete(tokens, k, k+1)
			switch op {
			case 5, 6:
				err = q.Complete(ctx, tok, []byte(fmt.Sprintf("result %d", tok.Job)))
			default:
				err = q.Fail(ctx, tok, errors.New("boom"))
			}
		case op == 8:
			var id uint64
			if id = uint64(rng.IntN(i+1)) + 1; q.Cancel(ctx, id) != nil && q.Requeue(ctx, []uint64{id}, RequeueOptions{}) != nil {
				continue // neither applied: nothing written
			}
		default:
			mc.Add(time.Second)
			continue
		}
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		record()
	}
	j.final = map[string][]byte{}
	segs, _ := filepath.Glob(filepath.Join(dir, strings.Repeat("[0-9]", 20)))
	for _, s := range segs {
		j.final[filepath.Base(s)] = readFileT(t, s)
	}
	return j
}

func readFileT(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// segNames returns the journal's segment names in order.
func (j *journal) segNames() []string {
	names := make([]string, 0, len(j.final))
	for n := range j.final {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// image writes a crash image into a new directory: every segment before
// tail whole, tail as given, no segment after it.
func (j *journal) image(t *testing.T, tail string, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{"FORMAT": readFileT(t, filepath.Join(j.dir, "FORMAT")), tail: content}
	for name, b := range j.final {
		if name < tail {
			files[name] = b
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// expected returns the last boundary at or before the position.
func (j *journal) expected(seg string, off int64) (int, boundary) {
	k := 0
	for i, b := range j.boundaries {
		if b.before(seg, off) {
			k = i
		}
	}
	return k, j.boundaries[k]
}

// checkImage opens a crash image and compares it with the boundary.
func checkImage(t *testing.T, dir, what string, k int, want boundary) {
	t.Helper()
	// Durability None keeps hundreds of reopens fast: the tail repair
	// fsyncs regardless, and nothing written after it is looked at again.
	q, err := Open(dir, &Options{Clock: newMock(), CompactRatio: -1, Logger: openTestLogger(),
		Durability: None})
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	defer q.Close()
	if got := viewOf(t, q); !reflect.DeepEqual(got, want.jobs) {
		t.Fatalf("%s: reopened to %d jobs, want the %d of boundary %d (%s at %d):\n got %+v\nwant %+v",
			what, len(got), len(want.jobs), k, want.seg, want.size, got, want.jobs)
	}
	if err := q.check(); err != nil {
		t.Fatalf("%s: invariants: %v", what, err)
	}
}

// TestPowerLossTornWrites cuts the log at every fsync boundary and at random
// offsets after it (the unsynced part may be missing, cut short, zeroed or
// garbage), and checks that each image reopens to exactly the last
// acknowledged state before the cut.
func TestPowerLossTornWrites(t *testing.T) {
	t.Parallel()
	j := runJournal(t, 1, 120)
	rng := rand.New(rand.NewPCG(7, 7))
	counts := map[string]int{}
	// Every fsync boundary, exactly.
	for k, b := range j.boundaries {
		img := j.image(t, b.seg, j.final[b.seg][:b.size])
		checkImage(t, img, fmt.Sprintf("cut at boundary %d (%s:%d)", k, b.seg, b.size), k, b)
		counts["boundary"]++
	}
	// Random cuts after a boundary: the rest of the segment missing, or
	// replaced by zeros or garbage (a torn write of unsynced data).
	for _, seg := range j.segNames() {
		full := j.final[seg]
		for range 12 {
			off := int64(rng.IntN(len(full) + 1))
			k, want := j.expected(seg, off)
			for _, tail := range []string{"truncated", "zeros", "garbage"} {
				content := slices.Clone(full[:off])
				extra := rng.IntN(600) + 1
				switch tail {
				case "zeros":
					content = append(content, make([]byte, extra)...)
				case "garbage":
					junk := make([]byte, extra)
					for i := range junk {
						junk[i] = byte(rng.UintN(256))
					}
					content = append(content, junk...)
				}
				img := j.image(t, seg, content)
				checkImage(t, img, fmt.Sprintf("%s after %s:%d", tail, seg, off), k, want)
				counts[tail]++
			}
		}
	}
	t.Logf("images reopened: %v (%d segments, %d boundaries)", counts, len(j.final), len(j.boundaries))
}

// TestBitRot flips a byte in an old segment (or before the last entry of
// the tail): Open must fail with a *CorruptError naming the segment and the
// offset of the damaged entry; log.Salvage must then keep exactly the
// entries before it, and the queue must reopen to that state and work on.
func TestBitRot(t *testing.T) {
	t.Parallel()
	j := runJournal(t, 2, 120)
	names := j.segNames()
	if len(names) < 3 {
		t.Fatalf("workload left %d segments, want several", len(names))
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for trial := range 30 {
		seg := names[rng.IntN(len(names))]
		starts := j.frameStarts(seg)
		limit := int64(len(j.final[seg]))
		if seg == names[len(names)-1] {
			limit = starts[len(starts)-1] // not the last entry: that is a torn tail
		}
		if limit == 0 {
			continue
		}
		off := rng.Int64N(limit)
		frame := int64(0)
		for _, s := range starts {
			if s <= off {
				frame = s
			}
		}
		what := fmt.Sprintf("trial %d: byte %s:%d flipped (entry at %d)", trial, seg, off, frame)
		dir := t.TempDir()
		for _, name := range append(names, "FORMAT") {
			b := slices.Clone(readFileT(t, filepath.Join(j.dir, name)))
			if name == seg {
				b[off] ^= byte(1 + rng.IntN(255))
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Open(dir, &Options{Clock: newMock(), CompactRatio: -1, Logger: openTestLogger()})
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Open = %v, want a *CorruptError", what, err)
		}
		if filepath.Base(ce.Segment) != seg || ce.Offset != frame {
			t.Fatalf("%s: Open reports %s offset %d: %v", what, filepath.Base(ce.Segment), ce.Offset, err)
		}
		rep, err := wlog.Salvage(dir, false)
		if err != nil {
			t.Fatalf("%s: Salvage: %v", what, err)
		}
		k, want := j.expected(seg, frame)
		checkImage(t, dir, what+", salvaged", k, want)
		reopenWorks(t, dir, what)
		t.Logf("%s: salvage kept up to index %d, boundary %d", what, rep.KeptLast, k)
	}
}

// frameStarts returns the offsets at which entries start in a segment: 0 and
// every boundary inside it (each call wrote one entry).
func (j *journal) frameStarts(seg string) []int64 {
	starts := []int64{0}
	for _, b := range j.boundaries {
		if b.seg == seg && b.size > starts[len(starts)-1] && b.size < int64(len(j.final[seg])) {
			starts = append(starts, b.size)
		}
	}
	return starts
}

// reopenWorks enqueues, leases and completes a job in the queue in dir,
// closes it, and checks that a reopen shows the same jobs.
func reopenWorks(t *testing.T, dir, what string) {
	t.Helper()
	ctx := context.Background()
	opts := &Options{Clock: newMock(), CompactRatio: -1, Logger: openTestLogger()}
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	r, err := q.Enqueue(ctx, NewJob{Queue: "after", Payload: []byte("after the damage")})
	if err != nil {
		t.Fatalf("%s: Enqueue: %v", what, err)
	}
	l, err := q.TryLease(ctx, "after")
	if err != nil || l.Job.ID != r.ID {
		t.Fatalf("%s: TryLease = %v, %v", what, l, err)
	}
	if err := q.Complete(ctx, l.Token, []byte("ok")); err != nil {
		t.Fatalf("%s: Complete: %v", what, err)
	}
	want := viewOf(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(dir, opts)
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	defer q.Close()
	if got := viewOf(t, q); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: reopen changed the jobs", what)
	}
}
