package log

import (
	"fmt"
	"os"
	"path/filepath"
)

// TruncateFront removes every segment whose entries all come before index,
// so that FirstIndex becomes the first index of the segment holding index
// (never past it). It never rewrites a segment and never removes the tail.
// Segments are removed oldest first and the directory is fsynced, so a crash
// leaves a contiguous suffix of the log. It returns the new first index.
func (l *Log) TruncateFront(index uint64) (uint64, error) {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	k := 0
	for k < len(l.segs)-1 && l.segs[k+1].first <= index {
		k++
	}
	victims := append([]segment(nil), l.segs[:k]...)
	if k > 0 {
		l.first = l.segs[k].first
	}
	first := l.first
	l.mu.Unlock()
	if k == 0 {
		return first, nil
	}
	// What is cut may be restated by entries after it (compaction's carry
	// and checkpoint records). In Interval and None mode those may be
	// written and not yet fsynced: make every written entry durable before
	// a file goes, or a power cut could leave neither the old records nor
	// their restatement.
	if err := l.syncWritten(); err != nil {
		return 0, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
	}
	// Readers check FirstIndex before reading; holding readMu lets any read
	// that passed the check finish before its file goes.
	l.readMu.Lock()
	defer l.readMu.Unlock()
	for _, s := range victims {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return 0, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
		}
	}
	if err := syncDir(l.dir); err != nil {
		return 0, l.fail(err)
	}
	l.mu.Lock()
	l.segs = append([]segment(nil), l.segs[k:]...)
	l.mu.Unlock()
	return first, nil
}

// fail records err as the log's failure (if it is the first) and returns the
// failure.
func (l *Log) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		l.opts.Logger.Error("walq: log failed; refusing appends until recovered", "dir", l.dir, "err", err)
	}
	return l.failed
}

// Segments returns the number of segment files.
func (l *Log) Segments() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.segs)
}

// SegmentFirsts returns the first index of every segment, oldest first.
func (l *Log) SegmentFirsts() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, len(l.segs))
	for i, s := range l.segs {
		out[i] = s.first
	}
	return out
}

// Size returns the total size in bytes of the segment files, as tracked by
// the log (no system calls).
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// SegmentSize returns the configured segment size.
func (l *Log) SegmentSize() int { return l.opts.SegmentSize }

// Recover brings a failed log back: it waits for the committer to fail every
// queued group, drops tidwall/wal's in-memory state (which may disagree with
// the disk after a failed write), cuts the files back to the last
// acknowledged entry and reopens them. Appends work again if it returns nil.
// It does nothing on a healthy log. Entries that were never acknowledged do
// not survive; every acknowledged one does.
func (l *Log) Recover() error {
	// Readers use tidwall/wal under readMu; hold it while it is replaced.
	l.readMu.Lock()
	defer l.readMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.closing {
		return ErrClosed
	}
	if l.failed == nil || l.opts.ReadOnly {
		return nil
	}
	for l.busy || l.open != nil {
		l.idle.Wait()
	}
	l.dropHandles()
	if err := cutBack(l.dir, l.acked, l.opts.MaxEntrySize); err != nil {
		return fmt.Errorf("walq/log: recover: %w", err)
	}
	if err := l.openWAL(); err != nil {
		return fmt.Errorf("walq/log: recover: %w", err)
	}
	l.verified = verifiedEntry{}
	l.opts.Logger.Info("walq: log recovered", "dir", l.dir, "last", l.acked)
	l.failed = nil
	return nil
}

// dropHandles closes tidwall/wal and our tail handle after a failure.
// Errors are expected here: the handles may be the ones that failed.
func (l *Log) dropHandles() {
	l.w.Close()
	l.tailMu.Lock()
	l.tail.Close()
	l.tailMu.Unlock()
}

// cutBack removes every entry after last from the segment files: later
// segments are removed (the first segment is emptied instead) and the
// segment holding last is truncated just past it.
func cutBack(dir string, last uint64, maxEntry int) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.first > last+1 || (s.first == last+1 && i > 0) {
			if err := os.Remove(s.path); err != nil {
				return err
			}
			continue
		}
		buf, err := os.ReadFile(s.path)
		if err != nil {
			return err
		}
		var end int64
		if _, err := scanSegment(buf, s, maxEntry, func(index uint64, f frame) error {
			if index > last {
				return errStop
			}
			end = f.end()
			return nil
		}); err != nil && err != errStop {
			return err
		}
		if err := truncateFile(s.path, end); err != nil {
			return err
		}
		break
	}
	return syncDir(dir)
}

// SalvageReport says what Salvage found and cut.
type SalvageReport struct {
	// Corruption is the first corruption found, nil if the log is whole.
	Corruption *CorruptError
	// KeptLast is the index of the last entry kept.
	KeptLast uint64
	// DroppedBytes is how many bytes were (or would be) moved aside.
	DroppedBytes int64
	// DroppedSegments lists the segment files moved aside whole.
	DroppedSegments []string
	// Saved lists the files that keep the dropped bytes.
	Saved []string
}

// Salvage keeps the longest valid prefix of the log in dir: it verifies
// every entry of every segment and, at the first corruption, cuts the log
// there, moving the rest aside into broken-* files (nothing is deleted).
// With dryRun it only reports what it would cut. It takes the directory's
// write lock, so the log must not be open elsewhere.
func Salvage(dir string, dryRun bool) (*SalvageReport, error) {
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
	rep := &SalvageReport{}
	var buf []byte
	cut := -1 // segment index holding the corruption
	var cutAt int64
	for i, s := range segs {
		if buf, err = readInto(buf, s.path); err != nil {
			return nil, err
		}
		res, _ := scanSegment(buf, s, maxEntryDefault, nil)
		end := s.first + uint64(res.entries)
		if res.entries > 0 {
			rep.KeptLast = end - 1
		}
		if res.bad == nil && i+1 < len(segs) && segs[i+1].first != end {
			// A gap or an overlap: either way the next segment does not
			// continue this one, and the prefix ends here.
			reason := fmt.Sprintf("segment ends before index %d but the next segment starts at %d", end, segs[i+1].first)
			if end > segs[i+1].first {
				reason = fmt.Sprintf("segment holds entries up to index %d but the next segment starts at %d", end-1, segs[i+1].first)
			}
			res.bad = &CorruptError{Segment: s.path, Offset: res.end, Record: -1, Index: end, Reason: reason}
		}
		if res.bad != nil {
			rep.Corruption, cut, cutAt = res.bad, i, res.end
			rep.DroppedBytes = int64(len(buf)) - res.end
			break
		}
	}
	if cut < 0 {
		return rep, nil
	}
	for _, s := range segs[cut+1:] {
		st, err := os.Stat(s.path)
		if err != nil {
			return nil, err
		}
		rep.DroppedBytes += st.Size()
		rep.DroppedSegments = append(rep.DroppedSegments, s.path)
	}
	if dryRun {
		return rep, nil
	}
	// Move whole later segments aside first (newest first), then cut the
	// damaged one, so that a crash midway leaves a log that is a prefix.
	for i := len(segs) - 1; i > cut; i-- {
		dst := filepath.Join(dir, "broken-"+filepath.Base(segs[i].path))
		if err := os.Rename(segs[i].path, dst); err != nil {
			return nil, err
		}
		rep.Saved = append(rep.Saved, dst)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	s := segs[cut]
	if buf, err = readInto(buf, s.path); err != nil {
		return nil, err
	}
	saved := filepath.Join(dir, fmt.Sprintf("broken-%s-%d", filepath.Base(s.path), cutAt))
	if err := writeFileAtomic(saved, buf[cutAt:]); err != nil {
		return nil, err
	}
	rep.Saved = append(rep.Saved, saved)
	if err := truncateFile(s.path, cutAt); err != nil {
		return nil, err
	}
	return rep, syncDir(dir)
}

// maxEntryDefault is the entry-size limit Salvage assumes.
const maxEntryDefault = 64 << 20
