package log

import (
	"errors"
	"slices"
	"testing"

	"github.com/walq/walq/internal/fault"
)

// TruncateFront removes segments whose content compaction restated in later
// entries; in Interval and None mode those entries may be written and not
// fsynced, so TruncateFront must fsync them first, or a power cut leaves
// neither the old records nor their restatement (issue 12, bug 5).
func TestTruncateFrontSyncsFirst(t *testing.T) {
	for _, d := range []Durability{Interval, None} {
		t.Run("durability="+d.String(), func(t *testing.T) {
			l := openLog(t, t.TempDir(), &Options{Durability: d, SegmentSize: 4 << 10, SyncInterval: 1 << 62})
			appendJobs(t, l, 1, 40, 300) // several segments
			firsts := l.SegmentFirsts()
			if len(firsts) < 3 {
				t.Fatalf("setup: %d segments", len(firsts))
			}
			appendJobs(t, l, 41, 42, 100) // the "carries": written, not fsynced
			l.mu.Lock()
			written, synced := l.written, l.synced
			l.mu.Unlock()
			if synced >= written {
				t.Fatalf("setup: entries up to %d already fsynced (written %d)", synced, written)
			}
			if _, err := l.TruncateFront(firsts[len(firsts)-1]); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			synced = l.synced
			l.mu.Unlock()
			if synced < written {
				t.Fatalf("TruncateFront removed segments with entries %d..%d written but not fsynced", synced+1, written)
			}
		})
	}
}

// A recovery hands the indexes after the last acknowledged entry out again,
// so a cut chosen before it may name other entries: TruncateFrontAt refuses
// it and removes nothing.
func TestTruncateFrontAtRefusesAcrossRecovery(t *testing.T) {
	fail := false
	dir := t.TempDir()
	inject(t, dir, fault.Func(func(op fault.Op) error {
		if op.Kind == fault.Write && fail {
			fail = false
			return errors.New("injected write failure")
		}
		return nil
	}))
	l := openLog(t, dir, &Options{SegmentSize: 4 << 10})
	appendJobs(t, l, 1, 40, 300)
	gen := l.Generation()
	firsts := l.SegmentFirsts()
	fail = true
	if _, err := l.Append(enqueue(41, 10)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append with a failing write = %v, want ErrFailed", err)
	}
	if err := l.Recover(); err != nil {
		t.Fatal(err)
	}
	if l.Generation() == gen {
		t.Fatalf("Generation %d unchanged by a recovery", gen)
	}
	before := l.SegmentFirsts()
	if _, err := l.TruncateFrontAt(gen, firsts[len(firsts)-2]); !errors.Is(err, ErrStale) {
		t.Fatalf("TruncateFrontAt across a recovery = %v, want ErrStale", err)
	}
	if got := l.SegmentFirsts(); !slices.Equal(got, before) {
		t.Fatalf("segments %v after a refused truncation, want %v", got, before)
	}
	if _, err := l.TruncateFrontAt(l.Generation(), firsts[len(firsts)-2]); err != nil {
		t.Fatalf("TruncateFrontAt in the current generation: %v", err)
	}
}
