package log

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
)

// TestReadOnlyVanishedSegment: a reader whose segment list is older than
// the writer's TruncateFront gets ErrVanished (not a bare file-system
// error) for entries that are gone, recovers with Refresh, and reads on
// through segments the writer removes once it has opened them.
func TestReadOnlyVanishedSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openLog(t, dir, &Options{SegmentSize: 1024, Durability: None})
	want := appendJobs(t, w, 1, 101, 80)
	ro := openRO(t, dir)
	first, err := w.TruncateFront(60)
	if err != nil || first <= 1 {
		t.Fatalf("TruncateFront: first %d, %v", first, err)
	}
	gone := segmentName(1)

	err = ro.Iterate(0, func(uint64, []byte) error { return nil })
	if !errors.Is(err, ErrVanished) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), gone) {
		t.Errorf("Iterate over a removed segment: %v, want ErrVanished naming %s", err, gone)
	}
	if _, err := ro.Read(1); !errors.Is(err, ErrVanished) {
		t.Errorf("Read(1) of a removed segment: %v, want ErrVanished", err)
	}
	if err := ro.Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if ro.FirstIndex() != first {
		t.Fatalf("after Refresh FirstIndex %d, want %d", ro.FirstIndex(), first)
	}
	checkEntries(t, replayAll(t, ro, 0), want[first-1:])

	// Segments are opened before any of their entries is delivered: the
	// writer removing them mid-iteration changes nothing for the reader.
	more := appendJobs(t, w, 101, 161, 80)
	if err := ro.Refresh(); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	err = ro.Iterate(0, func(index uint64, _ []byte) error {
		if index == first {
			if _, err := w.TruncateFront(150); err != nil {
				return err
			}
		}
		got = append(got, index)
		return nil
	})
	if err != nil {
		t.Fatalf("Iterate while the writer removed the segments it had opened: %v", err)
	}
	if w.FirstIndex() <= first+1 {
		t.Fatalf("TruncateFront(150) left FirstIndex at %d: nothing was removed under the reader", w.FirstIndex())
	}
	if n := int(more[len(more)-1].index - first + 1); len(got) != n || got[0] != first {
		t.Errorf("Iterate delivered %d entries from %v, want %d from %d", len(got), got[:1], n, first)
	}
}

// TestReadOnlyFollowDuringCompaction does what 'walq log --follow' does
// (Refresh, then read on from where it left off) and what a read-only
// replay does (Refresh, then read everything) while a writer appends and
// truncates the front over and over: Refresh never fails, a read fails only
// with ErrVanished, and every entry read is the one written at its index.
func TestReadOnlyFollowDuringCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openLog(t, dir, &Options{SegmentSize: 1024, Durability: None})
	appendJobs(t, w, 1, 2, 80)
	const truncations = 60
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for job := uint64(2); job <= 10*truncations; job++ {
			if _, err := w.Append(enqueue(job, 80)); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			if job%10 == 0 {
				if _, err := w.TruncateFront(w.LastIndex()); err != nil {
					t.Errorf("TruncateFront: %v", err)
					return
				}
			}
		}
	}()
	var (
		mu              sync.Mutex
		failures        []string
		reads, vanished int
	)
	var readers sync.WaitGroup
	for _, follow := range []bool{true, false} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ro, err := Open(dir, withQuiet(&Options{ReadOnly: true}))
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("read-only Open: %v", err))
				mu.Unlock()
				return
			}
			defer ro.Close()
			next := uint64(1)
			for done := false; !done; {
				select {
				case <-writerDone:
					done = true // one last pass after the writer stopped
				default:
				}
				err := ro.Refresh()
				if err == nil {
					if first := ro.FirstIndex(); next < first || !follow {
						next = first
					}
					err = ro.Replay(next, func(index uint64, _ int, r *Record) error {
						if index != next || r.Job != index {
							return fmt.Errorf("entry %d holds job %d, want entry %d with job %d", index, r.Job, next, next)
						}
						next++
						return nil
					})
				}
				mu.Lock()
				reads++
				switch {
				case errors.Is(err, ErrVanished):
					vanished++
				case err != nil:
					failures = append(failures, err.Error())
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, ErrVanished) {
					return
				}
			}
			if next != w.LastIndex()+1 {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("reader stopped at %d, want %d", next, w.LastIndex()+1))
				mu.Unlock()
			}
		}()
	}
	readers.Wait()
	<-writerDone
	if len(failures) > 0 {
		t.Errorf("%d failures; the first: %s", len(failures), failures[0])
	}
	t.Logf("%d refresh-and-reads beside %d truncations; %d found a segment gone", reads, truncations, vanished)
}
