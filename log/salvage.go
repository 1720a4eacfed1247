package log

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SalvageReport says what Salvage found and cut.
type SalvageReport struct {
	// Corruption is the first corruption found, nil if every entry passes
	// its checksum and the segments follow one another.
	Corruption *CorruptError
	// Unreplayable is why the entry after KeptLast cannot be kept although
	// its checksum is valid, as SalvageOptions.Check reported it; nil if
	// Check kept every valid entry (or there was no Check).
	Unreplayable error
	// KeptLast is the index of the last entry kept; FirstIndex-1 if none.
	KeptLast uint64
	// Segment and Offset locate the cut: the first byte dropped. Segment
	// is empty when nothing is dropped.
	Segment string
	Offset  int64
	// DroppedBytes is how many bytes were (or would be) moved aside.
	DroppedBytes int64
	// DroppedSegments lists the segment files moved aside whole.
	DroppedSegments []string
	// Saved lists the files that keep the dropped bytes.
	Saved []string
}

// SalvageOptions configure SalvageWith. The zero value is valid.
type SalvageOptions struct {
	// DryRun only reports what would be cut. Defaults to false.
	DryRun bool
	// Check, if not nil, judges the entries that pass their checksums,
	// for damage checksums cannot see (records that do not replay). It is
	// called under the directory lock with the log opened read-only and
	// ending at the last valid entry, and returns the last entry to keep
	// (at most that log's LastIndex; FirstIndex-1 keeps none) and, when it
	// keeps fewer, what is wrong with the next one. An err stops Salvage
	// with nothing cut. Defaults to nil: every valid entry is kept.
	Check func(l *Log) (keep uint64, problem error, err error)
}

// Salvage keeps the longest valid prefix of the log in dir: it verifies
// every entry of every segment and, at the first corruption, cuts the log
// there, moving the rest aside into broken-* files (nothing is deleted).
// With dryRun it only reports what it would cut. It takes the directory's
// write lock, so the log must not be open elsewhere.
func Salvage(dir string, dryRun bool) (*SalvageReport, error) {
	return SalvageWith(dir, &SalvageOptions{DryRun: dryRun})
}

// SalvageWith is Salvage with options: opts.Check may cut the log earlier
// than its first corruption.
func SalvageWith(dir string, opts *SalvageOptions) (*SalvageReport, error) {
	var o SalvageOptions
	if opts != nil {
		o = *opts
	}
	if err := checkUsable(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlockDir(lock)
	if ok, err := checkFormat(dir); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("%w: %s has no %s file", ErrNotLog, dir, formatName)
		}
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return &SalvageReport{}, nil
	}
	rep := &SalvageReport{KeptLast: segs[0].first - 1}
	cut, cutAt, err := validPrefix(segs, rep)
	if err != nil {
		return nil, err
	}
	if o.Check != nil {
		if cut, cutAt, err = checkPrefix(dir, segs, cut, cutAt, rep, o.Check); err != nil {
			return nil, err
		}
	}
	if cut < 0 {
		return rep, nil
	}
	rep.Segment, rep.Offset = segs[cut].path, cutAt
	rep.DroppedBytes = segs[cut].size - cutAt
	for _, s := range segs[cut+1:] {
		rep.DroppedBytes += s.size
		rep.DroppedSegments = append(rep.DroppedSegments, s.path)
	}
	if o.DryRun {
		return rep, nil
	}
	return rep, cutSegments(dir, segs, cut, cutAt, rep)
}

// validPrefix verifies every entry's checksum and that each segment
// continues the one before it. It returns the segment holding the first
// problem and the offset where the valid prefix ends in it (cut -1 if the
// log is whole), and fills in rep's Corruption and KeptLast.
func validPrefix(segs []segment, rep *SalvageReport) (cut int, cutAt int64, err error) {
	var buf []byte
	for i, s := range segs {
		if buf, err = readInto(buf, s.path); err != nil {
			return 0, 0, err
		}
		segs[i].size = int64(len(buf))
		succ := successorOf(segs, i)
		var overlap *CorruptError // the first entry the next segment claims too
		res, _ := scanSegment(buf, s, maxEntryDefault, func(index uint64, f frame) error {
			if overlap == nil {
				overlap = succ.claims(index, f.off)
			}
			return nil
		})
		end := s.first + uint64(res.entries)
		if res.entries > 0 {
			rep.KeptLast = end - 1
		}
		if res.bad == nil {
			// An overlap or a gap: either way the next segment does not
			// continue this one, and the prefix ends with this one (an
			// overlap keeps this segment's claim to the shared indexes).
			res.bad = cmp.Or(overlap, succ.gap(end, res.end))
		}
		if res.bad != nil {
			rep.Corruption = res.bad
			return i, res.end, nil
		}
	}
	return -1, 0, nil
}

// checkPrefix runs check over the valid prefix (entries up to rep.KeptLast
// in segs[:cut+1], or all of segs if cut is -1) and, if it keeps fewer
// entries, moves the cut to the first entry it drops.
func checkPrefix(dir string, segs []segment, cut int, cutAt int64, rep *SalvageReport,
	check func(*Log) (uint64, error, error)) (int, int64, error) {
	view := segs
	if cut >= 0 {
		view = segs[:cut+1]
	}
	l, err := salvageView(dir, view, rep.KeptLast)
	if err != nil {
		return 0, 0, err
	}
	keep, problem, err := check(l)
	l.Close()
	if err != nil {
		return 0, 0, err
	}
	first := segs[0].first
	if keep+1 < first || keep > rep.KeptLast {
		return 0, 0, fmt.Errorf("walq/log: salvage %s: check kept entries up to %d, outside [%d, %d]", dir, keep, first-1, rep.KeptLast)
	}
	if keep == rep.KeptLast {
		return cut, cutAt, nil
	}
	rep.KeptLast, rep.Unreplayable = keep, problem
	return locateEntry(view, keep+1)
}

// salvageView opens a read-only log over segs that ends at entry last.
func salvageView(dir string, segs []segment, last uint64) (*Log, error) {
	o, err := (&Options{ReadOnly: true, MaxEntrySize: maxEntryDefault}).withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: o, segs: segs, first: segs[0].first}
	l.cond = sync.NewCond(&l.mu)
	l.idle = sync.NewCond(&l.mu)
	l.written, l.synced, l.acked, l.next = last, last, last, last+1
	return l, nil
}

// locateEntry returns the segment (by position in segs) holding the entry
// at index and the entry's offset in it.
func locateEntry(segs []segment, index uint64) (int, int64, error) {
	i := len(segs) - 1
	for i > 0 && segs[i].first > index {
		i--
	}
	if segs[i].first == index {
		return i, 0, nil
	}
	buf, err := readInto(nil, segs[i].path)
	if err != nil {
		return 0, 0, err
	}
	var at int64 = -1
	_, err = scanSegment(buf, segs[i], maxEntryDefault, func(n uint64, f frame) error {
		if n == index {
			at = f.off
			return errStop
		}
		return nil
	})
	if at < 0 {
		return 0, 0, fmt.Errorf("walq/log: salvage: entry %d not found in %s: %v", index, segs[i].path, err)
	}
	return i, at, nil
}

// cutSegments moves the segments after segs[cut] aside whole, then cuts
// segs[cut] at cutAt, keeping the cut bytes in a broken-* file.
func cutSegments(dir string, segs []segment, cut int, cutAt int64, rep *SalvageReport) error {
	// Move whole later segments aside first (newest first), then cut the
	// damaged one, so that a crash midway leaves a log that is a prefix.
	for i := len(segs) - 1; i > cut; i-- {
		dst := filepath.Join(dir, "broken-"+filepath.Base(segs[i].path))
		if err := os.Rename(segs[i].path, dst); err != nil {
			return err
		}
		rep.Saved = append(rep.Saved, dst)
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	s := segs[cut]
	buf, err := readInto(nil, s.path)
	if err != nil {
		return err
	}
	saved := filepath.Join(dir, fmt.Sprintf("broken-%s-%d", filepath.Base(s.path), cutAt))
	if err := writeFileAtomic(saved, buf[cutAt:]); err != nil {
		return err
	}
	rep.Saved = append(rep.Saved, saved)
	if err := truncateFile(s.path, cutAt); err != nil {
		return err
	}
	return syncDir(dir)
}

// maxEntryDefault is the entry-size limit Salvage assumes.
const maxEntryDefault = 64 << 20
