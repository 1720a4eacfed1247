package recovery_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

func completed(id uint64, attempt int64) wlog.Record {
	return wlog.Record{Kind: wlog.KindCompleted, Job: id, At: ns(2 * time.Second), Attempt: attempt}
}

// carried restates job id as pending with no attempts.
func carried(id uint64) wlog.Record {
	return wlog.Record{Kind: wlog.KindCarry, Job: id, At: ns(0), Created: ns(0), Queue: "default",
		Payload: payloadOf(id), RunAt: ns(0), MaxAttempts: 3, State: uint8(index.Pending)}
}

// truncatedLog writes filler entries over small segments and truncates the
// front, so that the log starts after index 1 (a compacted log, replayed
// leniently), then appends each of entries. It returns the directory, the
// log's first index and the index of each appended entry.
func truncatedLog(t *testing.T, entries ...[]wlog.Record) (string, uint64, []uint64) {
	t.Helper()
	dir := t.TempDir()
	l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, SegmentSize: 2048, Durability: wlog.None})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for id := uint64(1000); id < 1020; id++ { // filler, gone after the truncation
		if _, err := l.Append([]wlog.Record{enqueued(id, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := l.TruncateFront(l.LastIndex())
	if err != nil || first <= 1 {
		t.Fatalf("TruncateFront: first %d, %v", first, err)
	}
	// The filler left in the first segment is restated, as compaction
	// would, then purged so that it does not count below.
	var carry, purge []wlog.Record
	for id := uint64(1000); id < 1020; id++ {
		carry = append(carry, carried(id))
		purge = append(purge, wlog.Record{Kind: wlog.KindCancelled, Job: id, At: ns(0)},
			wlog.Record{Kind: wlog.KindPurged, Job: id, At: ns(0)})
	}
	var idx []uint64
	for _, recs := range append([][]wlog.Record{carry, purge}, entries...) {
		i, err := l.Append(recs)
		if err != nil {
			t.Fatal(err)
		}
		idx = append(idx, i)
	}
	return dir, first, idx[2:]
}

// TestReplayablePrefix checks the rule that decides how much of a log that
// passes its checksums can be kept: the longest prefix whose records all
// apply and, in a log whose front was truncated, that leaves no job whose
// creation is missing unless a carry restated it or it was purged.
func TestReplayablePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		truncated bool
		entries   [][]wlog.Record
		keep      int // entries kept of those listed; -1: all
		// problem: the record the problem names, as "index-slot" of the
		// listed entries ("" for none), and text it must contain.
		at      [2]int
		problem string
	}{
		{"whole", false, [][]wlog.Record{{enqueued(1, 3)}, {leased(1, 1)}, {completed(1, 1)}}, -1, [2]int{}, ""},
		{"unknown-job", false, [][]wlog.Record{{enqueued(1, 3)}, {enqueued(2, 3)}, {enqueued(3, 3), completed(9, 1)}, {enqueued(4, 3)}},
			2, [2]int{2, 1}, "unknown job"},
		{"wrong-attempt", false, [][]wlog.Record{{enqueued(1, 3)}, {leased(1, 1)}, {completed(1, 2)}}, 2, [2]int{2, 0}, "attempt"},
		{"orphan-restated", true, [][]wlog.Record{{enqueued(1, 3)}, {completed(7, 1)}, {enqueued(2, 3)}, {carried(7)}, {enqueued(3, 3)}},
			-1, [2]int{}, ""},
		{"orphan-purged", true, [][]wlog.Record{{enqueued(1, 3)}, {wlog.Record{Kind: wlog.KindPurged, Job: 7, At: ns(0)}}, {enqueued(2, 3)}},
			-1, [2]int{}, ""},
		{"orphan-lost", true, [][]wlog.Record{{enqueued(1, 3)}, {enqueued(2, 3)}, {completed(7, 1)}, {enqueued(3, 3)}, {leased(3, 1)}},
			2, [2]int{2, 0}, "creation is not in the log"},
		// The prefix may end where an earlier orphan is resolved, before
		// the one that never is.
		{"orphan-restated-then-lost", true, [][]wlog.Record{{enqueued(1, 3)}, {completed(7, 1)}, {carried(7)}, {enqueued(2, 3)},
			{completed(8, 1)}, {enqueued(3, 3)}}, 4, [2]int{4, 0}, "creation is not in the log"},
		// Two orphans overlap: no prefix between them replays.
		{"orphans-overlap", true, [][]wlog.Record{{enqueued(1, 3)}, {completed(7, 1)}, {completed(8, 1)}, {carried(7)},
			{enqueued(2, 3)}}, 1, [2]int{2, 0}, "creation is not in the log"},
		// An orphan is open when a record fails to apply: the cut is at the
		// orphan, and the problem names both.
		{"orphan-then-inconsistent", true, [][]wlog.Record{{enqueued(1, 3)}, {completed(7, 1)}, {enqueued(2, 3)}, {completed(2, 1)}},
			1, [2]int{1, 0}, "replay then stops at index"},
		{"inconsistent-in-truncated", true, [][]wlog.Record{{enqueued(1, 3)}, {enqueued(2, 3)}, {completed(2, 1)}},
			2, [2]int{2, 0}, "not leased"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				dir   string
				first uint64 = 1
				idx   []uint64
			)
			if tt.truncated {
				dir, first, idx = truncatedLog(t, tt.entries...)
			} else {
				dir = t.TempDir()
				writeLog(t, dir, nil, tt.entries...)
				for i := range tt.entries {
					idx = append(idx, uint64(i+1))
				}
			}
			l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			keep, problem, err := recovery.ReplayablePrefix(l)
			if err != nil {
				t.Fatalf("ReplayablePrefix: %v", err)
			}
			wantKeep := l.LastIndex()
			if tt.keep >= 0 {
				wantKeep = idx[tt.keep] - 1
			}
			if keep != wantKeep {
				t.Errorf("keep %d, want %d (first %d, entries %v)", keep, wantKeep, first, idx)
			}
			if tt.problem == "" {
				if problem != nil {
					t.Errorf("problem %v, want none", problem)
				}
				return
			}
			var ae *index.ApplyError
			if !errors.As(problem, &ae) || ae.Pos != (index.Pos{Index: idx[tt.at[0]], Slot: tt.at[1]}) ||
				!strings.Contains(problem.Error(), tt.problem) {
				t.Errorf("problem %v, want an ApplyError at index %d slot %d saying %q", problem, idx[tt.at[0]], tt.at[1], tt.problem)
			}
			// Open agrees: it fails, with the same record when nothing
			// follows the cut but the failure.
			if _, _, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet, ReadOnly: true}}); !errors.Is(err, index.ErrInconsistent) {
				t.Errorf("Open = %v, want ErrInconsistent", err)
			}
		})
	}
}

// TestSalvageUnreplayable is the field report: every checksum is valid but
// the log does not replay (a 'completed' record for a job whose creation is
// gone), and log-level salvage finds nothing to cut. recovery.Salvage cuts
// it back to the last entry that replays, moving the rest aside, and the
// log then opens, takes appends and reopens.
func TestSalvageUnreplayable(t *testing.T) {
	t.Parallel()
	for _, truncated := range []bool{false, true} {
		name := "first=1"
		if truncated {
			name = "truncated-front"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			entries := [][]wlog.Record{{enqueued(1, 3)}, {leased(1, 1)}, {enqueued(2, 3)}, {completed(2320, 1)},
				{completed(1, 1)}, {enqueued(3, 3)}}
			var dir string
			var idx []uint64
			if truncated {
				dir, _, idx = truncatedLog(t, entries...)
			} else {
				dir = t.TempDir()
				writeLog(t, dir, &wlog.Options{SegmentSize: 1024}, entries...)
				idx = []uint64{1, 2, 3, 4, 5, 6}
			}
			bad := idx[3]
			_, _, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet}})
			var ae *index.ApplyError
			if !errors.As(err, &ae) || ae.Job != 2320 || ae.Pos.Index != bad {
				t.Fatalf("Open = %v, want the record for job 2320 at index %d", err, bad)
			}
			if rep, err := wlog.Salvage(dir, true); err != nil || rep.Corruption != nil {
				t.Fatalf("log.Salvage = %+v, %v: want nothing to salvage (the checksums are valid)", rep, err)
			}

			before := hashDir(t, dir)
			dry, err := recovery.Salvage(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			after := hashDir(t, dir)
			delete(before, filepath.Join(dir, "LOCK"))
			delete(after, filepath.Join(dir, "LOCK"))
			if !reflect.DeepEqual(before, after) {
				t.Fatal("a dry run changed the directory")
			}
			if dry.Corruption != nil || !errors.As(dry.Unreplayable, &ae) || ae.Job != 2320 || dry.KeptLast != bad-1 ||
				dry.DroppedBytes == 0 || dry.Segment == "" || len(dry.Saved) != 0 {
				t.Fatalf("dry run: %+v, want a cut before index %d for job 2320", dry, bad)
			}
			rep, err := recovery.Salvage(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.KeptLast != bad-1 || len(rep.Saved) == 0 || rep.DroppedBytes != dry.DroppedBytes {
				t.Fatalf("salvage: %+v", rep)
			}
			for _, p := range rep.Saved {
				if _, err := os.Stat(p); err != nil || !strings.HasPrefix(filepath.Base(p), "broken-") {
					t.Errorf("saved file %s: %v", p, err)
				}
			}
			l, x, orep := open(t, dir, &recovery.Options{Now: t0.Add(time.Hour)})
			if orep.LastIndex != bad-1 || x.Job(1) == nil || x.Job(2) == nil || x.Job(2320) != nil || x.Job(3) != nil {
				t.Fatalf("after salvage: LastIndex %d, jobs %v", orep.LastIndex, view(x))
			}
			// Job 1's lease was voided at open (it was leased at the cut).
			if x.Job(1).State != index.Pending || orep.Voided != 1 {
				t.Errorf("job 1 %s, voided %d; want pending, 1", x.Job(1).State, orep.Voided)
			}
			if _, err := l.Append([]wlog.Record{enqueued(4, 3)}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l2, y, _ := open(t, dir, nil)
			if y.Job(4) == nil || y.Len() != 3 {
				t.Errorf("after append and reopen: %v", view(y))
			}
			l2.Close()
			if again, err := recovery.Salvage(dir, true); err != nil || again.Unreplayable != nil || again.Corruption != nil {
				t.Errorf("salvage of the salvaged log: %+v, %v", again, err)
			}
		})
	}
}
