package log

import (
	"errors"
	"fmt"
	"io"
	"os"
	"weak"

	"github.com/tidwall/wal"
)

// verifiedEntry remembers the last entry whose checksum Read verified, so
// that reading many payloads out of one large batch entry checks its
// checksum once. It names the entry by index, length and address: the
// buffer tidwall/wal returned it in (by a weak pointer to the buffer's last
// byte of capacity) and its distance from that end. If tidwall/wal reloads
// the segment from disk, or grows its tail buffer by copying, the entry is
// somewhere else and is checked again.
//
// The pointer is weak so that the cache does not keep a buffer tidwall/wal
// has let go of: a strong one pinned the old tail buffer (up to a segment)
// after an append regrew it, next to the new one. Weak does not weaken the
// check: while the old buffer lives its address cannot be reused, and once
// it is collected Value returns nil, so a new buffer at the same address is
// never mistaken for it. All the weak pointers made point at the same byte
// of a buffer, so the runtime keeps one handle per buffer, not one per
// entry.
type verifiedEntry struct {
	index uint64
	end   weak.Pointer[byte] // the last byte of the buffer's capacity
	left  int                // cap(data): from the entry's first byte to end, inclusive
	n     int                // len(data)
}

// bufferEnd returns a pointer to the last byte of data's capacity, which
// names the buffer data is in; nil if data has no capacity.
func bufferEnd(data []byte) *byte {
	if cap(data) == 0 {
		return nil
	}
	return &data[:cap(data)][cap(data)-1]
}

// holds reports whether v is the entry index whose bytes are data.
func (v *verifiedEntry) holds(index uint64, data []byte) bool {
	if len(data) == 0 || v.index != index || v.n != len(data) || v.left != cap(data) {
		return false
	}
	end := v.end.Value()
	return end != nil && end == bufferEnd(data)
}

// remember records data as the verified bytes of entry index.
func (v *verifiedEntry) remember(index uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	*v = verifiedEntry{index: index, end: weak.Make(bufferEnd(data)), left: cap(data), n: len(data)}
}

// Read returns the bytes of the entry at index after verifying its
// checksum. The bytes must not be modified; they stay valid after later
// appends. It returns ErrNotFound outside [FirstIndex, LastIndex].
func (l *Log) Read(index uint64) ([]byte, error) {
	l.mu.Lock()
	first, last, closed := l.first, l.acked, l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if index < first || index > last {
		return nil, fmt.Errorf("%w: %d is outside [%d, %d]", ErrNotFound, index, first, last)
	}
	if l.opts.ReadOnly {
		return l.readScan(index)
	}
	l.readMu.Lock()
	defer l.readMu.Unlock()
	seg, next, ok, err := l.coldSegment(index)
	if err != nil {
		return nil, err
	}
	if ok {
		return l.cold.read(seg, next, index, l.opts.MaxEntrySize)
	}
	data, err := l.walRead(index)
	if err != nil {
		return nil, err
	}
	if l.verified.holds(index, data) {
		return data, nil
	}
	if err := CheckEntry(index, data); err != nil {
		return nil, locate(err, l.segmentOf(index), -1, index)
	}
	l.verified.remember(index, data)
	return data, nil
}

// walRead reads an entry through tidwall/wal, turning its errors (and the
// panic it raises for a segment shorter than its neighbours say) into ours.
func (l *Log) walRead(index uint64) (data []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = corruptAt(l.segmentOf(index), -1, index,
				fmt.Sprintf("segment holds fewer entries than its successor's name implies (%v)", v), nil)
		}
	}()
	data, err = l.w.Read(index)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, wal.ErrCorrupt):
		return nil, corruptAt(l.segmentOf(index), -1, index, "segment framing is damaged", err)
	case errors.Is(err, wal.ErrClosed):
		return nil, ErrClosed
	case errors.Is(err, wal.ErrNotFound):
		return nil, fmt.Errorf("%w: %d", ErrNotFound, index)
	}
	return nil, fmt.Errorf("walq/log: read index %d: %w", index, err)
}

// segmentOf returns the path of the segment holding index.
func (l *Log) segmentOf(index uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.segs) - 1; i >= 0; i-- {
		if l.segs[i].first <= index {
			return l.segs[i].path
		}
	}
	return ""
}

// readScan reads one entry of a read-only log by scanning its segment
// (opening that one file, not the pinAhead that Iterate would).
func (l *Log) readScan(index uint64) ([]byte, error) {
	var out []byte
	err := l.iterate(index, 1, func(i uint64, data []byte) error {
		out = append([]byte(nil), data...)
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil && out == nil {
		err = fmt.Errorf("%w: %d", ErrNotFound, index)
	}
	return out, err
}

var errStop = errors.New("stop")

// Refresh rereads the segment list of a read-only log so that entries
// appended (or segments truncated) by the writer since Open become visible.
// On a writable log it does nothing.
func (l *Log) Refresh() error {
	if !l.opts.ReadOnly {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refreshReadOnly()
}

// Iterate calls fn with every entry from index from (or the first entry, if
// later) up to LastIndex as of the call, in order, verifying each checksum.
// The data passed to fn is only valid during the call. Corruption stops the
// iteration with a *CorruptError naming segment, offset and index; on a
// read-only log, invalid bytes at the very end of the last segment are taken
// to be a write in progress and end the iteration quietly.
//
// On a read-only log, a segment that the writer's TruncateFront removed
// before Iterate opened it stops the iteration with an error matching
// ErrVanished: its entries are gone, and the caller decides whether to
// Refresh and start again. Iterate opens the segments it reads a few dozen
// at a time, ahead of reading them, so that a segment it has opened cannot
// vanish under it.
func (l *Log) Iterate(from uint64, fn func(index uint64, data []byte) error) error {
	return l.iterate(from, pinAhead, fn)
}

// iterate is Iterate holding at most ahead segment files open on a
// read-only log.
func (l *Log) iterate(from uint64, ahead int, fn func(index uint64, data []byte) error) error {
	l.mu.Lock()
	segs := append([]segment(nil), l.segs...)
	last, closed := l.acked, l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var pins *pinned
	if l.opts.ReadOnly {
		pins = &pinned{segs: segs, ahead: ahead, last: last}
		defer pins.close()
	}
	var buf []byte
	for i, seg := range segs {
		isTail := i == len(segs)-1
		if !isTail && segs[i+1].first <= from {
			continue
		}
		if seg.first > last {
			break
		}
		var err error
		if pins != nil {
			// Another process's TruncateFront may remove any segment
			// but the tail at any time: read through pinned files.
			buf, err = pins.read(buf, i)
		} else if buf, err = readInto(buf, seg.path); err != nil {
			if errors.Is(err, os.ErrNotExist) && seg.first < l.FirstIndex() {
				// Our own TruncateFront removed it since the snapshot:
				// its entries are gone by design.
				continue
			}
		}
		if err != nil {
			return err
		}
		succ := successorOf(segs, i)
		res, err := scanSegment(buf, seg, l.opts.MaxEntrySize, func(index uint64, f frame) error {
			if ce := succ.claims(index, f.off); ce != nil {
				return ce
			}
			if index > last {
				return errStop
			}
			if index < from {
				return nil
			}
			return fn(index, f.data)
		})
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
		end := seg.first + uint64(res.entries) // one past the last valid entry
		if res.bad != nil {
			// Only the tail segment can be torn: tidwall/wal fsyncs a
			// segment before it starts the next one, so bad bytes in
			// an earlier segment are damage even past LastIndex.
			tornTail := isTail && (end > last || (!res.validAfter && l.opts.ReadOnly))
			if !tornTail {
				return res.bad
			}
		}
		if ce := succ.gap(end, res.end); ce != nil {
			return ce
		}
	}
	return nil
}

// pinAhead is how many segment files a read-only Iterate holds open at
// once, starting with the one it reads. A file that is open stays readable
// after the writer's TruncateFront unlinks it, so only the open itself can
// find a segment gone; opening the next segments back to back, before the
// entries of the first are delivered, leaves almost no window for that.
// Holding more costs descriptors; holding fewer lets a slow reader find a
// later segment gone once the writer has compacted past it.
const pinAhead = 64

// pinned holds a read-only Iterate's open segment files.
type pinned struct {
	segs  []segment
	ahead int        // how many segments to hold open, the one read included
	last  uint64     // segments starting after last are not read
	files []*os.File // files[i] is segs[i], open from its pinning until read
	next  int        // the next segment to open
}

// read opens segs[i] and the segments after it up to ahead in all (or
// keeps them open), reads segs[i] into buf and closes it. A segment that is
// gone when it is opened gives an error matching ErrVanished.
func (p *pinned) read(buf []byte, i int) ([]byte, error) {
	if p.files == nil {
		p.files = make([]*os.File, len(p.segs))
	}
	p.next = max(p.next, i)
	for ; p.next < min(i+p.ahead, len(p.segs)) && p.segs[p.next].first <= p.last; p.next++ {
		f, err := os.Open(p.segs[p.next].path)
		if err != nil {
			return buf, openSegmentError(p.segs[p.next], err)
		}
		p.files[p.next] = f
	}
	f := p.files[i]
	p.files[i] = nil
	defer f.Close()
	return readOpen(buf, f, p.segs[i].path)
}

// close closes the files still open.
func (p *pinned) close() {
	for _, f := range p.files {
		if f != nil {
			f.Close()
		}
	}
}

// openSegmentError describes a failure to open seg; a missing file matches
// ErrVanished.
func openSegmentError(seg segment, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: segment %s (first index %d): %w", ErrVanished, seg.path, seg.first, err)
	}
	return fmt.Errorf("walq/log: read segment: %w", err)
}

// readInto reads a whole file into buf, reusing its capacity.
func readInto(buf []byte, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, fmt.Errorf("walq/log: read segment: %w", err)
	}
	defer f.Close()
	return readOpen(buf, f, path)
}

// readOpen reads the whole of the open file f (at path) into buf, reusing
// its capacity.
func readOpen(buf []byte, f *os.File, path string) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return buf, err
	}
	n := int(st.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return buf, fmt.Errorf("walq/log: read segment %s: %w", path, err)
	}
	return buf[:m], nil
}

// Replay decodes every record from index from onward, in order, and calls
// fn with each record's entry index and position in the entry (every entry
// holds at least one record, so slot 0 starts each entry). The Record is
// reused between calls and its
// Payload and Result alias the log's buffer. Each entry's checksum is
// verified once (by Iterate). Any decoding failure is a *CorruptError with
// its location.
func (l *Log) Replay(from uint64, fn func(index uint64, slot int, r *Record) error) error {
	names := map[string]string{}
	var r Record
	return l.Iterate(from, func(index uint64, data []byte) error {
		err := decodeRecords(data, names, &r, func(i int, r *Record) error { return fn(index, i, r) })
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Index == 0 {
			return locate(err, l.segmentOf(index), -1, index)
		}
		return err
	})
}
