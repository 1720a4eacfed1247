package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/index"
)

// Regression tests for the races between compaction, retention, key reuse
// and entries in flight (issue 12). Each holds one entry after it is
// durable and before it is applied (the apply hook), runs the competing
// operation, then lets the entry go and checks the live queue, a reopen and
// the invariants.

// applyGate holds the next entry applied after arm until release.
type applyGate struct {
	mu      sync.Mutex
	armed   bool
	held    chan uint64
	release chan struct{}
}

func newApplyGate() *applyGate {
	return &applyGate{held: make(chan uint64, 1), release: make(chan struct{})}
}

func (g *applyGate) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

func (g *applyGate) hook(index uint64) {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if !armed {
		return
	}
	g.held <- index
	<-g.release
}

// async runs f in a goroutine and returns a channel with its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// reopenT closes q and opens its directory again with opts and the same
// hooks, less the apply hook.
func reopenT(t *testing.T, q *Queue, opts *Options) *Queue {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if h, ok := q.faults.(*hooks); ok {
		c := *h
		c.apply = nil
		inject(t, q.Dir(), &c)
	}
	return openTest(t, q.Dir(), opts)
}

// Bug 1: the group that fills a segment makes the log start the next one
// before its entries are applied. Compaction cut at the new segment and
// removed the only record of an acknowledged enqueue.
func TestCompactKeepsInFlightEnqueue(t *testing.T) {
	ctx := context.Background()
	g := newApplyGate()
	opts := &Options{SegmentSize: 4 << 10, CompactRatio: -1}
	dir := t.TempDir()
	inject(t, dir, &hooks{apply: g.hook})
	q := openTest(t, dir, opts)
	var ids []uint64
	for i := range 12 {
		ids = append(ids, enqueueT(t, q, NewJob{Payload: bytes.Repeat([]byte{byte(i)}, 1000)}))
	}
	// An entry as large as a segment: the log starts a new segment right
	// after it, while it is still in flight.
	big := bytes.Repeat([]byte("B"), 4<<10)
	g.arm()
	var res Enqueued
	done := async(func() (err error) {
		res, err = q.Enqueue(ctx, NewJob{Payload: big})
		return err
	})
	idx := <-g.held
	if got := q.log.SegmentFirsts(); got[len(got)-1] <= idx {
		t.Fatalf("setup: segment firsts %v, want a segment starting after the held entry %d", got, idx)
	}
	if _, err := q.Compact(ctx); err != nil {
		t.Fatalf("Compact with an enqueue in flight: %v", err)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	ids = append(ids, res.ID)
	check := func(q *Queue) {
		t.Helper()
		for _, id := range ids {
			getT(t, q, id)
		}
		if j := getT(t, q, res.ID); !bytes.Equal(j.Payload, big) {
			t.Fatalf("job %d payload: %d bytes, want %d", res.ID, len(j.Payload), len(big))
		}
	}
	check(q)
	q = reopenT(t, q, opts)
	check(q)
}

// Bug 2: reusing a key past its retention purges the old job in the same
// entry; the old job was not reserved, so the compaction sweep (or a carry)
// could act on it while that entry was in flight.
func TestKeyReuseReservesOldJob(t *testing.T) {
	for _, step := range []string{"sweep", "carry"} {
		t.Run("competitor="+step, func(t *testing.T) {
			ctx := context.Background()
			g := newApplyGate()
			opts := &Options{KeyRetention: time.Hour, CompactRatio: -1}
			h := &hooks{apply: g.hook}
			if step == "carry" {
				opts.SegmentSize = 4 << 10
				// Release the key's new entry when the carry of the
				// first chunk is about to be written.
				var once sync.Once
				h.compact = func(s string) error {
					if s == "carry" {
						once.Do(func() { close(g.release) })
					}
					return nil
				}
			}
			dir := t.TempDir()
			inject(t, dir, h)
			q := openTest(t, dir, opts)
			old := enqueueT(t, q, NewJob{Key: "k"})
			l := leaseT(t, q, "")
			if err := q.Complete(ctx, l.Token, nil); err != nil {
				t.Fatal(err)
			}
			if step == "carry" {
				for range 12 { // push the old job out of the tail segment
					enqueueT(t, q, NewJob{Payload: make([]byte, 1000)})
				}
			}
			mockOf(t, q).Add(2 * time.Hour)
			g.arm()
			var res Enqueued
			done := async(func() (err error) {
				res, err = q.Enqueue(ctx, NewJob{Key: "k", Payload: []byte("new")})
				return err
			})
			<-g.held
			compacted := async(func() error { _, err := q.Compact(ctx); return err })
			if step == "sweep" {
				// The sweep must leave the reserved job alone and
				// not wait for it (one segment: nothing to carry).
				if err := <-compacted; err != nil {
					t.Fatalf("Compact: %v", err)
				}
				close(g.release)
			}
			if err := <-done; err != nil {
				t.Fatalf("Enqueue reusing the key: %v", err)
			}
			if step == "carry" {
				if err := <-compacted; err != nil {
					t.Fatalf("Compact: %v", err)
				}
			}
			if res.Duplicate || res.ID == old {
				t.Fatalf("Enqueue past retention = %+v, want a new job", res)
			}
			check := func(q *Queue) {
				t.Helper()
				if _, err := q.Get(ctx, old); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(old job %d) = %v, want ErrNotFound", old, err)
				}
				if j := getT(t, q, res.ID); j.Key != "k" || string(j.Payload) != "new" {
					t.Fatalf("new job = key %q payload %q", j.Key, j.Payload)
				}
			}
			check(q)
			q = reopenT(t, q, opts)
			check(q)
		})
	}
}

// Bug 4: compaction's checkpoint restated paused queues from the index
// while a Resume was durable but not applied, so the checkpoint's pause
// landed after the resume.
func TestCheckpointKeepsConcurrentResume(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		g := newApplyGate()
		var once sync.Once
		opts := &Options{SegmentSize: 4 << 10, CompactRatio: -1}
		dir := t.TempDir()
		inject(t, dir, &hooks{apply: g.hook, compact: func(s string) error {
			if s == "checkpoint" {
				once.Do(func() { close(g.release) })
			}
			return nil
		}})
		q := openTest(t, dir, opts)
		if err := q.Pause(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		for range 12 {
			enqueueT(t, q, NewJob{Queue: "q", Payload: make([]byte, 1000)})
		}
		g.arm()
		resumed := async(func() error { return q.Resume(ctx, "q") })
		<-g.held
		if _, err := q.Compact(ctx); err != nil {
			t.Fatalf("round %d: Compact: %v", round, err)
		}
		if err := <-resumed; err != nil {
			t.Fatalf("round %d: Resume: %v", round, err)
		}
		for reopen := range 2 {
			if reopen == 1 {
				q = reopenT(t, q, opts)
			}
			st, err := q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Queues["q"].Paused {
				t.Fatalf("round %d (reopened: %d): queue paused after an acknowledged Resume", round, reopen)
			}
		}
	}
}

// Bug 6: compaction carried 256 jobs per entry whatever their size, so
// large payloads made an entry over the log's limit on every attempt.
func TestCompactChunksByBytes(t *testing.T) {
	ctx := context.Background()
	opts := &Options{SegmentSize: 1 << 20, CompactRatio: -1, MaxPayload: 1 << 20}
	q := openTest(t, t.TempDir(), opts)
	payload := bytes.Repeat([]byte("p"), 300<<10)
	var jobs []NewJob
	for range 256 {
		jobs = append(jobs, NewJob{Payload: payload})
	}
	// 256 jobs of 300 KiB: 75 MiB of live data, over the 64 MiB entry limit.
	for i := 0; i < len(jobs); i += 16 {
		if _, err := q.EnqueueBatch(ctx, jobs[i:i+16]); err != nil {
			t.Fatal(err)
		}
	}
	enqueueT(t, q, NewJob{Payload: make([]byte, 1<<20)}) // start a new tail segment
	st, err := q.Compact(ctx)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if st.Carried < 256 || st.SegmentsRemoved == 0 {
		t.Fatalf("Compact = %+v, want every job carried and segments removed", st)
	}
}

// The sweep chose expired jobs, then purged them in a second step; a job
// that changed state in between (a requeue of a dead job) failed the whole
// compaction with ErrState. Now the choice and the reservation are one step.
func TestSweepToleratesConcurrentChanges(t *testing.T) {
	ctx := context.Background()
	opts := &Options{CompactRatio: -1, DeadMaxAge: time.Minute, MaxAttempts: 1}
	q := openTest(t, t.TempDir(), opts)
	var dead []uint64
	for range 50 {
		dead = append(dead, enqueueT(t, q, NewJob{}))
		l := leaseT(t, q, "")
		if err := q.Fail(ctx, l.Token, Permanent(errors.New("boom"))); err != nil {
			t.Fatal(err)
		}
	}
	mockOf(t, q).Add(2 * time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, len(dead)+1)
	for _, id := range dead {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Either wins: the requeue (the job lives) or the purge.
			if err := q.Requeue(ctx, []uint64{id}, RequeueOptions{}); err != nil && !errors.Is(err, ErrNotFound) {
				errs <- fmt.Errorf("Requeue(%d): %w", id, err)
			}
		}()
	}
	if _, err := q.Compact(ctx); err != nil {
		errs <- fmt.Errorf("Compact: %w", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A failed commit gives its reserved jobs back; a Lease blocked while the
// job was reserved must be woken to take it.
func TestFailedCommitWakesLease(t *testing.T) {
	ctx := context.Background()
	g := newApplyGate()
	var failing atomic.Bool
	opts := &Options{CompactRatio: -1}
	dir := t.TempDir()
	inject(t, dir, &hooks{apply: g.hook, write: func(first, last uint64) error {
		if failing.CompareAndSwap(true, false) {
			return errors.New("injected write failure")
		}
		return nil
	}})
	q := openTest(t, dir, opts)
	id := enqueueT(t, q, NewJob{Queue: "w"})
	// Lease the job with an entry that fails, and hold the failure while
	// a second leaser finds nothing ready and goes to sleep.
	failing.Store(true)
	g.arm()
	first := async(func() error { _, err := q.TryLease(ctx, "w"); return err })
	<-g.held
	ls, wake, _, err := q.tryLease(ctx, "w", 1)
	if err != nil || len(ls) != 0 {
		t.Fatalf("tryLease while the job is reserved = %d leases, %v", len(ls), err)
	}
	close(g.release)
	if err := <-first; err == nil {
		t.Fatal("TryLease with a failing write succeeded")
	}
	receive(t, wake, "the wake-up of a leaser after a failed commit gave its job back")
	mockOf(t, q).Add(2 * time.Second) // lets the queue recover its log
	if l := leaseT(t, q, "w"); l.Job.ID != id {
		t.Fatalf("leased job %d, want %d", l.Job.ID, id)
	}
}

// Delays, backoffs and extensions saturate instead of wrapping into the
// past: a job delayed by the largest duration is never due.
func TestDurationOverflow(t *testing.T) {
	ctx := context.Background()
	q := openTest(t, t.TempDir(), &Options{CompactRatio: -1})
	enqueueT(t, q, NewJob{Queue: "d", Delay: time.Duration(math.MaxInt64)})
	noLease(t, q, "d")
	enqueueT(t, q, NewJob{Queue: "r"})
	l := leaseT(t, q, "r")
	if err := q.Fail(ctx, l.Token, RetryAfter(time.Duration(math.MaxInt64), errors.New("later"))); err != nil {
		t.Fatal(err)
	}
	mockOf(t, q).Add(1000 * time.Hour)
	noLease(t, q, "r")
	enqueueT(t, q, NewJob{Queue: "e"})
	l = leaseT(t, q, "e")
	dl, err := q.Extend(ctx, l.Token, time.Duration(math.MaxInt64))
	if err != nil {
		t.Fatal(err)
	}
	if !dl.After(mockOf(t, q).Now()) {
		t.Fatalf("Extend by the largest duration gave deadline %v, before now", dl)
	}
}

// Bug 9: an enqueue of a key past its retention was answered "duplicate"
// while the old job had an unrelated operation in flight (a carry), and the
// producer's job was silently not created.
func TestKeyReuseWaitsForBusyOldJob(t *testing.T) {
	ctx := context.Background()
	// The wait hook tells when the enqueue below waits.
	waiting := make(chan struct{}, 1)
	dir := t.TempDir()
	inject(t, dir, &hooks{wait: func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}})
	q := openTest(t, dir, &Options{KeyRetention: time.Hour, CompactRatio: -1})
	old := enqueueT(t, q, NewJob{Key: "k"})
	l := leaseT(t, q, "")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	mockOf(t, q).Add(2 * time.Hour)
	// Reserve the old job as a carry would, enqueue the key, then end the
	// reservation: the enqueue must wait for it and reuse the key.
	q.mu.Lock()
	j := q.idx.Job(old)
	q.idx.Reserve(j)
	q.mu.Unlock()
	got := async(func() error {
		r, err := q.Enqueue(ctx, NewJob{Key: "k"})
		if err == nil && (r.Duplicate || r.ID == old) {
			err = fmt.Errorf("Enqueue = %+v, want a new job", r)
		}
		return err
	})
	select {
	case err := <-got:
		t.Fatalf("Enqueue returned while the key's job was reserved: %v", err)
	case <-waiting:
	}
	q.mu.Lock()
	q.unreserve([]*index.Job{j})
	q.mu.Unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// Idle maintenance passes must not restate an unchanged live set: with
// live data over one segment, each used to carry every job again.
func TestIdleMaintenanceWritesNothing(t *testing.T) {
	ctx := context.Background()
	q := openTest(t, noBackgroundDir(t), &Options{SegmentSize: 4 << 10})
	for range 30 {
		enqueueT(t, q, NewJob{Payload: make([]byte, 500)})
	}
	if _, err := q.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	size := q.log.Size()
	last := q.log.LastIndex()
	for range 5 {
		if err := q.maintainOnce(); err != nil {
			t.Fatal(err)
		}
	}
	if q.log.LastIndex() != last || q.log.Size() != size {
		t.Fatalf("5 idle maintenance passes wrote entries %d..%d (%d -> %d bytes)", last+1, q.log.LastIndex(), size, q.log.Size())
	}
}

// A failing compaction is visible in Stats, to the writer and to a
// read-only reader (walq stats), until one succeeds again.
func TestCompactionFailuresInStats(t *testing.T) {
	ctx := context.Background()
	var fail atomic.Bool
	opts := &Options{SegmentSize: 4 << 10, CompactRatio: -1}
	dir := t.TempDir()
	inject(t, dir, &hooks{compact: func(step string) error {
		if fail.Load() && step == "checkpoint" {
			return errors.New("injected compaction failure")
		}
		return nil
	}})
	q := openTest(t, dir, opts)
	for range 12 {
		enqueueT(t, q, NewJob{Payload: make([]byte, 1000)})
	}
	fail.Store(true)
	for range 2 {
		if _, err := q.Compact(ctx); err == nil {
			t.Fatal("Compact with an injected failure succeeded")
		}
	}
	ro := openTest(t, q.Dir(), &Options{ReadOnly: true})
	for _, who := range []*Queue{q, ro} {
		st, err := who.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.CompactFailures != 2 || !strings.Contains(st.LastCompactError, "injected compaction failure") || st.LastCompactErrorAt.IsZero() {
			t.Fatalf("Stats (read-only %v) = %d failures, %q at %v; want 2, the injected error", who.opts.ReadOnly,
				st.CompactFailures, st.LastCompactError, st.LastCompactErrorAt)
		}
	}
	fail.Store(false)
	if _, err := q.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, who := range []*Queue{q, ro} {
		st, err := who.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastCompactError != "" {
			t.Fatalf("Stats (read-only %v) after a successful compaction: last error %q, want none", who.opts.ReadOnly, st.LastCompactError)
		}
	}
}

// Bug 3: CompleteAndEnqueue checked its follow-up keys, then waited for the
// job's other operation (a heartbeat) with q.mu released; an Enqueue of the
// same key slipped in, and the follow-up was created as a second job with
// the key. Here heartbeats, completions with follow-ups and enqueues of the
// same keys race; each key must end up with exactly one job.
func TestCompleteAndEnqueueKeyRace(t *testing.T) {
	ctx := context.Background()
	opts := &Options{CompactRatio: -1}
	q := openTest(t, t.TempDir(), opts)
	for round := range 200 {
		key := fmt.Sprintf("k%d", round)
		enqueueT(t, q, NewJob{Queue: "w"})
		l := leaseT(t, q, "w")
		var wg sync.WaitGroup
		var viaComplete, viaEnqueue Enqueued
		var errC, errE error
		wg.Add(3)
		go func() {
			defer wg.Done()
			q.Extend(ctx, l.Token, time.Minute) // may lose to the completion
		}()
		go func() {
			defer wg.Done()
			var res []Enqueued
			res, errC = q.CompleteAndEnqueue(ctx, l.Token, nil, []NewJob{{Queue: "f", Key: key}})
			if errC == nil {
				viaComplete = res[0]
			}
		}()
		go func() {
			defer wg.Done()
			viaEnqueue, errE = q.Enqueue(ctx, NewJob{Queue: "f", Key: key})
		}()
		wg.Wait()
		if errC != nil || errE != nil {
			t.Fatalf("round %d: CompleteAndEnqueue: %v; Enqueue: %v", round, errC, errE)
		}
		if viaComplete.ID != viaEnqueue.ID || viaComplete.Duplicate == viaEnqueue.Duplicate {
			t.Fatalf("round %d: follow-up %+v and enqueue %+v of key %q: want one job, one duplicate", round, viaComplete, viaEnqueue, key)
		}
	}
	q = reopenT(t, q, opts)
	if err := q.check(); err != nil {
		t.Fatal(err)
	}
}

// A group whose fsync failed had started a new segment, which the log lists
// until it recovers. Compaction chose that segment as its cut, the carry's
// commit recovered the log (handing the failed indexes out again, to the
// carries), and the truncation removed the carries with the old segments.
// The cut now stops at the acknowledged entries, and a truncation chosen
// before a recovery is refused.
func TestCompactAfterFailedGroupAtSegmentEnd(t *testing.T) {
	ctx := context.Background()
	var failing atomic.Bool
	opts := &Options{SegmentSize: 4 << 10, CompactRatio: -1}
	dir := t.TempDir()
	inject(t, dir, &hooks{sync: func(first, last uint64) error {
		if failing.CompareAndSwap(true, false) {
			return errors.New("injected fsync failure")
		}
		return nil
	}})
	q := openTest(t, dir, opts)
	var ids []uint64
	for i := range 12 {
		ids = append(ids, enqueueT(t, q, NewJob{Payload: bytes.Repeat([]byte{byte(i)}, 1000)}))
	}
	failing.Store(true)
	if _, err := q.Enqueue(ctx, NewJob{Payload: make([]byte, 4<<10)}); !errors.Is(err, ErrFailed) {
		t.Fatalf("Enqueue with a failing fsync = %v, want ErrFailed", err)
	}
	if _, err := q.Compact(ctx); err != nil && !errors.Is(err, ErrFailed) {
		t.Fatalf("Compact after a failed group: %v", err)
	}
	check := func(q *Queue) {
		t.Helper()
		for _, id := range ids {
			getT(t, q, id)
		}
	}
	check(q)
	q = reopenT(t, q, opts)
	check(q)
}

// Retention is enforced before Open returns, so that a process living
// shorter than MaintenanceInterval still purges.
func TestRetentionAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, KeyRetention: time.Hour}
	q := openTest(t, dir, opts)
	id := enqueueT(t, q, NewJob{Key: "k"})
	l := leaseT(t, q, "")
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(2 * time.Hour)
	q = openTest(t, dir, opts) // MaintenanceInterval far away: no tick
	if _, err := q.Get(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%d) after Open past its retention = %v, want ErrNotFound", id, err)
	}
}
