package log

import "testing"

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
