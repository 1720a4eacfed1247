package log

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tidwall/wal"
	"github.com/walq/walq/internal/fault"
)

// group is a set of entries committed together: one write and (in Sync
// mode) one fsync. Every appender in it is released when done closes.
type group struct {
	done  chan struct{}
	err   error
	first uint64
	last  uint64
	bufs  []*bytes.Buffer
}

// Pending is an entry submitted to the log and not yet known to be durable.
type Pending struct {
	index uint64
	g     *group
}

// Index returns the log index assigned to the entry.
func (p *Pending) Index() uint64 { return p.index }

// Wait blocks until the entry is acknowledged (durable in Sync mode,
// written in the other modes) and returns nil, or returns the error that
// failed its group. Wait may be called any number of times.
func (p *Pending) Wait() error {
	<-p.g.done
	return p.g.err
}

// Append writes recs as one entry and waits until it is acknowledged. It
// returns the entry's log index: record i of recs is at (index, i). The
// entry is atomic: after a crash either all of recs are in the log or none.
func (l *Log) Append(recs []Record) (uint64, error) {
	p, err := l.Submit(recs)
	if err != nil {
		return 0, err
	}
	return p.index, p.Wait()
}

// Submit encodes recs as one entry, assigns it the next log index and queues
// it for the next group commit without waiting. Entries are written in the
// order Submit assigned their indexes. It sets recs[i].PayloadAt.
func (l *Log) Submit(recs []Record) (*Pending, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("walq/log: append of no records")
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	body, err := encodeBody(buf, recs)
	if err != nil {
		return nil, fmt.Errorf("walq/log: encode: %w", err)
	}
	if buf.Len() > l.opts.MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, buf.Len(), l.opts.MaxEntrySize)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return nil, err
	}
	idx := l.next
	l.next++
	binary.LittleEndian.PutUint32(buf.Bytes(), entryCRC(body, idx))
	g := l.open
	if g == nil {
		g = &group{done: make(chan struct{}), first: idx}
		l.open = g
		l.cond.Signal()
	}
	g.last = idx
	g.bufs = append(g.bufs, buf)
	return &Pending{index: idx, g: g}, nil
}

// writableLocked returns why the log cannot take an append, or nil.
func (l *Log) writableLocked() error {
	switch {
	case l.closed || l.closing:
		return ErrClosed
	case l.opts.ReadOnly:
		return ErrReadOnly
	case l.failed != nil:
		return l.failed
	}
	return nil
}

// commitLoop is the committer: it takes whatever groups are waiting and
// writes them, one group at a time. Submit keeps filling the next group
// while a write or fsync is in flight, so the next group is ready the moment
// the previous one is durable.
func (l *Log) commitLoop() {
	defer close(l.done)
	if l.opts.Durability == Interval {
		l.syncWG.Add(1)
		go l.syncLoop()
		defer close(l.syncStop)
	}
	var released int       // appenders the previous commit released
	var took time.Duration // how long the previous commit took
	for {
		l.mu.Lock()
		for l.open == nil && !l.closing {
			l.cond.Wait()
		}
		l.gatherCohort(released, took)
		g := l.open
		if g == nil { // closing and drained
			l.mu.Unlock()
			return
		}
		l.open = nil
		l.busy = true
		failed := l.failed
		l.mu.Unlock()

		err := failed
		if err == nil {
			start := time.Now()
			err = l.commit(g)
			took = time.Since(start)
		}
		released = len(g.bufs)

		l.mu.Lock()
		l.busy = false
		if err != nil && l.failed == nil {
			l.failed = fmt.Errorf("%w: entries %d-%d: %w", ErrFailed, g.first, g.last, err)
			l.opts.Logger.Error("walq: log write failed; refusing appends until recovered",
				"dir", l.dir, "first", g.first, "last", g.last, "err", err)
		}
		if err == nil {
			l.acked = g.last
		} else {
			err = l.failed
		}
		l.idle.Broadcast()
		l.mu.Unlock()
		for _, b := range g.bufs {
			if b.Cap() <= 1<<20 {
				bufPool.Put(b)
			}
		}
		g.bufs = nil
		g.err = err
		close(g.done)
	}
}

// maxCohortWait bounds how long the committer holds an open group back
// for the appenders the previous commit released.
const maxCohortWait = 200 * time.Microsecond

// gatherCohort is group commit's delay, bounded and adaptive. When a commit
// releases n appenders, most of them append again at once, but each must
// first be scheduled, apply its change and come back; a committer that
// takes the open group the moment the fsync returns finds only the first
// few, and the rest wait a whole fsync for the next group, so groups stay
// small and the fsync rate caps throughput. So, in Sync mode, while the
// open group holds fewer entries than the previous one released, the
// committer yields its processor to them, for at most a quarter of the
// previous commit's time (and maxCohortWait), so that a lone appender
// (released 1) never waits and a waited-for cohort costs less than the
// fsync it joins. It is called and returns with l.mu held; with no open
// group (the log is closing) it does nothing.
func (l *Log) gatherCohort(released int, took time.Duration) {
	if l.opts.Durability != Sync || released < 2 || l.open == nil {
		return
	}
	deadline := time.Now().Add(min(took/4, maxCohortWait))
	for len(l.open.bufs) < released && !l.closing && time.Now().Before(deadline) {
		l.mu.Unlock()
		runtime.Gosched()
		l.mu.Lock()
	}
}

// commit writes one group and, in Sync mode, fsyncs it.
func (l *Log) commit(g *group) error {
	if err := l.inject(fault.Write, g); err != nil {
		return err
	}
	b := &l.batch // the committer's alone; reused so that its copy of the group is not reallocated
	b.Clear()
	for i, buf := range g.bufs {
		b.Write(g.first+uint64(i), buf.Bytes())
	}
	cycled := l.mirrorCycles(g)
	if err := l.w.WriteBatch(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if cycled {
		// tidwall/wal keeps a segment it closes in its read cache; we
		// never read through that cache (see cold.go), so free it.
		l.w.ClearCache()
		if err := l.switchTail(); err != nil {
			return err
		}
	}
	var n int
	for _, buf := range g.bufs {
		n += uvarintLen(uint64(buf.Len())) + buf.Len()
	}
	if n > 1<<20 {
		l.batch = wal.Batch{} // keep no large group's copy
	}
	l.mu.Lock()
	l.written = g.last
	l.appended += int64(n)
	l.mu.Unlock()
	if l.opts.Durability != Sync {
		return nil
	}
	if err := l.inject(fault.Sync, g); err != nil {
		return err
	}
	return l.syncTail(g.last)
}

// inject asks the test's fault injector, if there is one, about step k of
// committing g.
func (l *Log) inject(k fault.Kind, g *group) error {
	if l.faults == nil {
		return nil
	}
	return l.faults.MaybeError(fault.Op{Kind: k, First: g.first, Last: g.last})
}

// mirrorCycles replays tidwall/wal's rule for starting a new segment (before
// a batch if the tail already exceeds SegmentSize; after any entry that
// brings it to SegmentSize) so that we know the segment files it will
// create: each needs a directory fsync, and our tail handle must follow.
func (l *Log) mirrorCycles(g *group) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cycled := false
	start := func(first uint64) {
		l.segs = append(l.segs, segment{path: filepath.Join(l.dir, segmentName(first)), first: first})
		l.tailSize = 0
		cycled = true
	}
	if l.tailSize > l.opts.SegmentSize {
		start(g.first)
	}
	for i, buf := range g.bufs {
		n := buf.Len()
		l.tailSize += uvarintLen(uint64(n)) + n
		l.segs[len(l.segs)-1].size = int64(l.tailSize)
		if l.tailSize >= l.opts.SegmentSize {
			start(g.first + uint64(i) + 1)
		}
	}
	return cycled
}

// switchTail makes new segment files durable by name and points our fsync
// handle at the current tail. tidwall/wal fsyncs a segment before it starts
// the next one.
func (l *Log) switchTail() error {
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.mu.Lock()
	path := l.segs[len(l.segs)-1].path
	l.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("walq/log: open new tail segment: %w", err)
	}
	l.tailMu.Lock()
	old := l.tail
	l.tail = f
	l.tailMu.Unlock()
	return old.Close()
}

// syncTail fsyncs the tail segment and records that entries up to last are
// durable.
func (l *Log) syncTail(last uint64) error {
	// The read lock keeps switchTail from closing the handle under the
	// fsync; it does not block writes, which go through tidwall/wal.
	l.tailMu.RLock()
	err := datasync(l.tail)
	l.tailMu.RUnlock()
	if err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	l.mu.Lock()
	if last > l.synced {
		l.synced = last
	}
	l.mu.Unlock()
	return nil
}

// syncWritten fsyncs every entry written so far, whatever the durability
// mode. Entries in segments before the tail were fsynced when tidwall/wal
// started the next segment.
func (l *Log) syncWritten() error {
	l.mu.Lock()
	written, synced := l.written, l.synced
	l.mu.Unlock()
	if written <= synced {
		return nil
	}
	return l.syncTail(written)
}

// syncLoop fsyncs written entries at most every SyncInterval (Interval mode).
func (l *Log) syncLoop() {
	defer l.syncWG.Done()
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.syncStop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		written, synced, failed := l.written, l.synced, l.failed
		l.mu.Unlock()
		if failed != nil || written <= synced {
			continue
		}
		if err := l.syncTail(written); err != nil {
			l.mu.Lock()
			if l.failed == nil {
				l.failed = fmt.Errorf("%w: background %w", ErrFailed, err)
				l.opts.Logger.Error("walq: background fsync failed; refusing appends until recovered", "dir", l.dir, "err", err)
			}
			l.mu.Unlock()
		}
	}
}

// Failed returns the write or fsync failure that stopped the log, or nil.
func (l *Log) Failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}
