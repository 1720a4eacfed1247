package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

// foldDigest opens dir read-only through recovery, with or without its
// checkpoint, and returns the canonical digest of the folded index (before
// any lease is voided) and the report.
func foldDigest(t testing.TB, dir string, noCheckpoint bool) ([]byte, *recovery.Report) {
	t.Helper()
	l, x, rep, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{ReadOnly: true,
		Logger: openTestLogger()}, NoCheckpoint: noCheckpoint, Now: epoch})
	if err != nil {
		t.Fatalf("recovery.Open(%s, noCheckpoint=%v): %v", dir, noCheckpoint, err)
	}
	defer l.Close()
	if err := x.Check(); err != nil {
		t.Fatalf("index of %s (noCheckpoint=%v): %v", dir, noCheckpoint, err)
	}
	var b bytes.Buffer
	if err := x.Digest(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), rep
}

// sameAsReplay checks that opening dir from its checkpoint gives exactly
// the state a full replay gives, and returns the checkpoint report.
func sameAsReplay(t testing.TB, dir string) recovery.CheckpointReport {
	t.Helper()
	full, _ := foldDigest(t, dir, true)
	got, rep := foldDigest(t, dir, false)
	if !bytes.Equal(got, full) {
		t.Fatalf("%s: state from the checkpoint (%+v) differs from a full replay", dir, rep.Checkpoint)
	}
	return rep.Checkpoint
}

// checkpointT writes the queue's checkpoint, failing the test on error.
func checkpointT(t testing.TB, q *Queue) checkpointStats {
	t.Helper()
	q.compactMu.Lock()
	defer q.compactMu.Unlock()
	st, err := q.writeCheckpoint(true)
	if err != nil {
		t.Fatalf("writeCheckpoint: %v", err)
	}
	return st
}

// leaveLeased leases n jobs and leaves them leased.
func leaveLeased(t testing.TB, q *Queue, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		enqueueT(t, q, NewJob{Payload: []byte(fmt.Sprintf("leased %d", i))})
		leaseT(t, q, "")
	}
}

// TestCheckpointOpenMatchesReplay checks that a reopen from the checkpoint
// (written by compaction, then by hand, with work after each) gives the
// state a full replay gives: jobs in every state, keys, results, paused
// queues, leases voided the same way, payloads readable.
func TestCheckpointOpenMatchesReplay(t *testing.T) {
	t.Parallel()
	mc := newMock()
	dir := t.TempDir()
	q := openTest(t, dir, compactOpts(mc))
	mixedWorkload(t, q, mc, 300)
	featureWorkload(t, q, mc, 0)
	if _, err := q.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, recovery.CheckpointName)); err != nil {
		t.Fatalf("compaction wrote no checkpoint: %v", err)
	}
	img := crashImage(t, q)
	if c := sameAsReplay(t, img); !c.Used {
		t.Fatalf("checkpoint after compaction not used: %s", c.Reason)
	}
	mixedWorkload(t, q, mc, 40)
	featureWorkload(t, q, mc, 1)
	leaveLeased(t, q, 3)
	st := checkpointT(t, q)
	if _, err := os.Stat(filepath.Join(dir, recovery.CheckpointName)); err != nil || st.Bytes == 0 {
		t.Fatalf("no checkpoint written with features in play: %+v, %v", st, err)
	}
	mixedWorkload(t, q, mc, 20)
	featureWorkload(t, q, mc, 2)
	leaveLeased(t, q, 2)
	img = crashImage(t, q)
	c := sameAsReplay(t, img)
	if !c.Used || c.Index != st.Index || c.Jobs != st.Jobs {
		t.Fatalf("checkpoint report %+v, wrote %+v", c, st)
	}
	// The writer's Open (which voids leases) agrees with one that
	// replays everything, down to payloads and results.
	plain := copyDir(t, img)
	if err := os.Remove(filepath.Join(plain, recovery.CheckpointName)); err != nil {
		t.Fatal(err)
	}
	opts := compactOpts(mc)
	q1, q2 := openTest(t, img, opts), openTest(t, plain, opts)
	if r := q1.Recovery().Checkpoint; !r.Used {
		t.Fatalf("queue Open did not use the checkpoint: %+v", r)
	}
	if r := q2.Recovery().Checkpoint; r.Used || r.Reason != "no checkpoint" {
		t.Fatalf("queue Open without a checkpoint reports %+v", r)
	}
	if a, b := fullListing(t, q1), fullListing(t, q2); !reflect.DeepEqual(a, b) {
		t.Fatal("queue opened from the checkpoint differs from a full replay")
	}
	if a, b := q1.Recovery().Voided, q2.Recovery().Voided; a != b || a == 0 {
		t.Fatalf("voided %d from the checkpoint, %d by replay; want the same, not 0", a, b)
	}
	if a, b := featureListing(t, q1), featureListing(t, q2); !reflect.DeepEqual(a, b) ||
		len(a.Leased) == 0 || len(a.Batches) == 0 || len(a.Schedules) == 0 {
		t.Fatalf("features from the checkpoint differ from a full replay:\n%+v\n%+v", a, b)
	}
}

// TestCheckpointCrashAtEveryStep crashes the writing of a checkpoint at
// each of its steps (and, where the step leaves a file the kernel may not
// have written out, with that file torn or the rename lost), reopens the
// crash image, and checks that the state equals a full replay of it.
func TestCheckpointCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	type variant struct {
		step string
		torn bool // the temp file is half written
		lost bool // the rename did not reach the disk: the old checkpoint is back
	}
	variants := []variant{{step: "create"}, {step: "write"}, {step: "sync"}, {step: "sync", torn: true},
		{step: "rename"}, {step: "syncdir"}, {step: "syncdir", lost: true}, {step: "done"}}
	for _, v := range variants {
		t.Run(fmt.Sprintf("step=%s/torn=%v/lost=%v", v.step, v.torn, v.lost), func(t *testing.T) {
			t.Parallel()
			mc := newMock()
			dir := t.TempDir()
			var image string
			arm := false
			h := inject(t, dir, &hooks{})
			q := openTest(t, dir, compactOpts(mc))
			mixedWorkload(t, q, mc, 120)
			first := checkpointT(t, q)
			old, err := os.ReadFile(filepath.Join(dir, recovery.CheckpointName))
			if err != nil {
				t.Fatal(err)
			}
			mixedWorkload(t, q, mc, 60)
			leaveLeased(t, q, 2)
			h.checkpoint = func(s string) error {
				if !arm || s != v.step {
					return nil
				}
				image = crashImage(t, q)
				return errors.New("injected crash")
			}
			arm = true
			q.compactMu.Lock()
			second, err := q.writeCheckpoint(true)
			q.compactMu.Unlock()
			arm = false
			if v.step == "done" {
				if err != nil {
					t.Fatal(err)
				}
				image = crashImage(t, q)
			} else if err == nil {
				t.Fatalf("hook at %q did not fire", v.step)
			}
			tmp := filepath.Join(image, recovery.CheckpointName+".tmp")
			if v.torn {
				b, err := os.ReadFile(tmp)
				if err != nil || len(b) < 100 {
					t.Fatalf("temp file: %d bytes, %v", len(b), err)
				}
				if err := os.WriteFile(tmp, b[:len(b)/2], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if v.lost {
				if err := os.WriteFile(filepath.Join(image, recovery.CheckpointName), old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c := sameAsReplay(t, image)
			wantIndex := first.Index
			if v.step == "syncdir" && !v.lost || v.step == "done" {
				wantIndex = second.Index
			}
			if !c.Used || c.Index != wantIndex {
				t.Fatalf("checkpoint %+v; want used, covering %d", c, wantIndex)
			}
			// The writer's Open removes the temp file and agrees.
			q2 := openTest(t, image, compactOpts(mc))
			if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("temp file left after Open: %v", err)
			}
			if err := q2.check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCheckpointFallback damages the checkpoint (or the log behind it) in
// each way Open must detect, and checks that Open then replays the whole
// log, succeeds, reports why, and reaches the state of a full replay.
func TestCheckpointFallback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string, other string)
		reason string
	}{
		{"bit flip", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b })
		}, "bad checkpoint"},
		{"checksum", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { b[len(b)-1] ^= 0x10; return b })
		}, "checksum"},
		{"truncated", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { return b[:len(b)-9] })
		}, "bad checkpoint"},
		{"empty", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { return nil })
		}, "shorter than a header"},
		{"unknown version", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 99); return b })
		}, "unknown version 99"},
		{"another log's checkpoint", func(t *testing.T, dir, other string) {
			b, err := os.ReadFile(filepath.Join(other, recovery.CheckpointName))
			if err != nil {
				t.Fatal(err)
			}
			editCheckpoint(t, dir, func([]byte) []byte { return b })
		}, "not the entry the checkpoint covers"},
		{"log ends before it", func(t *testing.T, dir, _ string) {
			editCheckpoint(t, dir, func(b []byte) []byte { return setCheckpointIndex(b, 1_000_000) })
		}, "log ends at"},
		{"directory", func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, recovery.CheckpointName)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "bad checkpoint"},
	}
	// other is a different queue with the same history length, whose
	// checkpoint covers the same index with different bytes.
	build := func(t *testing.T, seed string) string {
		mc := newMock()
		dir := t.TempDir()
		q := openTest(t, dir, compactOpts(mc))
		mixedWorkload(t, q, mc, 150)
		if _, err := q.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		enqueueT(t, q, NewJob{Payload: []byte(seed)})
		checkpointT(t, q)
		leaveLeased(t, q, 2)
		return crashImage(t, q)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, other := build(t, "a"), build(t, "b")
			if c := sameAsReplay(t, dir); !c.Used {
				t.Fatalf("intact checkpoint not used: %s", c.Reason)
			}
			want := copyDir(t, dir)
			tc.damage(t, dir, other)
			got, rep := foldDigest(t, dir, false)
			full, _ := foldDigest(t, want, true)
			if !bytes.Equal(got, full) {
				t.Fatal("state after the fallback differs from a full replay")
			}
			if rep.Checkpoint.Used || !strings.Contains(rep.Checkpoint.Reason, tc.reason) {
				t.Fatalf("checkpoint report %+v; want unused, reason containing %q", rep.Checkpoint, tc.reason)
			}
			q := openTest(t, dir, compactOpts(newMock()))
			if r := q.Recovery().Checkpoint; r.Used || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("queue's report %+v; want reason containing %q", r, tc.reason)
			}
		})
	}
}

// editCheckpoint replaces dir's checkpoint with edit's result.
func editCheckpoint(t *testing.T, dir string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, recovery.CheckpointName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setCheckpointIndex rewrites the entry index in a checkpoint's header and
// fixes the whole-file checksum, as a checkpoint of a longer log would be.
func setCheckpointIndex(b []byte, idx uint64) []byte {
	binary.LittleEndian.PutUint64(b[16:], idx)
	return fixChecksum(b)
}

// TestCheckpointFallbackTruncated crashes a compaction after it removed
// the segments holding the checkpoint's entry and before it wrote a new
// checkpoint: Open must see that the log starts after the old
// checkpoint's entry and replay the whole log.
func TestCheckpointFallbackTruncated(t *testing.T) {
	t.Parallel()
	mc := newMock()
	dir := t.TempDir()
	h := inject(t, dir, &hooks{})
	q := openTest(t, dir, compactOpts(mc))
	mixedWorkload(t, q, mc, 100)
	st := checkpointT(t, q)
	mixedWorkload(t, q, mc, 300)
	h.checkpoint = func(string) error { return errors.New("injected crash") }
	if _, err := q.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if first := q.log.FirstIndex(); first <= st.Index {
		t.Fatalf("compaction kept entry %d (first %d): the test needs it gone", st.Index, first)
	}
	img := crashImage(t, q)
	c := sameAsReplay(t, img)
	if c.Used || !strings.Contains(c.Reason, "log starts at") {
		t.Fatalf("checkpoint report %+v; want unused because the log starts after it", c)
	}
}

// TestCheckpointConcurrent writes checkpoints while goroutines enqueue,
// lease, complete, fail, extend, pause and resume, with entries held in
// flight at random (so that they are applied out of log order), compaction
// and retention running and leases expiring, and checks
// that each checkpoint reopens, from a crash image taken right after it,
// to the state a full replay of that image gives.
func TestCheckpointConcurrent(t *testing.T) {
	t.Parallel()
	mc := newMock()
	dir := t.TempDir()
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	inject(t, dir, &hooks{apply: func(uint64) {
		mu.Lock()
		d := rng.IntN(4)
		mu.Unlock()
		for range d { // yield so later entries may be applied first
			runtime.Gosched()
		}
	}})
	opts := compactOpts(mc)
	opts.SegmentSize = 8 << 10
	q := openTest(t, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	for _, name := range []string{"every", "gone"} {
		if err := q.Schedule(ctx, Schedule{Name: name, Every: time.Minute,
			Job: NewJob{Payload: []byte(name), Group: "g1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Unschedule(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				nj := NewJob{Payload: []byte(fmt.Sprintf("w%d-%d", w, i)), Key: fmt.Sprintf("w%d-%d", w, i%50)}
				if w%2 == 0 { // ordered groups, shared between workers
					nj.Group = fmt.Sprintf("g%d", i%5)
				}
				var err error
				if i%10 == 9 { // a batch with a callback
					_, err = q.EnqueueBatchThen(ctx, []NewJob{{Payload: []byte("b1")}, {Payload: []byte("b2"), Group: "g0"}},
						NewJob{Queue: "callbacks", Payload: []byte("then")})
				} else {
					_, err = q.Enqueue(ctx, nj)
				}
				if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
					return
				}
				l, err := q.TryLease(ctx, "")
				if err != nil || l == nil {
					continue
				}
				switch i % 5 {
				case 0:
					err = q.Fail(ctx, l.Token, errors.New("again"))
				case 1:
					err = q.Complete(ctx, l.Token, []byte("ok"))
				case 2:
					_, err = q.Extend(ctx, l.Token, time.Minute)
				case 3:
					err = q.Progress(ctx, l.Token, int64(i), "working")
				}
				if err != nil && !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // pause and resume, which serialise on their own mutex
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			op := q.Pause
			if i%2 == 1 {
				op = q.Resume
			}
			if err := op(ctx, "other"); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // compaction, as the background would run it
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := q.Compact(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				t.Error(err)
				return
			}
		}
	}()
	for round := 0; round < 12; round++ {
		enqueueT(t, q, NewJob{Payload: []byte("round")}) // the log is not empty
		mc.Add(20 * time.Second)                         // leases expire, retention purges
		q.compactMu.Lock()
		_, err := q.writeCheckpoint(true)
		var img string
		if err == nil {
			img = crashImage(t, q) // compaction waits: nothing truncated since
		}
		q.compactMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if c := sameAsReplay(t, img); !c.Used {
			t.Fatalf("round %d: checkpoint not used: %s", round, c.Reason)
		}
	}
	q.mu.Lock()
	groups, progress := 0, 0
	q.idx.Groups(func(index.GroupInfo) { groups++ })
	for _, j := range q.idx.Jobs() {
		if j.Feat().Progress != 0 {
			progress++
		}
	}
	schedules, batches := len(q.idx.Schedules()), len(q.idx.Batches())
	q.mu.Unlock()
	if groups == 0 || progress == 0 || schedules != 1 || batches == 0 {
		t.Errorf("features in play at the end: %d groups, %d jobs with progress, %d schedules, %d batches",
			groups, progress, schedules, batches)
	}
	cancel()
	wg.Wait()
}

// fixChecksum recomputes a checkpoint's trailing CRC-32C.
func fixChecksum(b []byte) []byte {
	sum := crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli))
	binary.LittleEndian.PutUint32(b[len(b)-4:], sum)
	return b
}

// TestCheckpointAtClose checks that Close writes a checkpoint once enough
// was applied since the last one (and not for a handful of records), and
// that writers and read-only opens then start from it.
func TestCheckpointAtClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	q, err := Open(dir, &Options{Logger: openTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]NewJob, 3000)
	for i := range batch {
		batch[i] = NewJob{Payload: []byte(fmt.Sprint(i))}
	}
	if _, err := q.EnqueueBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, recovery.CheckpointName)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("Close wrote no checkpoint: %v", err)
	}
	ro, err := Open(dir, &Options{ReadOnly: true, Logger: openTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if c := ro.Recovery().Checkpoint; !c.Used || c.Jobs != 3000 {
		t.Fatalf("read-only open: checkpoint %+v", c)
	}
	ro.Close()
	q = openTest(t, dir, nil)
	if c := q.Recovery().Checkpoint; !c.Used || c.Jobs != 3000 {
		t.Fatalf("writer open: checkpoint %+v", c)
	}
	l := leaseT(t, q, "")
	if string(l.Job.Payload) != "0" {
		t.Fatalf("first lease got payload %q", l.Job.Payload)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if again, err := os.ReadFile(path); err != nil || !bytes.Equal(again, first) {
		t.Fatalf("Close after two records rewrote the checkpoint (%v)", err)
	}
}
