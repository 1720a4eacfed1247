package index

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"

	wlog "github.com/walq/walq/log"
)

// A checkpoint is the folded index written as one file, so that opening a
// queue loads it and replays only the log entries after the one it covers.
// It is a cache of the log and never trusted over it: the header names the
// entry it covers and proves which entry that is (its length and a CRC-64
// of its bytes, which hold the entry's own index-mixed CRC-32C); recovery
// compares that with the log and replays the whole log instead on any
// mismatch. index only encodes and decodes the stream; the file and the
// comparison with the log belong to recovery.
//
// Layout (all integers little-endian, fixed width; strings are a uint32
// length then the bytes):
//
//	+--------+-------------+------------+-----+------------+-----------+---------+---------+
//	| header | queue table | job 1      | ... | job n      | schedules | batches | CRC-32C |
//	| 80 B   | nqueues     | 72 B + var |     |            | nsched    | nbatch  | 4 B     |
//	+--------+-------------+------------+-----+------------+-----------+---------+---------+
//
// Header:
//
//	offset size field
//	0      8    magic "walqckpt"
//	8      4    version (2; a reader also loads 1, see below)
//	12     4    flags (0; a reader refuses any other value)
//	16     8    Index: the last log entry folded in (1..Index)
//	24     4    EntryLen: length of entry Index's bytes
//	28     4    nschedules (version 1: reserved, 0)
//	32     8    EntryHash: CRC-64/ECMA of entry Index's bytes
//	40     8    First: the log's first index when written (informational)
//	48     8    NextID
//	56     4    nqueues
//	60     4    nbatches (version 1: reserved, 0)
//	64     8    njobs
//	72     8    nkeys (jobs with an idempotency key)
//
// Queue table, nqueues times: name (string), paused (1 byte, 0 or 1), then
// the queue's job count per state, pending to cancelled (5 × 8 B), which
// size its heap arrays before any job is read and must match the jobs.
//
// Job, njobs times, in increasing ID order:
//
//	offset size field
//	0      8    ID
//	8      4    queue (position in the queue table)
//	12     1    state (index.State)
//	13     1    flags: 1 has key, 2 has extra, 4 has features (only
//	            with 2; version 2 and later)
//	14     1    Job.Flags (version 3: 1 releases its key when it dies;
//	            before: reserved, 0)
//	15     1    reserved (0)
//	16     8    Payload.Index
//	24     4    Payload.Off
//	28     4    Payload.Len
//	32     8    RunAt
//	40     8    Created
//	48     8    Deadline
//	56     4    Attempt
//	60     4    MaxAttempts
//	64     4    Priority
//	68     4    reserved (0)
//	72          key (string), if flag 1
//	            extra, if flag 2: BackoffBase, BackoffCap, Timeout,
//	            Finished (8 B each), Leases, Dropped (4 B each),
//	            Result.Index (8), Result.Off (4), Result.Len (4),
//	            HasResult (1), Error (string), history count (4), then per
//	            attempt Started, Ended (8 B each), Number, Lease (4 B
//	            each), Outcome (1), Error (string)
//	            features, if flag 4: Group (string), Progress (8),
//	            Note (string), and in version 3 ReleasedKey (string:
//	            the key the job gave up when it died; a job holding
//	            it has none)
//
// Schedules, nschedules times, in increasing name order: Name, Spec
// (strings), Missed (1), Anchor, LastRun (8 B each), then the job
// template. Batches, nbatches times, in increasing First order: First,
// Count (8 B each), then the callback's job template. A job template is
// Queue, Payload (strings), Priority, MaxAttempts, BackoffBase,
// BackoffCap, Timeout (8 B each), Group (string).
//
// Ordered groups are not written: they follow from the jobs (a group's
// members are its pending and leased jobs by ID; its head, the member in
// the heaps, is the first member while none is leased), and the decoder
// rebuilds them so, parking every other pending member, as a replay
// would. An enqueue into a group in flight (ReserveGroup) is not state,
// like a reservation.
//
// A version-1 checkpoint (written before schedules, batches, groups and
// progress were restated, and only by an index holding none of them) is
// the version-2 encoding of such an index, and a version-2 checkpoint the
// version-3 encoding of an index whose jobs neither release their keys on
// death nor have released one: each loads as such, so that an upgrade
// does not cost a full replay.
//
// The trailing CRC-32C (Castagnoli) covers every byte before it. Every
// field is checked as it is decoded (IDs increasing and below NextID, a
// valid state, a known queue, payload and result locations within entries
// First..Index, keys unique, per-queue counts matching), so that even a
// file whose checksum matches cannot build an inconsistent index. Every
// count and length is checked against the bytes left before anything is
// allocated for it. Reserved jobs (Busy) are written in their committed
// state: a reservation is not state.
const (
	// checkpointMagic starts every checkpoint: part of the on-disk
	// format; never change.
	checkpointMagic = "walqckpt"
	// CheckpointVersion is the checkpoint format version written; a reader
	// refuses any other. Part of the on-disk format.
	CheckpointVersion = 3
	ckptHeaderSize    = 80
	ckptJobSize       = 72
	ckptExtraSize     = 4*8 + 2*4 + 16 + 1
	ckptAttemptSize   = 2*8 + 2*4 + 1
	ckptQueueMin      = 4 + 1 + 5*8
	ckptTemplateMin   = 4 + 4 + 5*8 + 4
	ckptScheduleMin   = 4 + 4 + 1 + 2*8 + ckptTemplateMin
	ckptBatchMin      = 2*8 + ckptTemplateMin
	ckptFlagKey       = 1
	ckptFlagExtra     = 2
	ckptFlagFeatures  = 4
	// ckptMaxString bounds a decoded string (a key, a name or an error).
	ckptMaxString = 16 << 20
	// ckptMaxSpanPages bounds, beyond one page per 16 jobs, the job
	// table pages a checkpoint's IDs may span.
	ckptMaxSpanPages = 1 << 16
	// ckptMaxHistory bounds a decoded history's length.
	ckptMaxHistory = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CheckpointMeta is what a checkpoint's header says about the log it
// belongs to.
type CheckpointMeta struct {
	// Index is the last log entry the checkpoint folds in.
	Index uint64
	// EntryLen and EntryHash identify entry Index's bytes: its length and
	// their CRC-64/ECMA.
	EntryLen  uint32
	EntryHash uint64
	// First is the log's first index when the checkpoint was written.
	First uint64
	// Jobs is the number of jobs in the checkpoint (set by the decoder).
	Jobs int
}

// CheckpointError says why a checkpoint does not decode. It matches
// ErrCheckpoint with errors.Is.
type CheckpointError struct {
	// Offset is the byte offset in the checkpoint where decoding stopped.
	Offset int64
	// Reason says what is wrong.
	Reason string
}

// ErrCheckpoint marks a checkpoint that is damaged, of an unknown version,
// or inconsistent in itself.
var ErrCheckpoint = errors.New("walq/index: bad checkpoint")

// Error describes the problem and where it is.
func (e *CheckpointError) Error() string {
	return fmt.Sprintf("walq/index: bad checkpoint at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrCheckpoint.
func (e *CheckpointError) Is(target error) bool { return target == ErrCheckpoint }

// EntryHash returns the CRC-64 a checkpoint records for an entry's bytes.
func EntryHash(data []byte) uint64 { return crc64Sum(data) }

// ckptWriter buffers and checksums what it writes.
type ckptWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	b   [ckptJobSize]byte
	err error
}

func (w *ckptWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc.Write(b)
	_, w.err = w.w.Write(b)
	w.n += int64(len(b))
}

func (w *ckptWriter) u8(v uint8) { w.write([]byte{v}) }

func (w *ckptWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.b[:4], v)
	w.write(w.b[:4])
}

func (w *ckptWriter) u64(v uint64) {
	binary.LittleEndian.PutUint64(w.b[:8], v)
	w.write(w.b[:8])
}

func (w *ckptWriter) str(s string) {
	w.u32(uint32(len(s)))
	if w.err == nil {
		w.crc.Write([]byte(s))
		_, w.err = w.w.WriteString(s)
		w.n += int64(len(s))
	}
}

// WriteCheckpoint writes the index's state with meta's header to w and
// returns the bytes written. Reserved jobs are written in their committed
// state. The caller must keep the index unchanged while it runs.
func (x *Index) WriteCheckpoint(w io.Writer, meta CheckpointMeta) (int64, error) {
	return x.writeCheckpoint(w, meta, x.checkpointOrder())
}

// checkpointOrder returns the jobs in ID order: the order the job table
// is filled fastest in, and one that lets the decoder refuse a repeated ID
// by comparing neighbours. (The creation order compaction walks is only a
// matter of locality; after a load it is this order.)
func (x *Index) checkpointOrder() []*Job {
	jobs := make([]*Job, 0, x.jobs.len())
	x.jobs.each(func(j *Job) bool {
		jobs = append(jobs, j)
		return true
	})
	return jobs
}

func (x *Index) writeCheckpoint(out io.Writer, meta CheckpointMeta, jobs []*Job) (int64, error) {
	w := &ckptWriter{w: bufio.NewWriterSize(out, 256<<10), crc: crc32.New(castagnoli)}
	qs := x.Queues()
	qnum := make(map[*Queue]uint32, len(qs))
	for i, q := range qs {
		qnum[q] = uint32(i)
	}
	nkeys := 0
	for _, j := range jobs {
		if j.Key() != "" {
			nkeys++
		}
	}
	var h [ckptHeaderSize]byte
	copy(h[0:8], checkpointMagic)
	le := binary.LittleEndian
	le.PutUint32(h[8:], CheckpointVersion)
	le.PutUint64(h[16:], meta.Index)
	le.PutUint32(h[24:], meta.EntryLen)
	le.PutUint32(h[28:], uint32(len(x.schedules)))
	le.PutUint64(h[32:], meta.EntryHash)
	le.PutUint64(h[40:], meta.First)
	le.PutUint64(h[48:], x.nextID)
	le.PutUint32(h[56:], uint32(len(qs)))
	le.PutUint32(h[60:], uint32(len(x.batches)))
	le.PutUint64(h[64:], uint64(len(jobs)))
	le.PutUint64(h[72:], uint64(nkeys))
	w.write(h[:])
	for _, q := range qs {
		w.str(q.Name)
		w.u8(boolByte(q.Paused))
		for _, st := range States() {
			w.u64(uint64(q.counts[st]))
		}
	}
	for _, j := range jobs {
		w.job(j, qnum[j.Queue])
	}
	for _, sc := range x.Schedules() {
		w.schedule(sc)
	}
	for _, b := range x.Batches() {
		w.batch(b)
	}
	if w.err == nil {
		binary.LittleEndian.PutUint32(w.b[:4], w.crc.Sum32())
		_, w.err = w.w.Write(w.b[:4])
		w.n += 4
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.n, w.err
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// job writes one job. It is the only place that reads a job's fields for a
// checkpoint (readJob is its inverse).
func (w *ckptWriter) job(j *Job, queue uint32) {
	b := w.b[:]
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], j.ID)
	le.PutUint32(b[8:], queue)
	b[12] = uint8(j.State)
	b[14] = j.Flags
	key := j.Key()
	if key != "" {
		b[13] |= ckptFlagKey
	}
	if j.X != nil {
		b[13] |= ckptFlagExtra
		if j.X.F != nil {
			b[13] |= ckptFlagFeatures
		}
	}
	le.PutUint64(b[16:], j.Payload.Index)
	le.PutUint32(b[24:], j.Payload.Off)
	le.PutUint32(b[28:], j.Payload.Len)
	le.PutUint64(b[32:], uint64(j.RunAt))
	le.PutUint64(b[40:], uint64(j.Created))
	le.PutUint64(b[48:], uint64(j.Deadline()))
	le.PutUint32(b[56:], uint32(j.Attempt))
	le.PutUint32(b[60:], uint32(j.MaxAttempts))
	le.PutUint32(b[64:], uint32(j.Priority))
	w.write(b)
	if key != "" {
		w.str(key)
	}
	if e := j.X; e != nil {
		for _, v := range []int64{e.BackoffBase, e.BackoffCap, e.Timeout, e.Finished} {
			w.u64(uint64(v))
		}
		w.u32(uint32(e.Leases))
		w.u32(uint32(e.Dropped))
		w.u64(e.Result.Index)
		w.u32(e.Result.Off)
		w.u32(e.Result.Len)
		w.u8(boolByte(e.HasResult))
		w.str(e.Error)
		w.u32(uint32(len(e.History)))
		for _, a := range e.History {
			w.u64(uint64(a.Started))
			w.u64(uint64(a.Ended))
			w.u32(uint32(a.Number))
			w.u32(uint32(a.Lease))
			w.u8(uint8(a.Outcome))
			w.str(a.Error)
		}
		if f := e.F; f != nil {
			w.str(f.Group)
			w.u64(uint64(f.Progress))
			w.str(f.Note)
			w.str(f.ReleasedKey)
		}
	}
}

// schedule writes one periodic schedule (readSchedule is its inverse).
func (w *ckptWriter) schedule(s *Schedule) {
	w.str(s.Name)
	w.str(s.Spec)
	w.u8(s.Missed)
	w.u64(uint64(s.Anchor))
	w.u64(uint64(s.LastRun))
	w.template(s.Queue, s.Payload, s.Group, [5]int64{s.Priority, s.MaxAttempts, s.BackoffBase, s.BackoffCap, s.Timeout})
}

// batch writes one batch not yet ended (readBatch is its inverse).
func (w *ckptWriter) batch(b *Batch) {
	w.u64(b.First)
	w.u64(uint64(b.Count))
	w.template(b.Queue, b.Payload, b.Group, [5]int64{b.Priority, b.MaxAttempts, b.BackoffBase, b.BackoffCap, b.Timeout})
}

// template writes a job template: queue, payload, then priority, max
// attempts, backoff base and cap, and timeout, then group.
func (w *ckptWriter) template(queue string, payload []byte, group string, nums [5]int64) {
	w.str(queue)
	w.u32(uint32(len(payload)))
	w.write(payload)
	for _, v := range nums {
		w.u64(uint64(v))
	}
	w.str(group)
}

// ckptReader reads a checkpoint in chunks, checksumming what it reads, so
// that decoding needs no buffer the size of the file.
type ckptReader struct {
	r    io.Reader
	buf  []byte
	b    []byte // unread bytes of buf
	off  int64  // offset of b[0] in the file
	left int64  // bytes of the body not yet read into buf
	crc  uint32
	err  error
	// version is the checkpoint's format version, once the header is read.
	version uint32
}

// fail records the first error, at the current offset.
func (r *ckptReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &CheckpointError{Offset: r.off, Reason: fmt.Sprintf(format, args...)}
	}
}

// remaining returns the body bytes not yet consumed.
func (r *ckptReader) remaining() int64 { return int64(len(r.b)) + r.left }

// next returns the next n bytes, or nil (with r.err set) if the body has
// fewer. The bytes are valid until the next call.
func (r *ckptReader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if int64(n) > r.remaining() {
		r.fail("%d bytes needed, %d left", n, r.remaining())
		return nil
	}
	if n > len(r.b) {
		r.fill(n)
		if r.err != nil {
			return nil
		}
	}
	out := r.b[:n]
	r.b = r.b[n:]
	r.off += int64(n)
	return out
}

// fill reads until at least n bytes are unread; n is at most remaining().
func (r *ckptReader) fill(n int) {
	if n > cap(r.buf) {
		r.buf = make([]byte, 0, n)
	}
	k := copy(r.buf[:cap(r.buf)], r.b)
	want := min(int64(cap(r.buf)-k), r.left)
	m, err := io.ReadFull(r.r, r.buf[k:k+int(want)])
	r.crc = crc32.Update(r.crc, castagnoli, r.buf[k:k+m])
	r.left -= int64(m)
	r.b = r.buf[:k+m]
	if err != nil {
		r.fail("read: %v", err)
	}
}

func (r *ckptReader) u8() uint8 {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *ckptReader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *ckptReader) u64() uint64 {
	if b := r.next(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *ckptReader) str() string {
	n := r.u32()
	if r.err == nil && (n > ckptMaxString || int64(n) > r.remaining()) {
		r.fail("string of %d bytes, %d left", n, r.remaining())
	}
	if n == 0 || r.err != nil {
		return ""
	}
	return string(r.next(int(n)))
}

// ReadCheckpoint decodes a checkpoint of size bytes from r into a new
// index, with now as the time that decides which pending jobs are ready
// (as Promote). A checkpoint that is damaged, of another version or
// inconsistent in itself gives a *CheckpointError; nothing is trusted
// before the whole-file checksum has been compared.
func ReadCheckpoint(r io.Reader, size int64, now int64) (*Index, CheckpointMeta, error) {
	var meta CheckpointMeta
	if size < ckptHeaderSize+4 {
		return nil, meta, &CheckpointError{Reason: fmt.Sprintf("%d bytes is shorter than a header", size)}
	}
	rd := &ckptReader{r: r, buf: make([]byte, 0, 256<<10), left: size - 4}
	x, meta := rd.decode(now)
	if rd.err == nil && rd.remaining() != 0 {
		rd.fail("%d bytes after the last job", rd.remaining())
	}
	if rd.err != nil {
		return nil, meta, rd.err
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, meta, &CheckpointError{Offset: rd.off, Reason: fmt.Sprintf("read checksum: %v", err)}
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != rd.crc {
		return nil, meta, &CheckpointError{Offset: rd.off,
			Reason: fmt.Sprintf("checksum %#08x, contents say %#08x", got, rd.crc)}
	}
	x.finishLoad()
	return x, meta, nil
}

// decode reads the header, queues, jobs, schedules and batches, and places
// the jobs in their heaps (unordered: finishLoad orders them). On error
// rd.err is set and the index is garbage.
func (rd *ckptReader) decode(now int64) (*Index, CheckpointMeta) {
	var meta CheckpointMeta
	h := rd.next(ckptHeaderSize)
	if h == nil {
		return nil, meta
	}
	le := binary.LittleEndian
	if string(h[0:8]) != checkpointMagic {
		rd.fail("not a checkpoint (magic %q)", h[0:8])
		return nil, meta
	}
	rd.version = le.Uint32(h[8:])
	if rd.version < 1 || rd.version > CheckpointVersion {
		rd.fail("unknown version %d", rd.version)
		return nil, meta
	}
	if f := le.Uint32(h[12:]); f != 0 || rd.version == 1 && (le.Uint32(h[28:]) != 0 || le.Uint32(h[60:]) != 0) {
		rd.fail("unknown flags %#x or reserved bytes set", f)
		return nil, meta
	}
	meta.Index, meta.EntryLen = le.Uint64(h[16:]), le.Uint32(h[24:])
	meta.EntryHash, meta.First = le.Uint64(h[32:]), le.Uint64(h[40:])
	nextID := le.Uint64(h[48:])
	nq, nj, nk := uint64(le.Uint32(h[56:])), le.Uint64(h[64:]), le.Uint64(h[72:])
	ns, nb := uint64(le.Uint32(h[28:])), uint64(le.Uint32(h[60:]))
	left := uint64(rd.remaining())
	if nq > left/ckptQueueMin || nj > left/ckptJobSize || nk > nj || ns > left/ckptScheduleMin || nb > left/ckptBatchMin ||
		nq*ckptQueueMin+nj*ckptJobSize+ns*ckptScheduleMin+nb*ckptBatchMin > left {
		rd.fail("%d queues, %d jobs, %d schedules and %d batches do not fit in %d bytes", nq, nj, ns, nb, left)
		return nil, meta
	}
	if meta.Index == 0 || nextID == 0 || meta.First == 0 || meta.First > meta.Index {
		rd.fail("index %d, first %d, next ID %d", meta.Index, meta.First, nextID)
		return nil, meta
	}
	meta.Jobs = int(nj)
	x := NewSized(int(nj))
	x.now, x.nextID = now, nextID
	x.keys = make(map[string]*Job, nk)
	qs, want := rd.readQueues(x, int(nq), nj)
	if rd.err != nil {
		return nil, meta
	}
	ld := &loader{x: x, qs: qs, counts: make([]loadCounts, len(qs))}
	slabs := ld.readJobs(rd, int(nj), meta)
	for i, q := range qs {
		if rd.err == nil && q.counts != want[i] {
			rd.fail("queue %q: jobs per state %v, table says %v", q.Name, q.counts, want[i])
		}
	}
	rd.readSchedules(x, int(ns))
	rd.readBatches(x, int(nb))
	if rd.err != nil {
		return nil, meta
	}
	ld.place(slabs, want)
	return x, meta
}

// readQueues reads the queue table: n queues, holding nj jobs in all. It
// returns the queues in table order and their job counts per state.
func (rd *ckptReader) readQueues(x *Index, n int, nj uint64) ([]*Queue, [][numStates]int) {
	qs := make([]*Queue, n)
	want := make([][numStates]int, n)
	var total uint64
	for i := range qs {
		name := rd.str()
		paused := rd.u8()
		if rd.err == nil && (name == "" || paused > 1 || x.queues[name] != nil) {
			rd.fail("queue %d: name %q, paused %d", i, name, paused)
		}
		for _, st := range States() {
			n := rd.u64()
			if total += n; n > nj || total > nj {
				rd.fail("queue %q: %d %s jobs, %d jobs in all", name, n, st, nj)
			}
			want[i][st] = int(n)
		}
		if rd.err != nil {
			return nil, nil
		}
		qs[i] = x.queue(name)
		qs[i].Paused = paused == 1
	}
	if total != nj {
		rd.fail("queues count %d jobs, header %d", total, nj)
	}
	return qs, want
}

// loader places the jobs of a checkpoint. It decides each job's heap as
// the job is read (a grouped pending job once every member of its group
// has been: only a group's head is in a heap) and counts, per queue, the
// jobs each heap gets; place then allocates every heap array once, at its
// final size, and fills it. Decoding so never grows an array: growth by
// append copies the pointers again and, while a collection is marking
// (loading allocates fast enough to keep one running), each copied
// pointer costs a write barrier.
type loader struct {
	x      *Index
	qs     []*Queue
	qnum   map[*Queue]int // built on the first group head
	counts []loadCounts   // per queue, in table order
}

// loadCounts counts a queue's jobs per heap.
type loadCounts struct{ ready, side, scheduled int }

// slabSize is how many jobs a checkpoint load allocates at once: a slab
// stays allocated while any of its jobs lives, so it is kept small.
const slabSize = 4096

// readJobs reads n jobs, placing each in its table, key, state counts and
// group, and deciding its heap. It returns the slabs that hold them, in
// ID order.
func (ld *loader) readJobs(rd *ckptReader, n int, meta CheckpointMeta) [][]Job {
	// Allocate every slab before filling any: the heap then grows while
	// the slabs are still zero, so that the collections the growth
	// triggers find nothing to mark, instead of marking the jobs loaded
	// so far again at every doubling.
	slabs := make([][]Job, 0, (n+slabSize-1)/slabSize)
	for left := n; left > 0; left -= slabSize {
		slabs = append(slabs, make([]Job, min(slabSize, left)))
	}
	// The job table holds a page pointer for every 1024 IDs between the
	// lowest and the highest: bound that span before the table grows, so
	// that two far-apart IDs cannot make it allocate without limit. A
	// legitimate checkpoint past the bound (a few jobs whose IDs lie more
	// than ckptMaxSpanPages*1024 apart) is refused and replay is used.
	lo, hi, prev := uint64(math.MaxUint64), uint64(0), uint64(0)
	maxSpan := uint64(n)/16 + ckptMaxSpanPages
	for _, slab := range slabs {
		for i := range slab {
			j := &slab[i]
			qi := rd.readJob(j, ld.qs)
			if qi < 0 {
				return nil
			}
			if j.ID <= prev {
				rd.fail("job %d after job %d: IDs must increase", j.ID, prev)
				return nil
			}
			prev = j.ID
			lo, hi = min(lo, j.ID>>pageBits), max(hi, j.ID>>pageBits)
			if hi-lo > maxSpan {
				rd.fail("job %d: job IDs span more than %d pages", j.ID, maxSpan)
				return nil
			}
			if reason := ld.x.loadJob(j, meta); reason != "" {
				rd.fail("job %d: %s", j.ID, reason)
				return nil
			}
			if j.State != Pending || !j.grouped() {
				ld.x.decide(j, &ld.counts[qi])
			}
		}
	}
	return slabs
}

// readJob decodes one job into j (the inverse of ckptWriter.job) and
// returns its queue's position in qs, or -1 with rd.err set.
func (rd *ckptReader) readJob(j *Job, qs []*Queue) int {
	b := rd.next(ckptJobSize)
	if b == nil {
		return -1
	}
	le := binary.LittleEndian
	j.ID = le.Uint64(b[0:])
	qi := le.Uint32(b[8:])
	j.State = State(b[12])
	flags := b[13]
	j.Payload = Loc{Index: le.Uint64(b[16:]), Off: le.Uint32(b[24:]), Len: le.Uint32(b[28:])}
	j.RunAt = int64(le.Uint64(b[32:]))
	j.Created = int64(le.Uint64(b[40:]))
	deadline := int64(le.Uint64(b[48:]))
	j.Attempt = int32(le.Uint32(b[56:]))
	j.MaxAttempts = int32(le.Uint32(b[60:]))
	j.Priority = int32(le.Uint32(b[64:]))
	j.pos = [2]int32{-1, -1}
	known := uint8(ckptFlagKey | ckptFlagExtra)
	if rd.version >= 2 && flags&ckptFlagExtra != 0 {
		known |= ckptFlagFeatures
	}
	jflags := b[14]
	knownJob := uint8(0)
	if rd.version >= 3 {
		knownJob = FlagReleaseKeyOnDeath
	}
	if int(qi) >= len(qs) || flags&^known != 0 || jflags&^knownJob != 0 || b[15] != 0 || le.Uint32(b[68:]) != 0 {
		rd.fail("job %d: queue %d of %d, flags %#x", j.ID, qi, len(qs), flags)
		return -1
	}
	j.Queue = qs[qi]
	j.Flags = jflags
	if flags&ckptFlagKey != 0 {
		key := rd.str()
		if key == "" && rd.err == nil {
			rd.fail("job %d: empty key", j.ID)
		}
		if rd.err != nil {
			return -1
		}
		j.Queue.setKey(j, key)
	}
	if flags&ckptFlagExtra != 0 {
		j.X = rd.readExtra()
	}
	if flags&ckptFlagFeatures != 0 && rd.err == nil {
		j.X.F = &Features{Group: rd.str(), Progress: int64(rd.u64()), Note: rd.str()}
		if rd.version >= 3 {
			j.X.F.ReleasedKey = rd.str()
			if j.X.F.ReleasedKey != "" && flags&ckptFlagKey != 0 && rd.err == nil {
				rd.fail("job %d: holds a key and has released one", j.ID)
			}
		}
	}
	// After the extra part, which holds the deadline in memory.
	j.setDeadline(deadline)
	if rd.err != nil {
		return -1
	}
	return int(qi)
}

func (rd *ckptReader) readExtra() *Extra {
	e := &Extra{}
	e.BackoffBase, e.BackoffCap = int64(rd.u64()), int64(rd.u64())
	e.Timeout, e.Finished = int64(rd.u64()), int64(rd.u64())
	e.Leases, e.Dropped = int32(rd.u32()), int32(rd.u32())
	e.Result = Loc{Index: rd.u64(), Off: rd.u32(), Len: rd.u32()}
	hr := rd.u8()
	e.HasResult = hr == 1
	e.Error = rd.str()
	n := rd.u32()
	if rd.err != nil {
		return nil
	}
	if hr > 1 || n > ckptMaxHistory || int64(n) > rd.remaining()/ckptAttemptSize {
		rd.fail("has-result %d, history of %d with %d bytes left", hr, n, rd.remaining())
		return nil
	}
	if n > 0 {
		e.History = make([]wlog.Attempt, n)
	}
	for i := range e.History {
		a := &e.History[i]
		a.Started, a.Ended = int64(rd.u64()), int64(rd.u64())
		a.Number, a.Lease = int32(rd.u32()), int32(rd.u32())
		a.Outcome = wlog.Kind(rd.u8())
		a.Error = rd.str()
	}
	return e
}

// readSchedules reads n schedules, in increasing name order.
func (rd *ckptReader) readSchedules(x *Index, n int) {
	prev := ""
	for i := 0; i < n && rd.err == nil; i++ {
		s := &Schedule{Name: rd.str(), Spec: rd.str(), Missed: rd.u8(), Anchor: int64(rd.u64()), LastRun: int64(rd.u64())}
		var nums [5]int64
		s.Queue, s.Payload, s.Group, nums = rd.template()
		s.Priority, s.MaxAttempts, s.BackoffBase, s.BackoffCap, s.Timeout = nums[0], nums[1], nums[2], nums[3], nums[4]
		if rd.err != nil {
			return
		}
		if s.Name <= prev || s.Spec == "" || s.Queue == "" {
			rd.fail("schedule %q after %q, spec %q, queue %q", s.Name, prev, s.Spec, s.Queue)
			return
		}
		prev = s.Name
		if x.schedules == nil {
			x.schedules = make(map[string]*Schedule, n)
		}
		x.schedules[s.Name] = s
		x.liveBytes += s.bytes()
	}
}

// readBatches reads n batches, in increasing order of their first job.
func (rd *ckptReader) readBatches(x *Index, n int) {
	prev := uint64(0)
	for i := 0; i < n && rd.err == nil; i++ {
		b := &Batch{First: rd.u64()}
		count := rd.u64()
		var nums [5]int64
		b.Queue, b.Payload, b.Group, nums = rd.template()
		b.Priority, b.MaxAttempts, b.BackoffBase, b.BackoffCap, b.Timeout = nums[0], nums[1], nums[2], nums[3], nums[4]
		if rd.err != nil {
			return
		}
		if b.First <= prev || count < 1 || count > math.MaxInt32 || b.Queue == "" {
			rd.fail("batch at job %d after %d: %d jobs, callback queue %q", b.First, prev, count, b.Queue)
			return
		}
		prev, b.Count = b.First, int(count)
		if x.batches == nil {
			x.batches = make(map[uint64]*Batch, n)
		}
		x.batches[b.First] = b
		x.liveBytes += int64(len(b.Payload)) + jobOverhead
	}
}

// template reads a job template (the inverse of ckptWriter.template).
func (rd *ckptReader) template() (queue string, payload []byte, group string, nums [5]int64) {
	queue = rd.str()
	n := rd.u32()
	if rd.err == nil && int64(n) > rd.remaining() {
		rd.fail("payload of %d bytes, %d left", n, rd.remaining())
	}
	if rd.err != nil {
		return
	}
	payload = make([]byte, n)
	if n > 0 {
		copy(payload, rd.next(int(n)))
	}
	for i := range nums {
		nums[i] = int64(rd.u64())
	}
	group = rd.str()
	return
}

// loadJob adds a decoded job to the index without placing it in a heap,
// or says why it cannot. Its payload and result must lie in the log the
// checkpoint describes: entries meta.First to meta.Index. A grouped
// pending or leased job joins its group; jobs arrive in ID order, which
// is the members' order.
func (x *Index) loadJob(j *Job, meta CheckpointMeta) string {
	inLog := func(l Loc) bool {
		return l.Index == 0 || l.Index >= meta.First && l.Index <= meta.Index
	}
	switch {
	case !inLog(j.Payload):
		return fmt.Sprintf("payload at entry %d, outside the checkpoint's log [%d, %d]", j.Payload.Index, meta.First, meta.Index)
	case j.X != nil && !inLog(j.X.Result):
		return fmt.Sprintf("result at entry %d, outside the checkpoint's log [%d, %d]", j.X.Result.Index, meta.First, meta.Index)
	case j.ID == 0 || j.ID >= x.nextID:
		return fmt.Sprintf("ID outside [1, %d)", x.nextID)
	case !j.State.Valid():
		return fmt.Sprintf("invalid state %d", j.State)
	case j.Attempt < 0:
		return fmt.Sprintf("negative attempt %d", j.Attempt)
	}
	key := j.Key()
	if other := x.keys[key]; key != "" && other != nil {
		return fmt.Sprintf("key %q already belongs to job %d", key, other.ID)
	}
	x.jobs.set(j)
	if key != "" {
		x.keys[key] = j
	}
	x.liveBytes += j.bytes()
	q := j.Queue
	q.counts[j.State]++
	if j.State == Dead {
		q.dead[j.ID] = j
	}
	if j.grouped() && member(j.State) {
		g := x.groupNamed(j.X.F.Group)
		g.members = append(g.members, j)
		if j.State == Leased {
			g.leased++
		}
	}
	return ""
}

// decide chooses the heap j goes to, as schedule would place it (toReady
// for a ready job), and counts it in c, its queue's counts. It must see
// a queue's ready jobs in the order place adds them.
func (x *Index) decide(j *Job, c *loadCounts) {
	switch j.State {
	case Pending:
		if j.RunAt > x.now {
			j.where = inScheduled
			c.scheduled++
			return
		}
		// As plainFor, with c.ready standing for the ready heap's length.
		q := j.Queue
		if c.ready == 0 {
			q.plain = j.Priority
		}
		if j.Priority == q.plain && j.Created <= j.RunAt {
			j.where = inReady
			c.ready++
		} else {
			j.where = inReadySide
			c.side++
		}
		x.readyMax = max(x.readyMax, j.RunAt)
	case Leased:
		j.where = inLeased
	case Completed, Cancelled:
		j.where = inFinished
	}
}

// place chooses each group's head (its first member while none is
// leased; every other pending member stays parked, in no heap), then
// allocates every heap array at its final size and adds each job to the
// heaps decided for it. want holds each queue's jobs per state.
func (ld *loader) place(slabs [][]Job, want [][numStates]int) {
	x := ld.x
	for _, g := range x.groups {
		if g.leased > 0 {
			continue
		}
		g.head = g.members[0]
		if g.head.State == Pending {
			if ld.qnum == nil {
				ld.qnum = make(map[*Queue]int, len(ld.qs))
				for i, q := range ld.qs {
					ld.qnum[q] = i
				}
			}
			x.decide(g.head, &ld.counts[ld.qnum[g.head.Queue]])
		}
	}
	var leased, finished int
	for i, q := range ld.qs {
		c := ld.counts[i]
		q.ready.jobs = make([]*Job, 0, c.ready)
		q.side.jobs = make([]*Job, 0, c.side)
		q.ages.jobs = make([]*Job, 0, c.side)
		q.scheduled.jobs = make([]*Job, 0, c.scheduled)
		leased += want[i][Leased]
		finished += want[i][Completed] + want[i][Cancelled]
	}
	x.leased.jobs = make([]*Job, 0, leased)
	x.finished.jobs = make([]*Job, 0, finished)
	for _, slab := range slabs {
		for i := range slab {
			j := &slab[i]
			switch q := j.Queue; j.where {
			case inReady:
				q.ready.add(j)
			case inReadySide:
				q.side.add(j)
				q.ages.add(j)
			case inScheduled:
				q.scheduled.add(j)
			case inLeased:
				x.leased.add(j)
			case inFinished:
				x.finished.add(j)
			}
		}
	}
}

// finishLoad orders every heap in O(n) and builds the due heap.
func (x *Index) finishLoad() {
	x.leased.heapify()
	x.finished.heapify()
	for _, q := range x.queues {
		q.ready.heapify()
		q.side.heapify()
		q.ages.heapify()
		q.scheduled.heapify()
		x.due.update(q)
	}
}

// add appends j to the heap's array without ordering it (heapify does).
func (h *jobHeap) add(j *Job) {
	j.pos[h.slot] = int32(len(h.jobs))
	h.jobs = append(h.jobs, j)
}

// heapify orders a heap whose jobs were added unordered, in O(n).
func (h *jobHeap) heapify() {
	for i := len(h.jobs)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// Locs calls fn with every payload and result location the index holds,
// until fn returns false.
func (x *Index) Locs(fn func(id uint64, l Loc) bool) {
	x.jobs.each(func(j *Job) bool {
		if j.Payload.Index != 0 && !fn(j.ID, j.Payload) {
			return false
		}
		if j.X != nil && j.X.Result.Index != 0 && !fn(j.ID, j.X.Result) {
			return false
		}
		return true
	})
}

// Digest writes a canonical form of the index's state to w: the same
// encoding as a checkpoint, with a zero header position. Two indexes with the same jobs, keys, queues and next ID have the
// same digest, whatever order their records were applied in. It is for
// tests and `walq check`.
func (x *Index) Digest(w io.Writer) error {
	_, err := x.writeCheckpoint(w, CheckpointMeta{}, x.checkpointOrder())
	return err
}

var crc64Table = crc64.MakeTable(crc64.ECMA)

func crc64Sum(b []byte) uint64 { return crc64.Checksum(b, crc64Table) }
