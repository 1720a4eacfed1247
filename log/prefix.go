package log

import (
	"fmt"
	"os"
)

// PrefixReport says where the valid prefix of a log ends, as OpenPrefix
// found it.
type PrefixReport struct {
	// SalvageReport is what Salvage would cut, as its dry run reports it
	// (without a Check): the first corruption, the last entry kept and
	// the bytes after it.
	SalvageReport
	// TornTail reports that the damage is a torn tail: invalid bytes at
	// the end of the last segment with no valid entry after them, which
	// a writer's Open cuts by itself (Salvage is not needed).
	TornTail bool
	// Segments and Size describe the whole log on disk: its segment
	// files and their bytes, valid or not.
	Segments int
	Size     int64
}

// OpenPrefix opens the log in dir for reading only, ending at the last
// entry of its valid prefix: the entries before the first corruption,
// those Salvage keeps. Like Open with ReadOnly it takes no lock and
// writes nothing, so it may run beside a writer (whose write in
// progress then shows as a torn tail); unlike it, corruption does not
// fail it but is described by the report. It reads every segment.
func OpenPrefix(dir string) (*Log, *PrefixReport, error) {
	ok, err := checkFormat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, nil, fmt.Errorf("walq/log: open %s: %w", dir, serr)
		}
		return nil, nil, fmt.Errorf("%w: %s has no %s file", ErrNotLog, dir, formatName)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(segs) == 0 {
		l, err := Open(dir, &Options{ReadOnly: true})
		return l, &PrefixReport{}, err
	}
	rep := &PrefixReport{SalvageReport: SalvageReport{KeptLast: segs[0].first - 1}}
	cut, cutAt, err := validPrefix(segs, &rep.SalvageReport)
	if err != nil {
		return nil, nil, err
	}
	rep.Segments = len(segs)
	for _, s := range segs {
		rep.Size += s.size
	}
	view := segs
	if cut >= 0 {
		view = segs[:cut+1]
		rep.Segment, rep.Offset = segs[cut].path, cutAt
		rep.DroppedBytes = segs[cut].size - cutAt
		for _, s := range segs[cut+1:] {
			rep.DroppedBytes += s.size
			rep.DroppedSegments = append(rep.DroppedSegments, s.path)
		}
		if rep.TornTail, err = isTornTail(segs, cut); err != nil {
			return nil, nil, err
		}
	}
	l, err := salvageView(dir, view, rep.KeptLast)
	if err != nil {
		return nil, nil, err
	}
	return l, rep, nil
}

// isTornTail reports whether the damage validPrefix found in segs[cut] is a
// torn tail: in the last segment, with no valid entry after it.
func isTornTail(segs []segment, cut int) (bool, error) {
	if cut != len(segs)-1 {
		return false, nil
	}
	buf, err := readInto(nil, segs[cut].path)
	if err != nil {
		return false, err
	}
	res, err := scanSegment(buf, segs[cut], maxEntryDefault, nil)
	if err != nil {
		return false, err
	}
	return res.bad != nil && !res.validAfter, nil
}
