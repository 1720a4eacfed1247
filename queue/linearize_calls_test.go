package queue

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The calls TestLinearizable's clients make, each recorded with what it
// returned (linearize_test.go runs them; linearize_model_test.go checks
// them).

// linClient is one goroutine's state.
type linClient struct {
	r    *linRun
	id   int
	rng  *rand.Rand
	held []Token // leases this client took and has not ended
	seq  int
}

func (r *linRun) client(c int) {
	cl := &linClient{r: r, id: c, rng: rand.New(rand.NewPCG(r.seed, uint64(100+c)))}
	type call struct {
		weight int
		fn     func()
	}
	calls := []call{
		{12, cl.enqueue}, {4, cl.enqueueBatch}, {12, cl.lease}, {3, cl.leaseN},
		{10, cl.complete}, {4, cl.completeBatch}, {6, cl.fail}, {2, cl.extend}, {2, cl.extendBatch},
		{2, cl.release}, {3, cl.requeue}, {3, cl.cancel}, {3, cl.purge}, {3, cl.pause},
		{2, cl.compact}, {6, cl.advance}, {4, cl.get}, {2, cl.jobs}, {2, cl.stats}, {1, cl.dead},
	}
	total := 0
	for _, k := range calls {
		total += k.weight
	}
	for range linOps {
		n := cl.rng.IntN(total)
		for _, k := range calls {
			if n < k.weight {
				k.fn()
				break
			}
			n -= k.weight
		}
	}
}

var linKeys = []string{"", "", "k0", "k1", "k2"}

// newJob draws a job; its payload is unique unless empty.
func (cl *linClient) newJob(unique bool) NewJob {
	cl.seq++
	size := []int{0, 40, 40, 300, 1500}[cl.rng.IntN(5)]
	if unique && size == 0 {
		size = 40
	}
	tag := fmt.Sprintf("c%d.%d.", cl.id, cl.seq)
	nj := NewJob{
		Queue:       []string{"", "b"}[cl.rng.IntN(2)],
		Key:         linKeys[cl.rng.IntN(len(linKeys))],
		Payload:     []byte(strings.Repeat(tag, size/len(tag)+1)[:size]),
		Priority:    int32(cl.rng.IntN(3) - 1),
		MaxAttempts: []int{0, 0, 1, 2}[cl.rng.IntN(4)],
		Delay:       []time.Duration{0, 0, 0, 2 * time.Second}[cl.rng.IntN(4)],
	}
	if cl.rng.IntN(4) == 0 {
		nj.Backoff = &Backoff{Base: 3 * time.Second, Cap: 10 * time.Second}
	}
	return nj
}

func (cl *linClient) enqueue() {
	nj := cl.newJob(false)
	op := &lin{kind: opEnqueue, jobs: []NewJob{nj}}
	res := cl.r.record(cl.id, op, func() *lout {
		e, err := cl.r.q.Enqueue(cl.r.ctx, nj)
		if err != nil {
			return &lout{err: err}
		}
		return &lout{enq: []Enqueued{e}}
	})
	cl.noteEnq(res.enq)
}

func (cl *linClient) enqueueBatch() {
	njs := make([]NewJob, 1+cl.rng.IntN(3))
	for i := range njs {
		njs[i] = cl.newJob(false)
	}
	op := &lin{kind: opEnqueue, jobs: slices.Clone(njs)}
	res := cl.r.record(cl.id, op, func() *lout {
		e, err := cl.r.q.EnqueueBatch(cl.r.ctx, njs)
		return &lout{enq: e, err: err}
	})
	cl.noteEnq(res.enq)
}

func (cl *linClient) noteEnq(enq []Enqueued) {
	var ids []uint64
	for _, e := range enq {
		ids = append(ids, e.ID)
	}
	cl.r.note(ids, nil)
}

func (cl *linClient) lease()  { cl.leaseCount(1) }
func (cl *linClient) leaseN() { cl.leaseCount(1 + cl.rng.IntN(3)) }

func (cl *linClient) leaseCount(n int) {
	name := []string{DefaultQueue, "b"}[cl.rng.IntN(2)]
	op := &lin{kind: opLease, queue: name, n: n}
	res := cl.r.record(cl.id, op, func() *lout {
		ls, err := cl.r.q.TryLeaseN(cl.r.ctx, name, n)
		out := &lout{err: err, leases: []leaseOut{}}
		for _, l := range ls {
			out.leases = append(out.leases, leaseOut{l.Token, nsOf(l.Deadline), string(l.Job.Payload)})
		}
		return out
	})
	var toks []Token
	for _, l := range res.leases {
		toks = append(toks, l.Tok)
	}
	cl.held = append(cl.held, toks...)
	cl.r.note(nil, toks)
}

// token picks a token: mostly one this client holds, else any token ever
// handed out (stale, or another client's current lease).
func (cl *linClient) token() Token {
	if len(cl.held) > 0 && cl.rng.IntN(5) > 0 {
		i := cl.rng.IntN(len(cl.held))
		tok := cl.held[i]
		cl.held = slices.Delete(cl.held, i, i+1)
		return tok
	}
	cl.r.mu.Lock()
	defer cl.r.mu.Unlock()
	if len(cl.r.tokens) == 0 {
		return Token{Job: 1, Attempt: 1, Lease: 1}
	}
	return cl.r.tokens[cl.rng.IntN(len(cl.r.tokens))]
}

func (cl *linClient) complete() {
	tok := cl.token()
	var result []byte
	switch cl.rng.IntN(3) {
	case 1:
		result = []byte{}
	case 2:
		result = fmt.Appendf(nil, "result c%d.%d", cl.id, cl.seq)
	}
	var then []NewJob
	for range cl.rng.IntN(3) {
		then = append(then, cl.newJob(false))
	}
	op := &lin{kind: opComplete, tok: tok, result: result, jobs: slices.Clone(then)}
	res := cl.r.record(cl.id, op, func() *lout {
		e, err := cl.r.q.CompleteAndEnqueue(cl.r.ctx, tok, result, then)
		return &lout{enq: e, err: err}
	})
	cl.noteEnq(res.enq)
}

func (cl *linClient) completeBatch() {
	cs := make([]Completion, 1+cl.rng.IntN(3))
	toks := make([]Token, len(cs))
	for i := range cs {
		toks[i] = cl.token()
		cs[i] = Completion{Token: toks[i], Result: fmt.Appendf(nil, "batch result c%d.%d", cl.id, i)}
		if cl.rng.IntN(2) == 0 {
			cs[i].Then = []NewJob{cl.newJob(true)}
		}
	}
	r := cl.r
	r.mu.Lock()
	after := r.maxID // every follow-up gets a larger ID
	r.mu.Unlock()
	op := &lin{kind: opCompleteBatch, toks: toks, cs: cs}
	res := r.record(cl.id, op, func() *lout {
		errs, err := r.q.CompleteBatch(r.ctx, cs)
		return &lout{errs: errs, err: err}
	})
	// CompleteBatch does not return the follow-ups' IDs: find them by
	// their payloads (unique), after the call. Recording them in the
	// output is sound: an ID never changes.
	var then []NewJob
	for _, c := range cs {
		then = append(then, c.Then...)
	}
	res.enq = make([]Enqueued, len(then))
	if res.err != nil || len(then) == 0 {
		return
	}
	js, err := r.q.Jobs(r.ctx, JobFilter{AfterID: after})
	if err != nil {
		r.problem("Jobs after %s: %v", op, err)
		return
	}
	var ids []uint64
	for _, j := range js {
		full, err := r.q.Get(r.ctx, j.ID)
		if err != nil {
			continue
		}
		for i, nj := range then {
			if string(full.Payload) == string(nj.Payload) {
				res.enq[i].ID = j.ID
				ids = append(ids, j.ID)
			}
		}
	}
	r.note(ids, nil)
}

func (cl *linClient) fail() {
	tok := cl.token()
	cl.seq++
	inner := fmt.Errorf("boom c%d.%d", cl.id, cl.seq)
	kind := []string{"error", "error", "permanent", "retryAfter", "snooze"}[cl.rng.IntN(5)]
	d := time.Duration(1+cl.rng.IntN(5)) * time.Second
	var ferr error
	switch kind {
	case "error":
		ferr = inner
	case "permanent":
		ferr = Permanent(inner)
	case "retryAfter":
		ferr = RetryAfter(d, inner)
	case "snooze":
		ferr = Snooze(d)
	}
	op := &lin{kind: opFail, tok: tok, failKind: kind, ferr: ferr, d: d}
	cl.r.record(cl.id, op, func() *lout { return &lout{err: cl.r.q.Fail(cl.r.ctx, tok, ferr)} })
}

func (cl *linClient) extend() {
	tok := cl.token()
	d := []time.Duration{0, 3 * time.Hour}[cl.rng.IntN(2)]
	op := &lin{kind: opExtend, tok: tok, d: d}
	res := cl.r.record(cl.id, op, func() *lout {
		dl, err := cl.r.q.Extend(cl.r.ctx, tok, d)
		return &lout{err: err, deadline: nsOf(dl)}
	})
	if res.err == nil {
		cl.held = append(cl.held, tok)
	}
}

func (cl *linClient) extendBatch() {
	toks := make([]Token, 1+cl.rng.IntN(3))
	for i := range toks {
		toks[i] = cl.token()
	}
	d := []time.Duration{0, 3 * time.Hour}[cl.rng.IntN(2)]
	op := &lin{kind: opExtendBatch, toks: toks, d: d}
	res := cl.r.record(cl.id, op, func() *lout {
		errs, err := cl.r.q.ExtendBatch(cl.r.ctx, toks, d)
		return &lout{errs: errs, err: err}
	})
	for i, e := range res.errs {
		if e == nil {
			cl.held = append(cl.held, toks[i])
		}
	}
}

func (cl *linClient) release() {
	tok := cl.token()
	op := &lin{kind: opRelease, tok: tok}
	cl.r.record(cl.id, op, func() *lout { return &lout{err: cl.r.q.Release(cl.r.ctx, tok)} })
}

// pickIDs draws one or two job IDs seen so far (or one never used).
func (cl *linClient) pickIDs(n int) []uint64 {
	cl.r.mu.Lock()
	defer cl.r.mu.Unlock()
	ids := make([]uint64, n)
	for i := range ids {
		if len(cl.r.ids) == 0 || cl.rng.IntN(10) == 0 {
			ids[i] = cl.r.maxID + 1
		} else {
			ids[i] = cl.r.ids[cl.rng.IntN(len(cl.r.ids))]
		}
	}
	return ids
}

func (cl *linClient) requeue() {
	ids := cl.pickIDs(1 + cl.rng.IntN(2))
	ro := RequeueOptions{Queue: []string{"", "", "b"}[cl.rng.IntN(3)], Delay: []time.Duration{0, time.Second}[cl.rng.IntN(2)]}
	op := &lin{kind: opRequeue, ids: ids, ropts: ro}
	cl.r.record(cl.id, op, func() *lout { return &lout{err: cl.r.q.Requeue(cl.r.ctx, ids, ro)} })
}

func (cl *linClient) cancel() {
	ids := cl.pickIDs(1)
	op := &lin{kind: opCancel, ids: ids}
	cl.r.record(cl.id, op, func() *lout { return &lout{err: cl.r.q.Cancel(cl.r.ctx, ids[0])} })
}

func (cl *linClient) purge() {
	ids := cl.pickIDs(1 + cl.rng.IntN(2))
	op := &lin{kind: opPurge, ids: ids}
	cl.r.record(cl.id, op, func() *lout { return &lout{err: cl.r.q.Purge(cl.r.ctx, ids)} })
}

func (cl *linClient) pause() {
	name := []string{DefaultQueue, "b"}[cl.rng.IntN(2)]
	p := cl.rng.IntN(3) == 0
	op := &lin{kind: opPause, queue: name, pause: p}
	cl.r.record(cl.id, op, func() *lout {
		if p {
			return &lout{err: cl.r.q.Pause(cl.r.ctx, name)}
		}
		return &lout{err: cl.r.q.Resume(cl.r.ctx, name)}
	})
}

func (cl *linClient) compact() {
	if linNoCompact {
		cl.stats()
		return
	}
	op := &lin{kind: opCompact}
	cl.r.record(cl.id, op, func() *lout {
		_, err := cl.r.q.Compact(cl.r.ctx)
		return &lout{err: err}
	})
}

// advance moves the clock: mostly by a second or two (backoffs, delays,
// the queue's once-a-second recovery), sometimes past KeyRetention.
func (cl *linClient) advance() {
	d := time.Duration(cl.rng.IntN(2500)) * time.Millisecond
	if cl.rng.IntN(4) == 0 {
		d = linRetention + time.Second
	}
	op := &lin{kind: opAdvance, d: d}
	cl.r.record(cl.id, op, func() *lout {
		v := cl.r.clk.advance(d)
		cl.r.mu.Lock()
		cl.r.clockVals = append(cl.r.clockVals, v)
		cl.r.mu.Unlock()
		return &lout{}
	})
}

func (cl *linClient) get() {
	ids := cl.pickIDs(1)
	op := &lin{kind: opGet, ids: ids}
	cl.r.record(cl.id, op, func() *lout {
		j, err := cl.r.q.Get(cl.r.ctx, ids[0])
		return &lout{job: j, err: err}
	})
}

func (cl *linClient) jobs() {
	op := &lin{kind: opJobs}
	cl.r.record(cl.id, op, func() *lout {
		js, err := cl.r.q.Jobs(cl.r.ctx, JobFilter{})
		if js == nil {
			js = []*Job{}
		}
		return &lout{jobs: js, err: err}
	})
}

func (cl *linClient) stats() {
	op := &lin{kind: opStats}
	cl.r.record(cl.id, op, func() *lout {
		st, err := cl.r.q.Stats(cl.r.ctx)
		for name, qs := range st.Queues {
			qs.Metrics, qs.OldestReady = Metrics{}, 0 // not modelled; keeps dumps readable
			st.Queues[name] = qs
		}
		return &lout{stats: st.Queues, err: err}
	})
}

func (cl *linClient) dead() {
	op := &lin{kind: opDead}
	cl.r.record(cl.id, op, func() *lout {
		js, err := cl.r.q.Dead(cl.r.ctx, DeadFilter{})
		if js == nil {
			js = []*Job{}
		}
		return &lout{jobs: js, err: err}
	})
}
