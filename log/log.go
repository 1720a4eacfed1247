package log

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tidwall/wal"
	"github.com/walq/walq/internal/fault"
)

// Durability says when an appended entry counts as durable.
type Durability int

const (
	// Sync makes every append durable (written and fsynced) before it
	// returns. Concurrent appends share fsyncs through group commit. It is
	// the zero value and the default.
	Sync Durability = iota
	// Interval acknowledges an append once it is written to the operating
	// system and fsyncs at most every Options.SyncInterval, like Redis's
	// appendfsync everysec: a power loss can drop the last interval.
	Interval
	// None acknowledges an append once it is written to the operating
	// system and never fsyncs on its own (only when a segment fills and on
	// Close): a power loss can drop anything the OS had not flushed.
	None
)

// String returns "sync", "interval" or "none".
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Interval:
		return "interval"
	case None:
		return "none"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

// Options configure a Log. The zero value is valid.
type Options struct {
	// Durability says when an append is acknowledged. Defaults to Sync.
	Durability Durability
	// SyncInterval is the longest time between fsyncs in Interval mode.
	// Defaults to 100ms.
	SyncInterval time.Duration
	// SegmentSize is the size at which a segment file is closed and a new
	// one started. Defaults to 1 MiB.
	SegmentSize int
	// MaxEntrySize is the largest entry Append accepts and the largest
	// entry length a reader believes before allocating. Defaults to 64 MiB.
	MaxEntrySize int
	// ReadOnly opens the log for reading only: no lock is taken, no file is
	// created, repaired or modified, and a torn tail being written by
	// another process is treated as the end of the log. Defaults to false.
	ReadOnly bool
	// Logger receives repair reports and I/O failures. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Durability < Sync || c.Durability > None {
		return c, fmt.Errorf("walq/log: Options.Durability: unknown mode %d", int(c.Durability))
	}
	if c.SyncInterval < 0 {
		return c, fmt.Errorf("walq/log: Options.SyncInterval: negative duration %v", c.SyncInterval)
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = 100 * time.Millisecond
	}
	if c.SegmentSize < 0 {
		return c, fmt.Errorf("walq/log: Options.SegmentSize: negative size %d", c.SegmentSize)
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = 1 << 20
	}
	if c.MaxEntrySize < 0 {
		return c, fmt.Errorf("walq/log: Options.MaxEntrySize: negative size %d", c.MaxEntrySize)
	}
	if c.MaxEntrySize == 0 {
		c.MaxEntrySize = 64 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Repair describes a torn tail cut from the last segment at Open.
type Repair struct {
	// Segment is the repaired segment file.
	Segment string
	// Offset is where the segment was cut: the end of its last valid entry.
	Offset int64
	// Bytes is how many bytes were cut.
	Bytes int64
	// Saved is the file that keeps a copy of the cut bytes.
	Saved string
	// Reason is why the first cut entry was invalid.
	Reason string
}

// Log is a crash-safe, group-committed, append-only log of job records in
// one directory of segment files. It is safe for concurrent use: any number
// of goroutines may append and read at once.
type Log struct {
	dir  string
	opts Options
	lock *os.File

	// repair is what Open cut from the tail, nil if nothing.
	repair *Repair
	// faults injects failures and delays into commits in tests; nil
	// otherwise (see internal/fault).
	faults fault.Injector

	mu   sync.Mutex
	cond *sync.Cond // signals the committer: work queued or closing
	idle *sync.Cond // signals waiters: the committer finished a group

	w        *wal.Log     // the segment files; nil when read-only
	batch    wal.Batch    // the committer's reused batch
	segs     []segment    // segment files, oldest first
	tailSize int          // bytes in the tail segment, mirroring tidwall/wal
	tailMu   sync.RWMutex // guards tail against being closed under an fsync
	tail     *os.File     // our own handle on the tail segment, for fsync
	readMu   sync.Mutex   // serialises reads: tidwall/wal's Read mutates its cache
	verified verifiedEntry
	cold     coldReader // reads of segments before the tail; guarded by readMu
	truncMu  sync.Mutex // serialises TruncateFront

	first    uint64 // first index in the log
	next     uint64 // index the next Submit gets
	written  uint64 // last index written to the OS
	appended int64  // bytes written to segments since Open
	// generation counts recoveries, which reuse the indexes of the
	// entries they drop.
	generation uint64
	synced     uint64 // last index fsynced
	acked      uint64 // last index acknowledged to an appender
	open       *group // the group new Submits join, nil if none
	busy       bool   // the committer is writing a group
	failed     error  // the first write or fsync failure, until Recover
	closing    bool
	closed     bool
	done       chan struct{} // closed when the committer exits
	syncStop   chan struct{}
	syncWG     sync.WaitGroup // the Interval-mode syncer
}

// Open opens (creating it if needed) the log in dir. A writer takes the
// directory's lock and repairs a torn tail of the last segment, reporting
// what it cut through Repaired and the logger. Corruption before the tail is
// not repaired: the first read of it returns a *CorruptError, and Salvage is
// the documented way to keep the valid prefix.
func Open(dir string, opts *Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: o, faults: fault.Lookup(dir)}
	l.cond = sync.NewCond(&l.mu)
	l.idle = sync.NewCond(&l.mu)
	if o.ReadOnly {
		return l, l.openReadOnly()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("walq/log: create %s: %w", dir, err)
	}
	// Refuse a foreign directory before the lock file is created in it.
	if err := checkUsable(dir); err != nil {
		return nil, err
	}
	if l.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if err := l.openWriter(); err != nil {
		unlockDir(l.lock)
		return nil, err
	}
	l.done = make(chan struct{})
	l.syncStop = make(chan struct{})
	go l.commitLoop()
	return l, nil
}

func (l *Log) openReadOnly() error {
	ok, err := checkFormat(l.dir)
	if err != nil {
		return err
	}
	if !ok {
		if _, serr := os.Stat(l.dir); serr != nil {
			return fmt.Errorf("walq/log: open %s: %w", l.dir, serr)
		}
		return fmt.Errorf("%w: %s has no %s file", ErrNotLog, l.dir, formatName)
	}
	l.closed = false
	return l.refreshReadOnly()
}

// refreshAttempts bounds how many times refreshReadOnly lists the
// directory again because the last segment it listed was removed before it
// could read it. That takes the writer filling that segment, starting
// others and compacting it away within one refresh, so a second listing
// all but always succeeds.
const refreshAttempts = 8

// refreshReadOnly rereads the segment list and finds the last whole entry,
// tolerating a tail that is being written.
func (l *Log) refreshReadOnly() error {
	var err error
	for range refreshAttempts {
		if err = l.refreshOnce(); !errors.Is(err, ErrVanished) {
			break
		}
	}
	return err
}

// refreshOnce is one attempt of refreshReadOnly. It changes nothing when it
// fails.
func (l *Log) refreshOnce() error {
	segs, err := listSegments(l.dir)
	if err != nil {
		return fmt.Errorf("walq/log: list %s: %w", l.dir, err)
	}
	if len(segs) == 0 {
		l.segs = segs
		l.first, l.written = 1, 0
		return nil
	}
	last := segs[len(segs)-1]
	buf, err := os.ReadFile(last.path)
	if errors.Is(err, os.ErrNotExist) {
		// No longer the tail: the writer moved on and compacted it away
		// since the listing.
		return openSegmentError(last, err)
	}
	if err != nil {
		return fmt.Errorf("walq/log: read %s: %w", last.path, err)
	}
	res, err := scanSegment(buf, last, l.opts.MaxEntrySize, nil)
	if err != nil {
		return err
	}
	if res.bad != nil && res.validAfter {
		return res.bad
	}
	l.segs = segs
	l.repair = nil
	if res.bad != nil {
		l.repair = tornTail(last, buf, res)
	}
	l.first = segs[0].first
	l.written = last.first + uint64(res.entries) - 1
	l.acked, l.synced, l.next = l.written, l.written, l.written+1
	return nil
}

// openWriter prepares the directory, repairs the tail and opens the
// segments through tidwall/wal.
func (l *Log) openWriter() error {
	if err := initDir(l.dir); err != nil {
		return err
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(segs) > 0 {
		if err := l.repairTail(segs[len(segs)-1]); err != nil {
			return err
		}
	}
	return l.openWAL()
}

// openWAL opens tidwall/wal on the (repaired) directory and mirrors its
// segment list.
func (l *Log) openWAL() error {
	w, err := wal.Open(l.dir, &wal.Options{
		// We fsync ourselves, on our own file handle, so that reads and
		// new appends are not held behind tidwall/wal's mutex during an
		// fsync, and so that a failed fsync is seen as such.
		NoSync:           true,
		SegmentSize:      l.opts.SegmentSize,
		SegmentCacheSize: 2,
		NoCopy:           true,
		AllowEmpty:       true,
		DirPerms:         0o755,
		FilePerms:        0o644,
	})
	if err != nil {
		return fmt.Errorf("walq/log: open segments in %s: %w", l.dir, err)
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		w.Close()
		return err
	}
	first, _ := w.FirstIndex()
	last, _ := w.LastIndex()
	if len(segs) == 0 || segs[0].first != first {
		w.Close()
		return fmt.Errorf("walq/log: %s: segment list disagrees with tidwall/wal (first index %d)", l.dir, first)
	}
	tailPath := segs[len(segs)-1].path
	tail, err := os.Open(tailPath)
	if err != nil {
		w.Close()
		return err
	}
	st, err := tail.Stat()
	if err != nil {
		w.Close()
		tail.Close()
		return err
	}
	// A new log's first segment was just created: make its name durable.
	if err := syncDir(l.dir); err != nil {
		w.Close()
		tail.Close()
		return err
	}
	l.w, l.segs, l.tail, l.tailSize = w, segs, tail, int(st.Size())
	l.first, l.written, l.synced, l.acked, l.next = first, last, last, last, last+1
	return nil
}

// repairTail cuts a torn tail from the last segment: everything from the
// first invalid entry on, provided no valid entry follows it (otherwise the
// damage is not a torn write and Open fails). The cut bytes are kept in a
// file named broken-<segment>-<offset>.
func (l *Log) repairTail(seg segment) error {
	buf, err := os.ReadFile(seg.path)
	if err != nil {
		return fmt.Errorf("walq/log: read %s: %w", seg.path, err)
	}
	res, err := scanSegment(buf, seg, l.opts.MaxEntrySize, nil)
	if err != nil {
		return err
	}
	if res.bad == nil {
		return nil
	}
	if res.validAfter {
		return res.bad
	}
	rep := tornTail(seg, buf, res)
	rep.Saved = filepath.Join(l.dir, fmt.Sprintf("broken-%s-%d", filepath.Base(seg.path), res.end))
	if err := writeFileAtomic(rep.Saved, buf[res.end:]); err != nil {
		return err
	}
	if err := truncateFile(seg.path, res.end); err != nil {
		return err
	}
	l.repair = rep
	l.opts.Logger.Warn("walq: repaired torn log tail",
		"segment", rep.Segment, "offset", rep.Offset, "bytes", rep.Bytes, "saved", rep.Saved, "reason", rep.Reason)
	return nil
}

// tornTail describes the torn tail that scanning seg's bytes buf found.
func tornTail(seg segment, buf []byte, res scanResult) *Repair {
	return &Repair{Segment: seg.path, Offset: res.end, Bytes: int64(len(buf)) - res.end, Reason: res.bad.Reason}
}

// truncateFile cuts path to size and makes the new size durable.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("walq/log: truncate %s to %d: %w", path, size, err)
	}
	return nil
}

// Repaired returns what Open cut from a torn tail, or nil if the log ended
// cleanly. On a read-only log nothing is cut: it describes the bytes after
// the last whole entry (as of Open or the last Refresh), which are a write
// in progress or a torn tail the next writer's Open will cut.
func (l *Log) Repaired() *Repair { return l.repair }

// Appended returns the bytes written to segment files since Open (entry
// frames included), for measuring write amplification.
func (l *Log) Appended() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appended
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// FirstIndex returns the index of the first entry; for an empty log it is
// LastIndex()+1.
func (l *Log) FirstIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first
}

// LastIndex returns the index of the last acknowledged entry, 0 if none was
// ever written.
func (l *Log) LastIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// Close stops accepting appends, waits for every entry already submitted to
// be written and (except in None mode) fsynced, fsyncs the tail, closes the
// segment files and releases the lock. On a failed log it cuts the files
// back to the acknowledged entries and returns the failure. Calling Close
// again returns nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed || l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.cond.Broadcast()
	l.mu.Unlock()
	if l.done == nil { // read-only
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		return nil
	}
	<-l.done
	l.syncWG.Wait()
	l.readMu.Lock()
	defer l.readMu.Unlock()
	l.cold.drop()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	defer unlockDir(l.lock)
	if l.failed != nil {
		// Never leave unacknowledged bytes behind for the next Open to
		// mistake for acknowledged ones.
		l.dropHandles()
		if err := cutBack(l.dir, l.acked, l.opts.MaxEntrySize); err != nil {
			return fmt.Errorf("%w (and cutting back failed: %v)", l.failed, err)
		}
		return l.failed
	}
	err := l.tail.Sync()
	l.tail.Close()
	// tidwall/wal's Close fsyncs too.
	if werr := l.w.Close(); err == nil && !errors.Is(werr, wal.ErrClosed) {
		err = werr
	}
	return err
}
