package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Salvage cuts the log in dir back to its longest prefix that opens: the
// entries before the first corruption (as log.Salvage keeps) and, of
// those, the longest run from the first entry that replays (see
// ReplayablePrefix). Everything after it is moved aside into broken-*
// files; nothing is deleted. With dryRun it only reports what it would
// cut. It takes the directory's write lock, so the queue must not be open.
// Unless dryRun, it first removes the index checkpoint (derived data, which
// may describe entries the cut removed; the writer writes a new one), so
// that a later log reusing the cut indexes cannot be mistaken for the one
// it describes.
func Salvage(dir string, dryRun bool) (*wlog.SalvageReport, error) {
	if !dryRun {
		// Before the cut: a crash between the two must not leave a
		// checkpoint beside a shorter log.
		if err := os.Remove(filepath.Join(dir, CheckpointName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("walq/recovery: salvage %s: remove the checkpoint: %w", dir, err)
		}
	}
	return wlog.SalvageWith(dir, &wlog.SalvageOptions{DryRun: dryRun, Check: ReplayablePrefix})
}

// ReplayablePrefix finds the longest prefix of l that replays and returns
// its last entry (FirstIndex-1 if no entry replays) and, if that is not
// l's last entry, why the log cannot be kept past it.
//
// The rule: the entries from FirstIndex to P replay if folding them into
// an index applies every record and, when the log's front was truncated
// (FirstIndex > 1), leaves no record about a job whose creation is not in
// the log, unless a later carry record restated the job or it was purged
// (index.EndReplay succeeds). The empty prefix replays.
//
// One pass finds the longest such P: after each entry whose records all
// applied, the prefix ending there replays exactly when the index has no
// unresolved jobs (index.Unresolved is zero), and no prefix that holds a
// record that does not apply (or a corrupt entry) replays, so the pass
// stops there. When the cut comes before that stop (or the end of the
// log) because jobs were left unresolved, the problem names the earliest
// unresolved record, as Open's error does.
//
// Errors that are not about the log's contents (I/O) are returned as err.
func ReplayablePrefix(l *wlog.Log) (keep uint64, problem error, err error) {
	first := l.FirstIndex()
	x := index.New()
	if first > 1 {
		x.SetLenient()
	}
	keep = first - 1
	var cur uint64 // the entry being applied, 0 before the first
	stop := l.Replay(1, func(i uint64, slot int, r *wlog.Record) error {
		if slot == 0 {
			if cur != 0 && x.Unresolved() == 0 {
				keep = cur
			}
			cur = i
		}
		return x.Apply(r, index.Pos{Index: i, Slot: slot})
	})
	// The entry replay stopped in: a record that does not apply is in the
	// entry being applied; a corrupt entry may be the next one.
	var stopAt uint64
	var ae *index.ApplyError
	var ce *wlog.CorruptError
	switch {
	case stop == nil:
	case errors.As(stop, &ae):
		stopAt = ae.Pos.Index
	case errors.As(stop, &ce):
		stopAt = ce.Index
		if stopAt == 0 {
			stopAt = cur + 1
		}
	default:
		return 0, nil, stop
	}
	if cur != 0 && cur != stopAt && x.Unresolved() == 0 {
		keep = cur
	}
	switch {
	case keep == l.LastIndex():
		return keep, nil, nil
	case stop != nil && keep+1 == stopAt:
		return keep, stop, nil
	}
	problem = x.EndReplay()
	if problem == nil {
		problem = stop
	} else if stop != nil {
		problem = fmt.Errorf("%w; replay then stops at index %d: %w", problem, stopAt, stop)
	}
	return keep, problem, nil
}
