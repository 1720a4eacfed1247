package log

import (
	"fmt"
	"os"
	"sync"

	"github.com/walq/walq/internal/fault"
)

// TruncateFront removes every segment whose entries all come before index,
// so that FirstIndex becomes the first index of the segment holding index
// (never past it). It never rewrites a segment and never removes the tail.
// Segments are removed oldest first and the directory is fsynced, so a crash
// leaves a contiguous suffix of the log. It returns the new first index.
func (l *Log) TruncateFront(index uint64) (uint64, error) {
	return l.truncateFront(index, false, 0)
}

// Generation counts the recoveries of this Log (see Recover). A recovery
// cuts the files back to the last acknowledged entry and hands the indexes
// after it out again, to new entries.
func (l *Log) Generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.generation
}

// TruncateFrontAt is TruncateFront for a cut chosen when Generation
// returned gen: it returns ErrStale and removes nothing if the log was
// recovered since, because the indexes the cut was chosen from may now
// name other entries, written after the choice.
func (l *Log) TruncateFrontAt(gen, index uint64) (uint64, error) {
	return l.truncateFront(index, true, gen)
}

// TruncateFrontAtUnder is TruncateFrontAt holding lock (for writing) only
// while segment files are removed, never across an fsync, so that a caller
// can keep its own readers from reading locations in a segment as it goes
// without making them wait for the disk. lock is taken before the log's
// read lock: a reader that holds lock for reading may call Read.
func (l *Log) TruncateFrontAtUnder(gen, index uint64, lock sync.Locker) (uint64, error) {
	return l.truncateFrontUnder(index, true, gen, lock)
}

func (l *Log) truncateFront(index uint64, checkGen bool, gen uint64) (uint64, error) {
	return l.truncateFrontUnder(index, checkGen, gen, nil)
}

// truncateFrontUnder removes the segments before the one holding index in
// three steps, each fsync outside the locks readers take:
//
//  1. fsync every written entry (what is cut may be restated by entries
//     after it — compaction's carry and checkpoint records — and in
//     Interval and None mode those may be written and not yet fsynced; a
//     power cut must not leave neither the old records nor their
//     restatement);
//  2. under lock (if any) and readMu: check the generation, remove the
//     files oldest first and drop them from the segment list — readers
//     check FirstIndex under readMu, so a read that passed the check
//     finishes before its file goes, and Recover takes readMu too, so no
//     recovery slips in between the generation check and the removal;
//  3. fsync the directory, so that the removals are durable before it
//     returns (a crash before that leaves a longer log, which replays to
//     the same state).
//
// truncMu spans all three so that truncations do not interleave.
func (l *Log) truncateFrontUnder(index uint64, checkGen bool, gen uint64, lock sync.Locker) (uint64, error) {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	if first, ok, err := l.cuts(index, checkGen, gen); !ok {
		return first, err
	}
	if err := l.injectTruncate("tail"); err != nil {
		return 0, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
	}
	if err := l.syncWritten(); err != nil {
		return 0, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
	}
	first, removed, err := l.removeFront(index, checkGen, gen, lock)
	if err != nil || !removed {
		return first, err
	}
	if err := l.injectTruncate("dir"); err != nil {
		return 0, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
	}
	if err := syncDir(l.dir); err != nil {
		return 0, l.fail(err)
	}
	return first, nil
}

// cuts reports whether a truncation at index would remove a segment now,
// and if not, what it returns: the first index, or why it cannot truncate.
// Only truncations (serialised by truncMu) remove segments, so a caller
// holding truncMu can rely on a false answer.
func (l *Log) cuts(index uint64, checkGen bool, gen uint64) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return 0, false, err
	}
	if checkGen && gen != l.generation {
		return 0, false, fmt.Errorf("%w: truncate front at %d chosen in generation %d, log is in generation %d", ErrStale, index, gen, l.generation)
	}
	return l.first, len(l.segs) > 1 && l.segs[1].first <= index, nil
}

// injectTruncate asks the test's fault injector, if there is one, about the
// truncation's fsync of step ("tail" or "dir").
func (l *Log) injectTruncate(step string) error {
	if l.faults == nil {
		return nil
	}
	return l.faults.MaybeError(fault.Op{Kind: fault.TruncateSync, Step: step})
}

// removeFront is step 2 of truncateFrontUnder: it removes the segments
// before the one holding index and reports the new first index and whether
// any file was removed.
func (l *Log) removeFront(index uint64, checkGen bool, gen uint64, lock sync.Locker) (uint64, bool, error) {
	if lock != nil {
		lock.Lock()
		defer lock.Unlock()
	}
	l.readMu.Lock()
	defer l.readMu.Unlock()
	l.mu.Lock()
	if err := l.writableLocked(); err != nil {
		l.mu.Unlock()
		return 0, false, err
	}
	if checkGen && gen != l.generation {
		l.mu.Unlock()
		return 0, false, fmt.Errorf("%w: truncate front at %d chosen in generation %d, log is in generation %d", ErrStale, index, gen, l.generation)
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
		return first, false, nil
	}
	for _, s := range victims {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return 0, false, l.fail(fmt.Errorf("walq/log: truncate front: %w", err))
		}
	}
	l.mu.Lock()
	l.segs = append([]segment(nil), l.segs[k:]...)
	l.mu.Unlock()
	l.cold.drop()
	return first, true, nil
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
	l.cold.drop()
	l.generation++
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
