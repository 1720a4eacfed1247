package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestSalvageCheck: a Check that keeps fewer entries than pass their
// checksums moves the cut to the first entry it drops, whether that entry
// opens a segment or sits inside one, with the same moving-aside as for
// corruption; the log then ends there and takes appends.
func TestSalvageCheck(t *testing.T) {
	t.Parallel()
	probe := t.TempDir()
	manySegments(t, probe, 60)
	starts := segmentsOf(t, probe) // every log below has the same segments
	problem := errors.New("entry does not replay")
	for _, keep := range []uint64{0, starts[2].first - 1, starts[2].first + 1, 59} {
		t.Run(fmt.Sprintf("keep=%d", keep), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			want := manySegments(t, dir, 60)
			segs := segmentsOf(t, dir)
			var seen uint64
			check := func(l *Log) (uint64, error, error) {
				seen = l.LastIndex()
				return keep, problem, nil
			}
			before := hashDir(t, dir)
			dry, err := SalvageWith(dir, &SalvageOptions{DryRun: true, Check: check})
			if err != nil {
				t.Fatal(err)
			}
			if hashDir(t, dir) != before {
				t.Fatal("a dry run changed the directory")
			}
			if seen != 60 {
				t.Errorf("Check saw a log ending at %d, want 60", seen)
			}
			// The entry after keep: its segment and offset.
			k := len(segs) - 1
			for segs[k].first > keep+1 {
				k--
			}
			var off int64
			if segs[k].first != keep+1 {
				off = framesOf(t, segs[k].path)[keep+1-segs[k].first].off
			}
			dropped := segs[k].size - off
			for _, s := range segs[k+1:] {
				dropped += s.size
			}
			if dry.Corruption != nil || dry.Unreplayable != problem || dry.KeptLast != keep || dry.Segment != segs[k].path ||
				dry.Offset != off || dry.DroppedBytes != dropped || len(dry.DroppedSegments) != len(segs)-k-1 {
				t.Fatalf("dry run: %+v, want a cut of %s at %d keeping %d, dropping %d bytes", dry, segs[k].path, off, keep, dropped)
			}
			rep, err := SalvageWith(dir, &SalvageOptions{Check: check})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Saved) != len(segs)-k {
				t.Errorf("Saved %v, want %d files", rep.Saved, len(segs)-k)
			}
			var saved int64
			for _, p := range rep.Saved {
				saved += int64(len(readFile(t, p)))
			}
			if saved != dropped {
				t.Errorf("the broken-* files hold %d bytes, want the %d dropped", saved, dropped)
			}
			l := openLog(t, dir, &Options{SegmentSize: 1024})
			if l.LastIndex() != keep {
				t.Fatalf("after salvage LastIndex %d, want %d", l.LastIndex(), keep)
			}
			more := appendJobs(t, l, 100, 103, 80)
			checkEntries(t, replayAll(t, l, 0), append(want[:keep:keep], more...))
		})
	}
}

// TestSalvageCheckSeesValidPrefix: with corruption in the log, Check sees
// only the entries before it, and a Check that keeps them all leaves the
// cut at the corruption.
func TestSalvageCheckSeesValidPrefix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	manySegments(t, dir, 60)
	segs := segmentsOf(t, dir)
	f := framesOf(t, segs[1].path)[2]
	flipBit(t, segs[1].path, f.end()-1, 3)
	bad := segs[1].first + 2
	var seen []uint64
	rep, err := SalvageWith(dir, &SalvageOptions{DryRun: true, Check: func(l *Log) (uint64, error, error) {
		err := l.Iterate(0, func(i uint64, _ []byte) error {
			seen = append(seen, i)
			return nil
		})
		return l.LastIndex(), nil, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != int(bad-1) || seen[len(seen)-1] != bad-1 {
		t.Errorf("Check read entries %v, want 1 to %d", seen, bad-1)
	}
	if rep.Corruption == nil || rep.Corruption.Index != bad || rep.Unreplayable != nil || rep.KeptLast != bad-1 ||
		rep.Segment != segs[1].path || rep.Offset != f.off {
		t.Errorf("report %+v, want the cut at the corruption (index %d)", rep, bad)
	}
}

// TestSalvageCheckErrors: a failing Check, or one that keeps entries the
// log does not have, stops Salvage with nothing changed.
func TestSalvageCheckErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	manySegments(t, dir, 60)
	before := hashDir(t, dir)
	boom := errors.New("boom")
	for name, check := range map[string]func(*Log) (uint64, error, error){
		"error":      func(*Log) (uint64, error, error) { return 10, nil, boom },
		"beyond-end": func(*Log) (uint64, error, error) { return 61, nil, nil },
	} {
		_, err := SalvageWith(dir, &SalvageOptions{Check: check})
		if err == nil || (name == "error" && !errors.Is(err, boom)) {
			t.Errorf("%s: SalvageWith = %v", name, err)
		}
	}
	if hashDir(t, dir) != before {
		t.Fatal("a failed salvage changed the directory")
	}
	if _, err := os.Stat(filepath.Join(dir, "broken-"+segmentName(1))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed salvage left a broken-* file: %v", err)
	}
}
