package fuzz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// FuzzAPISequence decodes its input into a sequence of queue calls, one
// opcode byte (and argument bytes) per call, applies them to a real queue
// under a mock clock, and checks walq's promises after each: no job
// completes twice, a call with a stale token changes nothing, every
// acknowledged job exists (and a completed one stays completed) across
// reopens and crashes, no job appears that was not acknowledged, and no key
// is held by two jobs. TestModel in package queue checks full semantics
// against a model; this target explores what its generator does not.
func FuzzAPISequence(f *testing.F) {
	f.Fuzz(func(t *testing.T, ops []byte) {
		r := newSeqRun(t, ops)
		for n := 0; n < 300 && len(r.data) > 0; n++ {
			r.step()
			r.checkListing("after " + r.last)
		}
	})
}

// seqKeys are the idempotency keys calls draw from: few, so that duplicates
// are frequent.
var seqKeys = []string{"", "", "a", "b", "c", "d"}

// seqRun is one input's run: the queue, the remaining input and what the
// queue acknowledged.
type seqRun struct {
	t    *testing.T
	ctx  context.Context
	mc   *clock.Mock
	opts *queue.Options
	dir  string
	q    *queue.Queue
	data []byte
	last string // the last call, for messages

	acked     map[uint64]string // acknowledged jobs and their keys
	gone      map[uint64]bool   // acknowledged jobs since purged
	holder    map[string]uint64 // the job each key was last acknowledged for
	completed map[uint64]bool   // jobs whose Complete returned nil
	live      map[queue.Token]bool
	tokens    []queue.Token // every token handed out
	maxID     uint64
	elapsed   time.Duration
}

func newSeqRun(t *testing.T, ops []byte) *seqRun {
	mc := mockClock()
	r := &seqRun{t: t, ctx: context.Background(), mc: mc, data: ops,
		// Durability None: a crash image is the files as the OS has
		// them, which is all a process crash leaves; no fsyncs keep
		// the fuzzer fast.
		opts: &queue.Options{Clock: mc, Logger: quiet, SegmentSize: 4 << 10, CompactRatio: -1,
			Durability: queue.None, MaxAttempts: 3, LeaseDuration: 30 * time.Second},
		acked: map[uint64]string{}, gone: map[uint64]bool{}, holder: map[string]uint64{},
		completed: map[uint64]bool{}, live: map[queue.Token]bool{}}
	r.open(t.TempDir())
	t.Cleanup(func() { r.q.Close() })
	return r
}

func (r *seqRun) open(dir string) {
	q, err := queue.Open(dir, r.opts)
	if err != nil {
		r.t.Fatalf("Open(%s) after %s: %v", dir, r.last, err)
	}
	r.q, r.dir = q, dir
}

// next consumes one input byte (0 once the input is used up).
func (r *seqRun) next() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *seqRun) step() {
	switch op := r.next() % 16; op {
	case 0, 1:
		r.enqueue(1)
	case 2:
		r.enqueue(int(r.next()%3) + 1)
	case 3, 4:
		r.lease()
	case 5, 6, 7, 8:
		r.tokenCall(op)
	case 9:
		r.advance()
	case 10, 11, 12:
		r.change(op)
	case 13:
		r.last = "Compact"
		if _, err := r.q.Compact(r.ctx); err != nil {
			r.t.Fatalf("Compact: %v", err)
		}
	default:
		r.reopen(op == 15)
	}
}

func (r *seqRun) newJob() queue.NewJob {
	b := r.next()
	size := []int{0, 10, 200, 1500}[b>>6]
	return queue.NewJob{
		Queue:       []string{"", "b"}[b&1],
		Key:         seqKeys[int(b>>1)%len(seqKeys)],
		Payload:     make([]byte, size),
		MaxAttempts: int(b>>4) % 3,
		Delay:       time.Duration(b>>5&1) * 10 * time.Second,
	}
}

// enqueue enqueues n jobs in one batch and checks the results against what
// was acknowledged: a key held by a live job yields that job, a new job gets
// an ID never used before.
func (r *seqRun) enqueue(n int) {
	njs := make([]queue.NewJob, n)
	for i := range njs {
		njs[i] = r.newJob()
	}
	r.last = fmt.Sprintf("EnqueueBatch(%d jobs)", n)
	res, err := r.q.EnqueueBatch(r.ctx, njs)
	if err != nil {
		r.t.Fatalf("%s: %v", r.last, err)
	}
	for i, e := range res {
		key := njs[i].Key
		if e.Duplicate {
			if key == "" || r.holder[key] != e.ID {
				r.t.Fatalf("%s: job %d (key %q) is a duplicate of %d, but the key was acknowledged for %d",
					r.last, i, key, e.ID, r.holder[key])
			}
			continue
		}
		if e.ID <= r.maxID {
			r.t.Fatalf("%s: new job %d does not follow job %d (IDs are never reused)", r.last, e.ID, r.maxID)
		}
		if h, ok := r.holder[key]; ok && key != "" && !r.gone[h] {
			r.t.Fatalf("%s: key %q got new job %d while job %d holds it (the clock is within its retention)", r.last, key, e.ID, h)
		}
		r.maxID = e.ID
		r.acked[e.ID] = key
		if key != "" {
			r.holder[key] = e.ID
		}
	}
}

func (r *seqRun) lease() {
	name := []string{"", "b", "other"}[r.next()%3]
	r.last = fmt.Sprintf("TryLease(%q)", name)
	l, err := r.q.TryLease(r.ctx, name)
	if errors.Is(err, queue.ErrNoJob) {
		return
	}
	if err != nil {
		r.t.Fatalf("%s: %v", r.last, err)
	}
	if r.gone[l.Job.ID] || r.completed[l.Job.ID] {
		r.t.Fatalf("%s leased job %d, which is purged or completed", r.last, l.Job.ID)
	}
	r.live[l.Token] = true
	r.tokens = append(r.tokens, l.Token)
}

// pickToken picks a token handed out before (current or stale), or one for
// a job that never existed.
func (r *seqRun) pickToken() queue.Token {
	b := int(r.next())
	if b < len(r.tokens) {
		return r.tokens[len(r.tokens)-1-b]
	}
	return queue.Token{Job: r.maxID + 1 + uint64(b%3), Attempt: 1}
}

// tokenCall makes a call that needs a lease: complete, fail, extend or
// release. A call accepted for a token whose lease ended is a stale token
// winning; one refused with ErrLeaseLost must not change the job.
func (r *seqRun) tokenCall(op byte) {
	tok := r.pickToken()
	before := r.snapshot(tok.Job)
	var err error
	switch op {
	case 5:
		r.last = fmt.Sprintf("Complete(%+v)", tok)
		err = r.q.Complete(r.ctx, tok, []byte(fmt.Sprintf("result of %d", tok.Job)))
	case 6:
		kind := r.next() % 4
		r.last = fmt.Sprintf("Fail(%+v, kind %d)", tok, kind)
		err = r.q.Fail(r.ctx, tok, []error{errors.New("boom"), queue.Permanent(errors.New("bad")),
			queue.RetryAfter(5*time.Second, errors.New("later")), queue.Snooze(3 * time.Second)}[kind])
	case 7:
		r.last = fmt.Sprintf("Extend(%+v)", tok)
		_, err = r.q.Extend(r.ctx, tok, time.Duration(r.next()%4)*20*time.Second)
	default:
		r.last = fmt.Sprintf("Release(%+v)", tok)
		err = r.q.Release(r.ctx, tok)
	}
	switch {
	case err == nil:
		if !r.live[tok] {
			r.t.Fatalf("%s succeeded, but that lease had ended", r.last)
		}
		if op == 5 {
			if r.completed[tok.Job] {
				r.t.Fatalf("%s: job %d completed twice", r.last, tok.Job)
			}
			r.completed[tok.Job] = true
		}
		if op != 7 {
			delete(r.live, tok)
		}
	case errors.Is(err, queue.ErrLeaseExpired):
		delete(r.live, tok)
	case errors.Is(err, queue.ErrLeaseLost):
		delete(r.live, tok)
		if after := r.snapshot(tok.Job); after != before {
			r.t.Fatalf("%s was refused (%v) but changed the job:\n before %+v\n after  %+v", r.last, err, before, after)
		}
	default:
		r.t.Fatalf("%s: %v", r.last, err)
	}
}

// jobSnap is what a refused call must leave unchanged.
type jobSnap struct {
	Found           bool
	State           queue.JobState
	Attempt         int
	LastError       string
	HasResult       bool
	History         int
	Deadline, RunAt time.Time
	FinishedAt      time.Time
}

func (r *seqRun) snapshot(id uint64) jobSnap {
	j, err := r.q.Get(r.ctx, id)
	if errors.Is(err, queue.ErrNotFound) {
		return jobSnap{}
	}
	if err != nil {
		r.t.Fatalf("Get(%d): %v", id, err)
	}
	return jobSnap{true, j.State, j.Attempt, j.LastError, j.HasResult, len(j.History), j.LeaseDeadline, j.RunAt, j.FinishedAt}
}

// advance moves the clock, staying within the key retention (24h) so that
// keys are never released by time.
func (r *seqRun) advance() {
	d := time.Duration(r.next()) * 500 * time.Millisecond
	if r.elapsed+d > 20*time.Hour {
		return
	}
	r.elapsed += d
	r.last = fmt.Sprintf("clock +%v", d)
	r.mc.Add(d)
}

// change makes a bulk call on one job: requeue, cancel or purge.
func (r *seqRun) change(op byte) {
	id := uint64(r.next()) % (r.maxID + 2)
	var err error
	switch op {
	case 10:
		r.last = fmt.Sprintf("Requeue(%d)", id)
		err = r.q.Requeue(r.ctx, []uint64{id}, queue.RequeueOptions{})
	case 11:
		r.last = fmt.Sprintf("Cancel(%d)", id)
		err = r.q.Cancel(r.ctx, id)
	default:
		r.last = fmt.Sprintf("Purge(%d)", id)
		err = r.q.Purge(r.ctx, []uint64{id})
	}
	switch {
	case err == nil:
		if _, ok := r.acked[id]; !ok || r.gone[id] {
			r.t.Fatalf("%s succeeded on a job that was never acknowledged or is purged", r.last)
		}
		if op == 12 {
			r.gone[id] = true
		}
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, queue.ErrState):
	default:
		r.t.Fatalf("%s: %v", r.last, err)
	}
}

// reopen closes and reopens the queue, or crashes it: copies its files
// while it is open and continues on the copy (closing the original only at
// the end). Either way every lease is voided.
func (r *seqRun) reopen(crash bool) {
	if crash {
		r.last = "crash and reopen"
		img := r.t.TempDir()
		copyDir(r.t, r.dir, img)
		old := r.q
		r.t.Cleanup(func() { old.Close() })
		r.open(img)
	} else {
		r.last = "Close and reopen"
		if err := r.q.Close(); err != nil {
			r.t.Fatalf("Close: %v", err)
		}
		r.open(r.dir)
	}
	clear(r.live)
}

// checkListing checks the job listing against what was acknowledged.
func (r *seqRun) checkListing(when string) {
	jobs, err := r.q.Jobs(r.ctx, queue.JobFilter{})
	if err != nil {
		r.t.Fatalf("Jobs %s: %v", when, err)
	}
	seen := map[uint64]bool{}
	keys := map[string]uint64{}
	for _, j := range jobs {
		key, ok := r.acked[j.ID]
		if !ok || r.gone[j.ID] {
			r.t.Fatalf("%s: job %d exists, but it was never acknowledged or was purged", when, j.ID)
		}
		if j.Key != key {
			r.t.Fatalf("%s: job %d has key %q, acknowledged with %q", when, j.ID, j.Key, key)
		}
		if other, dup := keys[j.Key]; dup && j.Key != "" {
			r.t.Fatalf("%s: key %q held by jobs %d and %d", when, j.Key, other, j.ID)
		}
		keys[j.Key] = j.ID
		if r.completed[j.ID] && j.State != queue.StateCompleted {
			r.t.Fatalf("%s: job %d was completed, now %s", when, j.ID, j.State)
		}
		seen[j.ID] = true
	}
	var lost []uint64
	for id := range r.acked {
		if !seen[id] && !r.gone[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		r.t.Fatalf("%s: acknowledged jobs %v are gone", when, lost)
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err == nil {
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}
