package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"pgregory.net/rapid"
)

// Compaction, close and crash in TestModel: what survives each.

func (h *harness) compact(t *rapid.T) {
	now := h.now()
	st, err := h.q.Compact(h.ctx)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	purged := h.purgeExpired(now)
	t.Logf("Compact() = purged %d, carried %d, removed %d segments (model: purged %d)",
		st.Purged, st.Carried, st.SegmentsRemoved, purged)
	h.cov[fmt.Sprintf("compact: purged>0 %v, removed segments %v", purged > 0, st.SegmentsRemoved > 0)]++
	if st.Purged != purged {
		t.Fatalf("Compact purged %d jobs, retention says %d", st.Purged, purged)
	}
}

// purgeExpired applies Compact's sweep to the model: every completed or
// cancelled job whose retention is over at now is forgotten. It returns how
// many.
func (h *harness) purgeExpired(now int64) int {
	purged := 0
	for _, id := range h.m.ids() {
		if !h.m.retentionOver(h.m.jobs[id], now) {
			continue
		}
		delete(h.m.jobs, id)
		purged++
	}
	return purged
}

func (h *harness) compactHook(step string) error {
	if step != h.crashAt {
		return nil
	}
	h.crashAt = ""
	img, err := os.MkdirTemp(h.root, "compact-crash")
	if err != nil {
		return err
	}
	h.rt.Cleanup(func() { os.RemoveAll(img) })
	copyFiles(h.rt, h.dir, img)
	h.crashImage = img
	return errors.New("injected crash")
}

// compactCrash crashes the queue in the middle of a compaction: before it
// writes the carry records, before the checkpoint, before it removes the
// old segments, or after it removed some of them (oldest first). The
// reopened copy must hold the same jobs, less those the sweep purged before
// the crash, with leases voided.
func (h *harness) compactCrash(t *rapid.T) {
	step := rapid.SampledFrom([]string{"carry", "checkpoint", "truncate", "truncate-partial"}).Draw(t, "step")
	h.crashAt, h.crashImage = strings.TrimSuffix(step, "-partial"), ""
	firsts := h.q.log.SegmentFirsts() // compaction keeps the last and what follows
	now := h.now()
	st, err := h.q.Compact(h.ctx)
	h.crashAt = ""
	if h.crashImage == "" { // nothing to carry: the step never came
		if err != nil {
			t.Fatalf("Compact: %v", err)
		}
		purged := h.purgeExpired(now)
		t.Logf("Compact() with a crash at %s = purged %d, no crash (model: purged %d)", step, st.Purged, purged)
		if st.Purged != purged {
			t.Fatalf("Compact purged %d jobs, retention says %d", st.Purged, purged)
		}
		return
	}
	if err == nil {
		t.Fatalf("Compact with a crash at %s returned nil", step)
	}
	if step == "truncate-partial" && len(firsts) > 1 {
		// Removal goes oldest first: any prefix of the segments before
		// the cut may be gone.
		n := rapid.IntRange(1, len(firsts)-1).Draw(t, "removed")
		for _, f := range firsts[:n] {
			os.Remove(filepath.Join(h.crashImage, fmt.Sprintf("%020d", f)))
		}
	}
	old := h.q
	t.Cleanup(func() { old.Close() })
	h.open(h.crashImage)
	purged := h.purgeExpired(now)
	voided, poison := h.m.voidAll(h.now())
	rep := h.q.Recovery()
	t.Logf("Compact() crashed at %s: purged %d first; reopened: voided %d, poison pills %d (model: %d, %d, %d)",
		step, st.Purged, rep.Voided, rep.PoisonPills, purged, voided, poison)
	h.cov["compact: crash at "+step]++
	if rep.Voided != voided || rep.PoisonPills != poison {
		t.Fatalf("reopen voided %d leases with %d poison pills, want %d and %d", rep.Voided, rep.PoisonPills, voided, poison)
	}
}

// reopen closes and reopens the queue, or (crash) copies its directory
// while it is open, abandons it, and opens the copy. Either way the new
// queue must void every lease: the attempt counts, and a job without
// attempts left is dead (poison pill).
func (h *harness) reopen(t *rapid.T) {
	crash := rapid.Bool().Draw(t, "crash")
	if crash {
		img, err := os.MkdirTemp(h.root, "crash")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(img) })
		copyFiles(t, h.dir, img)
		old := h.q
		t.Cleanup(func() { old.Close() })
		h.open(img)
	} else {
		if err := h.q.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		h.open(h.dir)
	}
	voided, poison := h.m.voidAll(h.now())
	rep := h.q.Recovery()
	t.Logf("reopen(crash %v): voided %d, poison pills %d (model: %d, %d)", crash, rep.Voided, rep.PoisonPills, voided, poison)
	h.cov[fmt.Sprintf("reopen: crash %v, voided>0 %v, poison pills>0 %v", crash, voided > 0, poison > 0)]++
	if rep.Voided != voided || rep.PoisonPills != poison {
		t.Fatalf("reopen voided %d leases with %d poison pills, want %d and %d", rep.Voided, rep.PoisonPills, voided, poison)
	}
}

// copyFiles copies the regular files of src into dst (a crash image when
// taken while a queue has src open).
func copyFiles(t *rapid.T, src, dst string) {
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := copyFile(src+"/"+e.Name(), dst+"/"+e.Name()); err != nil {
				t.Fatal(err)
			}
		}
	}
}
