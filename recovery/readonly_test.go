package recovery_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

// envInt reads a positive count from the environment, def if unset.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive count", name, s)
	}
	return n
}

// modelJob is what the compacting writer knows of one job.
type modelJob struct {
	state   index.State
	attempt int64
}

// compactingWriter appends job transitions to a log with small segments
// and, every few entries, compacts it the way the queue does: carry records
// restating every live job at the tail, then TruncateFront up to the first
// carry. After each entry it records a fingerprint of the state the log
// holds up to that entry, so that a reader can check what it replayed.
type compactingWriter struct {
	l    *wlog.Log
	rng  *rand.Rand
	jobs map[uint64]*modelJob
	next uint64

	mu     sync.RWMutex // held for writing across an append and its fingerprint
	prints map[uint64]string
	cycles int // compactions that removed segments
}

func (w *compactingWriter) append(t *testing.T, recs ...wlog.Record) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, err := w.l.Append(recs)
	if err != nil {
		t.Errorf("writer Append: %v", err)
		return 0
	}
	w.prints[i] = w.fingerprint()
	return i
}

// fingerprint describes the model's jobs, sorted by ID.
func (w *compactingWriter) fingerprint() string {
	ids := make([]uint64, 0, len(w.jobs))
	for id := range w.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%d:%s:%d ", id, w.jobs[id].state, w.jobs[id].attempt)
	}
	return b.String()
}

// indexFingerprint describes an index's jobs as fingerprint does.
func indexFingerprint(x *index.Index) string {
	js := x.Jobs()
	slices.SortFunc(js, func(a, b *index.Job) int { return int(a.ID) - int(b.ID) })
	var b strings.Builder
	for _, j := range js {
		fmt.Fprintf(&b, "%d:%s:%d ", j.ID, j.State, j.Attempt)
	}
	return b.String()
}

// step appends one random transition: a new job while few are pending,
// otherwise a lease, a completion or a purge.
func (w *compactingWriter) step(t *testing.T) {
	pick := func(s index.State) uint64 {
		var ids []uint64
		for id, j := range w.jobs {
			if j.state == s {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return 0
		}
		slices.Sort(ids)
		return ids[w.rng.IntN(len(ids))]
	}
	pending := pick(index.Pending)
	switch op := w.rng.IntN(4); {
	case pending == 0 || op == 0:
		id := w.next
		w.next++
		w.jobs[id] = &modelJob{state: index.Pending}
		w.append(t, enqueued(id, 3))
	case op == 1:
		j := w.jobs[pending]
		j.state, j.attempt = index.Leased, j.attempt+1
		w.append(t, leased(pending, j.attempt))
	case op == 2:
		if id := pick(index.Leased); id != 0 {
			j := w.jobs[id]
			j.state = index.Completed
			w.append(t, wlog.Record{Kind: wlog.KindCompleted, Job: id, At: ns(2 * time.Second), Attempt: j.attempt})
		}
	default:
		if id := pick(index.Completed); id != 0 {
			delete(w.jobs, id)
			w.append(t, wlog.Record{Kind: wlog.KindPurged, Job: id, At: ns(3 * time.Second)})
		}
	}
}

// compact restates every job at the tail, then cuts the front up to the
// first carry.
func (w *compactingWriter) compact(t *testing.T) {
	ids := make([]uint64, 0, len(w.jobs))
	for id := range w.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var first uint64
	for len(ids) > 0 {
		n := min(len(ids), 4)
		var recs []wlog.Record
		for _, id := range ids[:n] {
			j := w.jobs[id]
			r := wlog.Record{Kind: wlog.KindCarry, Job: id, At: ns(0), Created: ns(0), Queue: "default",
				Payload: payloadOf(id), RunAt: ns(0), MaxAttempts: 3, Attempt: j.attempt, State: uint8(j.state)}
			for a := int64(1); a <= j.attempt; a++ {
				h := wlog.Attempt{Started: ns(time.Second)}
				if j.state == index.Completed {
					h.Ended, h.Outcome = ns(2*time.Second), wlog.KindCompleted
				}
				r.History = append(r.History, h)
			}
			if j.state == index.Leased {
				r.Deadline = ns(time.Minute)
			}
			if j.state == index.Completed {
				r.Finished = ns(2 * time.Second)
			}
			recs = append(recs, r)
		}
		ids = ids[n:]
		i := w.append(t, recs...)
		if first == 0 {
			first = i
		}
	}
	i := w.append(t, wlog.Record{Kind: wlog.KindCheckpoint, NextID: w.next})
	if first == 0 {
		first = i
	}
	before := w.l.FirstIndex()
	if _, err := w.l.TruncateFront(first); err != nil {
		t.Errorf("writer TruncateFront: %v", err)
	}
	if w.l.FirstIndex() != before {
		w.cycles++
	}
}

// TestReadOnlyOpenDuringCompaction: read-only opens (what every read
// command does while the app runs) race a writer that compacts the log over
// and over, removing the front segments they are reading. Every open must
// succeed and replay a state the log held at the index it reached.
//
// WALQ_READONLY_OPENS sets how many opens the readers make (default 300,
// a few seconds); raise it for a longer run.
func TestReadOnlyOpenDuringCompaction(t *testing.T) {
	t.Parallel()
	opens := envInt(t, "WALQ_READONLY_OPENS", 300)
	const readers = 3
	dir := t.TempDir()
	l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, SegmentSize: 2048, Durability: wlog.None})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := &compactingWriter{l: l, rng: rand.New(rand.NewPCG(1, 2)), jobs: map[uint64]*modelJob{}, next: 1,
		prints: map[uint64]string{0: ""}}

	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			w.step(t)
			if n%12 == 0 {
				w.compact(t)
			}
		}
	}()

	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failures []string
	var replayed, truncated, restarts int
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range (opens + readers - 1 - r) / readers {
				ro, x, rep, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet, ReadOnly: true}})
				if err != nil {
					failMu.Lock()
					failures = append(failures, err.Error())
					failMu.Unlock()
					continue
				}
				got := indexFingerprint(x)
				w.mu.RLock()
				want, ok := w.prints[rep.LastIndex]
				w.mu.RUnlock()
				ro.Close()
				failMu.Lock()
				replayed++
				restarts += rep.Restarts
				if rep.FirstIndex > 1 {
					truncated++
				}
				if !ok || got != want {
					failures = append(failures, fmt.Sprintf("open replayed to index %d (first %d): jobs %q, want %q (known %v)",
						rep.LastIndex, rep.FirstIndex, got, want, ok))
				}
				failMu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-writerDone
	if len(failures) > 0 {
		t.Errorf("%d of %d read-only opens failed beside a compacting writer; the first: %s", len(failures), opens, failures[0])
	}
	if w.cycles < 3 || truncated == 0 {
		t.Errorf("only %d compactions removed segments and %d opens saw a truncated log: the race was not exercised", w.cycles, truncated)
	}
	t.Logf("%d read-only opens (%d of a truncated log, %d replays started again) beside %d compactions; log at [%d, %d]",
		replayed, truncated, restarts, w.cycles, l.FirstIndex(), l.LastIndex())
}
