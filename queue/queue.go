package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

// DefaultQueue is the queue name used when NewJob.Queue is empty.
const DefaultQueue = "default"

// Queue is a durable job queue in one directory, holding any number of
// named queues. It is safe for concurrent use by any number of goroutines.
//
// Every change is one log entry appended (and, in Sync mode, fsynced)
// before the call returns, and becomes visible to other callers only once
// it is durable. Changes are validated and reserved in memory in order
// under one mutex; the wait for durability happens outside it, so
// concurrent calls share fsyncs.
type Queue struct {
	dir    string
	opts   Options
	log    *wlog.Log
	report RecoveryReport
	forget func()         // ends the record that this process has dir open
	faults fault.Injector // a test's fault injector, nil otherwise (see inject)

	mu   sync.Mutex
	cond *sync.Cond // broadcast whenever a reservation ends
	idx  *index.Index
	keys map[string]bool // idempotency keys with an enqueue in flight
	// inflight counts, by log index, the entries submitted and not yet
	// applied or failed (an index appears once; the count guards reuse).
	inflight map[uint64]int
	nextID   uint64        // the next job ID to hand out
	wake     chan struct{} // closed (and replaced) when jobs may have become ready
	waiters  map[uint64][]chan struct{}
	broken   error // a record failed to apply on the live path: stop
	subs     map[*Subscription]struct{}
	metrics  metrics
	closed   bool
	done     chan struct{} // closed by Close
	ops      sync.WaitGroup
	ctlMu    sync.Mutex // serialises pause and resume

	lastRecover time.Time

	compactMu   sync.Mutex    // one compaction at a time
	compactCh   chan struct{} // asks the background compactor to run
	lastCompact CompactStats
	// compactFailures counts failed compactions since Open; compactErr and
	// compactErrAt describe the last one.
	compactFailures int
	compactErr      error
	compactErrAt    time.Time
	segsBefore      []uint64     // segment firsts at the last compactCut; under compactMu
	readGate        sync.RWMutex // held for reading while a payload location is read; truncation takes it
	bg              sync.WaitGroup
	// queueNames is commit's scratch for queueOf, under q.mu: reused so
	// that a batch's apply allocates no slice of names.
	queueNames []string

	// enqueue is Options.EnqueueMiddleware around enqueueBatch; nil
	// without middleware.
	enqueue EnqueueFunc

	// ckptHold holds new calls back (in begin) while a checkpoint waits
	// for the entries in flight to be applied and reads the index;
	// ckptRecords is idx.Records() as of the last checkpoint;
	// ckptPending is set when compaction's checkpoint found entries in
	// flight and left it to the background. Under q.mu.
	ckptHold    bool
	ckptRecords int
	ckptPending bool
	periodic    periodic             // periodic schedules' in-memory state (periodic.go)
	limits      map[string]*limiter  // rate limits by queue name (ratelimit.go); under mu
	breakers    map[string]*breaker  // circuit breakers by queue name (breaker.go); under mu
	batches     map[uint64]*batchRun // batches not yet ended, by first job (batch.go); under mu
	brkTrace    *[]brkStep           // set by tests only: see traceBreaker
}

// Open opens the queue in dir, creating the directory if needed, and
// recovers its state: the log's torn tail is repaired, every record is
// replayed, and leases held by the previous process are voided (each counts
// as an attempt; see DESIGN.md, "Poison pills"). nil opts gives the
// defaults.
func Open(dir string, opts *Options) (*Queue, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, &subError{msg: "walq: open " + dir + ": not a directory", parent: ErrNotQueue}
	}
	forget := func() {}
	if !o.ReadOnly {
		forget = addWriter(dir)
	}
	l, x, rep, err := recovery.Open(dir, &recovery.Options{
		Log: wlog.Options{
			Durability:   o.Durability.logDurability(),
			SyncInterval: o.SyncInterval,
			SegmentSize:  o.SegmentSize,
			ReadOnly:     o.ReadOnly,
			Logger:       o.Logger,
			MaxEntrySize: max(64<<20, 2*o.MaxPayload+(1<<20)),
		},
		Now: o.Clock.Now(),
	})
	if err != nil {
		forget()
		return nil, openError(dir, err)
	}
	q := &Queue{
		dir:      dir,
		opts:     o,
		log:      l,
		report:   newReport(rep, x),
		faults:   fault.Lookup(dir),
		idx:      x,
		forget:   forget,
		nextID:   x.NextID(),
		keys:     make(map[string]bool),
		inflight: make(map[uint64]int),
		wake:     make(chan struct{}),
		waiters:  make(map[uint64][]chan struct{}),
		done:     make(chan struct{}),
		subs:     make(map[*Subscription]struct{}),
		metrics:  make(metrics),

		compactCh: make(chan struct{}, 1),
	}
	q.cond = sync.NewCond(&q.mu)
	q.enqueue = chainEnqueue(o.EnqueueMiddleware, q.enqueueBatch)
	q.restoreLimiters()
	q.restoreBreakers()
	q.restoreBatches()
	q.startPeriodic()
	if !o.ReadOnly && o.CompactRatio >= 0 && q.inject(fault.Op{Kind: fault.Background}) == nil {
		q.sweepAtOpen()
		q.bg.Add(1)
		go q.maintain()
	}
	return q, nil
}

// Options returns the options in force, defaults applied.
func (q *Queue) Options() Options { return q.opts }

// Dir returns the queue's directory.
func (q *Queue) Dir() string { return q.dir }

// Close stops the queue: calls already in progress finish (blocked Lease and
// Wait calls return ErrClosed); if much was applied since the last index
// checkpoint, a new one is written (so that the next Open replays little;
// about 72 bytes per job); then the log is flushed and closed and the
// directory lock released. Leased jobs stay leased on disk; the next Open
// voids those leases. Calling Close again returns nil; every other call
// returns ErrClosed afterwards.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.done)
	q.cond.Broadcast()
	for s := range q.subs {
		s.closeLocked()
	}
	q.mu.Unlock()
	q.ops.Wait()
	q.bg.Wait()
	if !q.opts.ReadOnly {
		q.mu.Lock()
		due := q.broken == nil && q.checkpointDueAtClose()
		q.mu.Unlock()
		if due {
			// Nothing is in flight any more: the checkpoint saves the
			// next Open the replay of what this process wrote.
			q.checkpointQuietly("close", true)
		}
	}
	err := q.log.Close()
	q.forget()
	return fromLower("close", err)
}

// enter registers a call in progress, failing once the queue is closed.
// Callers hold q.mu.
func (q *Queue) enterLocked() error {
	if q.closed {
		return ErrClosed
	}
	if q.broken != nil {
		return q.broken
	}
	q.ops.Add(1)
	return nil
}

// begin locks the queue and registers a call; end undoes both.
func (q *Queue) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	for q.ckptHold && !q.closed {
		q.cond.Wait() // a checkpoint is reading the index (see writeCheckpoint)
	}
	if err := q.enterLocked(); err != nil {
		q.mu.Unlock()
		return err
	}
	return nil
}

func (q *Queue) end() {
	q.mu.Unlock()
	q.ops.Done()
}

// beginRead is begin for calls that report state: on a writable queue it
// first records the expiry of leases whose deadline has passed, so that what
// is reported is what the clock says.
func (q *Queue) beginRead(ctx context.Context) error {
	if err := q.begin(ctx); err != nil {
		return err
	}
	if q.opts.ReadOnly {
		return nil
	}
	if err := q.reapLocked(q.now()); err != nil {
		q.end()
		return err
	}
	return nil
}

// beginWrite is begin for calls that change the queue.
func (q *Queue) beginWrite(ctx context.Context) error {
	if q.opts.ReadOnly {
		return ErrReadOnly
	}
	return q.begin(ctx)
}

func (q *Queue) now() int64 { return q.opts.Clock.Now().UnixNano() }

// commit appends recs as one log entry and applies them once durable. The
// caller holds q.mu and has reserved the jobs in busy (their reservations
// end here, whatever happens). commit releases q.mu while it waits for
// durability and holds it again when it returns.
func (q *Queue) commit(recs []wlog.Record, busy []*index.Job) error {
	defer q.unreserve(busy)
	q.recoverLog()
	recs, undo := q.batchesSaw(recs)
	p, err := q.log.Submit(recs)
	if err != nil {
		undo()
		return q.logErr(err)
	}
	q.breakersSaw(recs)
	// Until the entry is applied, compaction must not cut the log at or
	// past it: its records are in no job of the index for a carry to
	// restate (see compactCut).
	q.inflight[p.Index()]++
	q.mu.Unlock()
	err = p.Wait()
	q.inject(fault.Op{Kind: fault.Apply, First: p.Index(), Last: p.Index()})
	q.mu.Lock()
	if q.inflight[p.Index()]--; q.inflight[p.Index()] == 0 {
		delete(q.inflight, p.Index())
	}
	if err != nil {
		undo()
		return q.logErr(err)
	}
	queues := q.queueOf(recs)
	defer q.dropQueueNames(queues)
	for i := range recs {
		if err := q.idx.Apply(&recs[i], index.Pos{Index: p.Index(), Slot: i}); err != nil {
			// The log holds a record the index refuses: a bug. Stop
			// rather than let memory and disk disagree.
			q.broken = fromLower("internal error, queue stopped (reopen to recover)", err)
			q.opts.Logger.Error("walq: record failed to apply", "err", err)
			return q.broken
		}
	}
	q.notify(recs)
	q.observe(recs, queues)
	q.batchesEnded(recs)
	if q.compactDue() || q.checkpointDue() {
		select {
		case q.compactCh <- struct{}{}:
		default:
		}
	}
	return nil
}

// wakeLeasers wakes every Lease call sleeping for work. The caller holds
// q.mu.
func (q *Queue) wakeLeasers() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// minInflight returns the lowest log index of an entry submitted and not yet
// applied (or failed), and false if there is none. The caller holds q.mu.
func (q *Queue) minInflight() (uint64, bool) {
	var low uint64
	for i := range q.inflight {
		if low == 0 || i < low {
			low = i
		}
	}
	return low, low != 0
}

func (q *Queue) logErr(err error) error {
	if errors.Is(err, wlog.ErrClosed) {
		return ErrClosed
	}
	return fromLower("", err)
}

// recoverLog tries, at most once a second of the queue's clock, to bring a
// failed log back (for example once a full disk has space again).
func (q *Queue) recoverLog() {
	if q.log.Failed() == nil {
		return
	}
	now := q.opts.Clock.Now()
	if now.Sub(q.lastRecover) < time.Second {
		return
	}
	q.lastRecover = now
	if err := q.log.Recover(); err != nil {
		q.opts.Logger.Warn("walq: log recovery failed; will retry", "err", err)
	}
}

// notify wakes blocked leasers and Wait callers after recs were applied.
func (q *Queue) notify(recs []wlog.Record) {
	wake := false
	for i := range recs {
		switch recs[i].Kind {
		case wlog.KindEnqueued, wlog.KindFailed, wlog.KindExpired, wlog.KindReleased,
			wlog.KindRequeued, wlog.KindResumed, wlog.KindCarry:
			wake = true
		}
		switch recs[i].Kind {
		case wlog.KindCompleted, wlog.KindDead, wlog.KindCancelled, wlog.KindPurged:
			if j := q.idx.Job(recs[i].Job); j != nil && j.Group() != "" {
				wake = true // the group's next job may be ready now
			}
			for _, ch := range q.waiters[recs[i].Job] {
				close(ch)
			}
			delete(q.waiters, recs[i].Job)
		}
	}
	if wake {
		q.wakeLeasers()
	}
}

// gateRead takes readGate for reading, for a caller that holds q.mu and has
// copied payload or result locations out of the index. It never blocks on
// readGate while holding q.mu: a truncation takes readGate for writing, and
// Go's RWMutex holds new readers back while a writer waits, so a reader
// blocking there with q.mu held would stall every call of the queue until
// the truncation ends. When readGate is not free at once, gateRead releases
// q.mu, waits for the truncation to finish, takes q.mu again and returns
// false without readGate: the locations the caller copied may name a
// segment that is gone now (a carry restated the job, in a new *index.Job,
// before the truncation), so it must look its jobs up again and call
// gateRead again. On true the caller holds readGate for reading and q.mu,
// and releases readGate through readLocs, readPayloads or readJob.
func (q *Queue) gateRead() bool {
	if q.readGate.TryRLock() {
		return true
	}
	q.inject(fault.Op{Kind: fault.Wait})
	q.mu.Unlock()
	q.readGate.RLock()
	q.readGate.RUnlock()
	q.mu.Lock()
	return false
}

// readLocs copies bytes stored in the log at each location. The caller
// holds q.mu and readGate (see gateRead); q.mu is released during the
// reads and held again on return, readGate is released.
func (q *Queue) readLocs(locs ...index.Loc) ([][]byte, error) {
	q.mu.Unlock()
	defer func() {
		q.readGate.RUnlock()
		q.mu.Lock()
	}()
	out := make([][]byte, len(locs))
	for i, l := range locs {
		var err error
		if out[i], err = q.readLoc(l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readLoc copies bytes stored in the log. Callers hold readGate.
func (q *Queue) readLoc(l index.Loc) ([]byte, error) {
	if l.Index == 0 {
		return nil, nil
	}
	data, err := q.log.Read(l.Index)
	if err != nil {
		return nil, fromLower("read payload", err)
	}
	end := int(l.Off) + int(l.Len)
	if end > len(data) {
		return nil, &CorruptError{Offset: -1, Index: l.Index, Record: -1,
			Reason: fmt.Sprintf("payload at offset %d of the entry runs past its end", l.Off)}
	}
	return append(make([]byte, 0, l.Len), data[l.Off:end]...), nil
}

// waitBusy waits (releasing q.mu) until no operation is in flight on the job
// with the given ID, and returns the job as it then is (nil if gone).
func (q *Queue) waitBusy(id uint64) *index.Job {
	for {
		j := q.idx.Job(id)
		if j == nil || !j.Busy {
			return j
		}
		q.cond.Wait()
	}
}

// addDuration returns now+d in Unix nanoseconds, saturating at the largest
// time instead of wrapping into the past: a delay or backoff of a century
// must not make a job due at once.
func addDuration(now int64, d time.Duration) int64 {
	if d > 0 && now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return now + int64(d)
}
