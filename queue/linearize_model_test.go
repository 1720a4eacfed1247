package queue

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// This file is the sequential specification TestLinearizable checks its
// concurrent histories against, written for porcupine: the state is the
// sequential model of model_state_test.go plus the clock and the IDs ever
// handed out, and each step checks one recorded call (its input and what
// it returned) against that state.
//
// Three things the queue does are not calls in the history, so the model
// admits them as nondeterminism, resolved by what later calls observe:
//
//   - The clock is not part of the state: a call reads it once, somewhere
//     between its call and its return, and the job it creates or changes
//     may become visible to others only later (once durable), after the
//     clock moved on. So each call carries the clock values it may have
//     read (every value the clock had between its call and its return) and
//     the model tries each.
//   - The background compactor (and an overlapping explicit Compact) may
//     purge a completed or cancelled job at any moment once its retention
//     is over ("limbo" below). A limbo job may be listed or not; the first
//     call that shows it gone removes it from the state. Compact returning
//     nil removes every limbo job: its sweep runs to a fixpoint.
//   - Job IDs are assigned in log order but applied in the order the
//     committing goroutines get the lock back, so a reader can see job 6
//     before job 5. The model therefore requires only that a new ID is not
//     one of a job it holds (not that it is the next one).
//   - A call that failed with ErrFailed (injected I/O faults) changed
//     nothing: the queue applies an entry only once it is durable, and
//     log.Recover cuts the log back to the last acknowledged entry.
//
// TryLease passes over ready jobs that another call in flight has reserved
// (see lstate.lease), so the model checks only that what it leased was
// ready, in order.
//
// A power-cut image is not checked in this history but in its own (see
// linRun.imageHistory): the calls begun before the image was taken, those
// still in flight free to be in it or not, then the image, after which the
// model is "crashed" and accepts anything. The queue makes an entry
// durable before it applies it, and applies the entries in flight in any
// order, so an image may hold an entry that no reader sees yet, and, of
// two entries in flight, the earlier in the log while readers already see
// the later: no single order of the calls can then put the image at a
// point of the live history. The crash is another future of the same
// past, which is what durable linearizability asks of it.
//
// Leases never expire in these histories (the lease lasts far longer than
// the clock moves), so no call reaps: TestModel covers expiry sequentially.

// lstate is one state of the model. It is never changed once a step
// returned it; steps work on clones.
type lstate struct {
	m       *model
	now     int64  // the clock as the call being applied read it; not part of the state
	crashed bool   // a power-cut image was checked: every later call is accepted
	key     string // canonical encoding, filled by encode
	hash    uint64 // the key's hash, filled by encode
}

func newLstate(o *Options, now int64) *lstate {
	m := newModel(o)
	m.cov = coverage{}
	return &lstate{m: m, now: now}
}

func (s *lstate) clone() *lstate {
	m := *s.m
	m.jobs = make(map[uint64]*mjob, len(s.m.jobs))
	for id, j := range s.m.jobs {
		c := *j
		c.history = slices.Clone(j.history)
		m.jobs[id] = &c
	}
	m.paused = maps.Clone(s.m.paused)
	m.cov = coverage{}
	return &lstate{m: &m, now: s.now, crashed: s.crashed}
}

// encode returns the state as a string: equal states, equal strings. It
// is the model's hot path (porcupine compares and hashes states), so it
// appends by hand. A job's payload is left out: it is fixed by the call
// that created the job, whose ID it shares.
func (s *lstate) encode() string {
	if s.key != "" {
		return s.key
	}
	if s.crashed {
		s.key, s.hash = "crashed", 1
		return s.key
	}
	b := make([]byte, 0, 64+96*len(s.m.jobs))
	b = append(b, 'p')
	for _, name := range slices.Sorted(maps.Keys(s.m.paused)) {
		if s.m.paused[name] {
			b = append(b, name...)
			b = append(b, ',')
		}
	}
	num := func(v int64) {
		b = strconv.AppendInt(b, v, 36)
		b = append(b, ' ')
	}
	str := func(v string) {
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	for _, id := range s.m.ids() {
		j := s.m.jobs[id]
		b = append(b, '\n')
		num(int64(j.id))
		str(j.queue)
		str(j.key)
		num(int64(j.priority))
		num(int64(j.maxAttempts))
		if j.backoff != nil {
			num(int64(j.backoff.Base))
			num(int64(j.backoff.Cap))
		}
		num(j.created)
		num(int64(j.state))
		num(j.runAt)
		num(int64(j.attempt))
		num(int64(j.leases))
		num(j.deadline)
		str(j.lastErr)
		num(j.finished)
		if j.hasResult {
			str(string(j.result))
		}
		for _, a := range j.history {
			num(a.started)
			num(a.ended)
			str(a.outcome)
			str(a.err)
		}
	}
	s.key = string(b)
	h := fnv.New64a()
	h.Write(b)
	s.hash = h.Sum64()
	return s.key
}

// limbo reports whether the background compactor may have purged j by
// the time the clock read now.
func (s *lstate) limbo(j *mjob) bool { return s.m.retentionOver(j, s.now) }

// linModel is the porcupine model of the queue configured by o, starting
// at the clock's time start.
func linModel(o *Options, start int64) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{newLstate(o, start)} },
		Step: func(state, input, output any) []any {
			var out []any
			for _, s := range lsteps(state.(*lstate), input.(*lin), output.(*lout)) {
				if s.err == nil {
					out = append(out, s.s)
				}
			}
			return out
		},
		Equal: func(a, b any) bool { return a.(*lstate).encode() == b.(*lstate).encode() },
		Hash: func(a any) uint64 {
			s := a.(*lstate)
			s.encode()
			return s.hash
		},
		DescribeOperation: func(input, output any) string {
			return input.(*lin).String() + " → " + output.(*lout).String()
		},
		DescribeState: func(state any) string {
			s := state.(*lstate)
			return fmt.Sprintf("%d jobs, paused %v", len(s.m.jobs), s.m.paused)
		},
	}
	return nm.ToModel()
}

// branch is one possible outcome of a step: the next state, or why the
// recorded output is impossible from this branch.
type branch struct {
	s   *lstate
	err error
}

// lsteps returns every way the call could have taken the state s to
// another, each with the reason it could not if it could not. A call reads
// the clock once, at a moment between its call and its return: it is run
// at each value the clock had then.
func lsteps(s *lstate, op *lin, res *lout) []branch {
	if s.crashed {
		return []branch{{s: s}} // after the image: the calls it does not hold
	}
	if errors.Is(res.err, ErrFailed) {
		return []branch{{s: s}} // a failed call changes nothing
	}
	nows := op.nows
	if op.kind == opImage || op.kind == opFinal {
		nows = []int64{op.clock}
	}
	var out []branch
	for _, now := range nows {
		base := s.clone()
		base.now = now
		switch op.kind {
		case opGet, opPurge, opRequeue, opCancel:
			// The IDs it names may be limbo jobs the compactor purged.
			for _, n := range purgeChoices(base, op.ids) {
				out = append(out, one(n, stepIDs(n, op, res)))
			}
		case opCompact:
			// Its sweep passes over the limbo jobs that a call in
			// flight has reserved, a Purge naming them or an enqueue
			// reusing their key: each may be left or gone.
			for _, n := range purgeChoices(base, spared(base, op)) {
				out = append(out, one(n, lstep(n, op, res)))
			}
		default:
			out = append(out, one(base, lstep(base, op, res)))
		}
	}
	return out
}

func one(s *lstate, err error) branch {
	if err != nil {
		return branch{err: err}
	}
	return branch{s: s}
}

// purgeChoices returns a clone of s for every subset of the limbo jobs
// among ids that the compactor may have purged already.
func purgeChoices(s *lstate, ids []uint64) []*lstate {
	out := []*lstate{s.clone()}
	seen := map[uint64]bool{}
	for _, id := range ids {
		j := s.m.jobs[id]
		if seen[id] || j == nil || !s.limbo(j) {
			continue
		}
		seen[id] = true
		for _, c := range slices.Clone(out) {
			g := c.clone()
			delete(g.m.jobs, id)
			out = append(out, g)
		}
	}
	return out
}

// spared returns the jobs of s that Compact's sweep may pass over: those
// named by the Purge calls in flight during it (op.ids) and those holding
// a key that an enqueue in flight during it may reuse (op.keys). The sweep
// skips a job that a call has reserved, and only these calls reserve a
// finished job: the reserving call then purges it.
func spared(s *lstate, op *lin) []uint64 {
	out := slices.Clone(op.ids)
	for _, j := range s.m.jobs {
		if j.key != "" && slices.Contains(op.keys, j.key) {
			out = append(out, j.id)
		}
	}
	return out
}

// lstep applies one call to n (a clone it may change) and returns why the
// recorded output is impossible, or nil.
func lstep(n *lstate, op *lin, res *lout) error {
	switch op.kind {
	case opEnqueue:
		if res.err != nil {
			return fmt.Errorf("unexpected error %v", res.err)
		}
		return n.enqueue(op.jobs, res.enq, false)
	case opLease:
		if res.err != nil {
			return fmt.Errorf("unexpected error %v", res.err)
		}
		return n.lease(op.queue, op.n, res.leases)
	case opComplete:
		return n.complete(op, res)
	case opFail:
		return n.fail(op, res)
	case opExtend:
		j, err := n.token(op.tok, res.err)
		if j == nil || err != nil {
			return err
		}
		j.deadline = n.now + int64(cmp.Or(op.d, n.m.lease))
		if res.deadline != j.deadline {
			return fmt.Errorf("deadline %d, want %d", res.deadline, j.deadline)
		}
	case opRelease:
		j, err := n.token(op.tok, res.err)
		if j == nil || err != nil {
			return err
		}
		j.end(n.now, "released", "")
		j.state, j.attempt, j.runAt = mPending, j.attempt-1, n.now
	case opCompleteBatch:
		return n.completeBatch(op, res)
	case opExtendBatch:
		jobs, _, err := n.batch(op.toks, res)
		for _, j := range jobs {
			j.deadline = n.now + int64(cmp.Or(op.d, n.m.lease))
		}
		return err
	case opPause:
		if res.err != nil {
			return fmt.Errorf("unexpected error %v", res.err)
		}
		n.m.paused[op.queue] = op.pause
	case opCompact:
		if res.err != nil {
			return nil // fault runs only; a partial sweep is a limbo purge
		}
		spare := spared(n, op)
		for _, id := range n.m.ids() {
			if n.limbo(n.m.jobs[id]) && !slices.Contains(spare, id) {
				delete(n.m.jobs, id)
			}
		}
	case opAdvance:
		// Calls carry the clock values they may have read.
	case opJobs:
		return n.listing(res.jobs, false)
	case opStats:
		return n.stats(res.stats)
	case opDead:
		return n.dead(res.jobs)
	case opImage:
		if err := n.reopened(op, res); err != nil {
			return err
		}
		n.crashed = true
	case opFinal:
		return n.reopened(op, res)
	default:
		return fmt.Errorf("unknown call %q", op.kind)
	}
	return nil
}

// enqueue checks what enqueueing njs returned and applies it. With
// idsOnly, got[i].ID is the new job's ID or 0 for none (CompleteBatch
// returns no results: the test looks the follow-ups up by payload).
func (n *lstate) enqueue(njs []NewJob, got []Enqueued, idsOnly bool) error {
	if len(got) != len(njs) {
		return fmt.Errorf("%d results for %d jobs", len(got), len(njs))
	}
	m, now := n.m, n.now
	inBatch := map[string]uint64{}
	for i, nj := range njs {
		want := Enqueued{}
		if id, ok := inBatch[nj.Key]; ok && nj.Key != "" {
			want = Enqueued{ID: id, Duplicate: true}
		} else if h := m.keyHolder(nj.Key); h != nil && nj.Key != "" {
			if !n.limbo(h) {
				want = Enqueued{ID: h.id, Duplicate: true}
			} else {
				delete(m.jobs, h.id) // the key is reused: its old job goes
			}
		}
		if want.Duplicate {
			if (idsOnly && got[i].ID != 0) || (!idsOnly && got[i] != want) {
				return fmt.Errorf("job %d (key %q): got %+v, want a duplicate of job %d", i, nj.Key, got[i], want.ID)
			}
			continue
		}
		id := got[i].ID
		if id == 0 || got[i].Duplicate || m.jobs[id] != nil {
			return fmt.Errorf("job %d (key %q): got %+v, want a new job with a new ID", i, nj.Key, got[i])
		}
		m.maxID = max(m.maxID, id)
		maxAttempts := nj.MaxAttempts
		if maxAttempts == 0 {
			maxAttempts = m.attempts
		}
		m.jobs[id] = &mjob{
			id: id, queue: queueName(nj.Queue), key: nj.Key, payload: nj.Payload,
			priority: nj.Priority, maxAttempts: maxAttempts, backoff: nj.Backoff, created: now,
			state: mPending, runAt: now + int64(nj.Delay),
		}
		if nj.Key != "" {
			inBatch[nj.Key] = id
		}
	}
	return nil
}

// lease checks TryLeaseN(name, n): ready jobs of the queue, each better
// than the next, at most n. TryLease skips the jobs another call in flight
// has reserved (a lease, a cancel, a compaction's carry), which the model
// cannot see: it may return fewer jobs, or pass over a better one. It
// reads the paused flag as applied, and a Pause that is durable is applied
// only when its caller gets the lock back, after entries that were decided
// later may have become visible: so a lease decided just before a Pause
// was applied may show after it, and the model does not hold leases to
// the flag (Stats and the reopened states check the flag itself).
func (n *lstate) lease(name string, count int, got []leaseOut) error {
	if len(got) > count {
		return fmt.Errorf("leased %d jobs, asked for %d", len(got), count)
	}
	var prev *mjob
	for _, l := range got {
		j := n.m.jobs[l.Tok.Job]
		if j == nil || j.queue != name || j.state != mPending || j.runAt > n.now {
			return fmt.Errorf("leased %v: job %d is not ready in queue %q", got, l.Tok.Job, name)
		}
		if prev != nil && !better(prev, j) {
			return fmt.Errorf("leased %v: job %d before job %d", got, prev.id, j.id)
		}
		n.m.leaseJob(j, n.now)
		want := leaseOut{Token{Job: j.id, Attempt: j.attempt, Lease: j.leases}, j.deadline, string(j.payload)}
		if l != want {
			return fmt.Errorf("leased %v, want %v", l, want)
		}
		prev = j
	}
	return nil
}

// better reports whether TryLease hands out a before b: higher priority,
// then earlier run-at, then lower ID.
func better(a, b *mjob) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.runAt != b.runAt {
		return a.runAt < b.runAt
	}
	return a.id < b.id
}

// token checks the error of a call on one lease. It returns the job when
// the call must have succeeded (and did).
func (n *lstate) token(tok Token, err error) (*mjob, error) {
	j, outcome := n.m.tokenOutcome(tok, n.now)
	switch outcome {
	case "ok":
		if err != nil {
			return nil, fmt.Errorf("error %v, want success", err)
		}
		return j, nil
	case "lost":
		if !errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseExpired) {
			return nil, fmt.Errorf("error %v, want ErrLeaseLost", err)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("the lease of job %d expired: the test must keep leases from expiring", tok.Job)
}

func (n *lstate) complete(op *lin, res *lout) error {
	j, err := n.token(op.tok, res.err)
	if j == nil || err != nil {
		return err
	}
	j.end(n.now, "completed", "")
	j.state, j.finished, j.result, j.hasResult = mCompleted, n.now, op.result, op.result != nil
	return n.enqueue(op.jobs, res.enq, false)
}

func (n *lstate) fail(op *lin, res *lout) error {
	j, err := n.token(op.tok, res.err)
	if j == nil || err != nil {
		return err
	}
	text, now := op.ferr.Error(), n.now
	switch {
	case op.failKind == "snooze":
		j.end(now, "released", "")
		j.state, j.attempt, j.runAt = mPending, j.attempt-1, now+int64(op.d)
	case op.failKind == "permanent" || j.attempt >= j.maxAttempts:
		j.end(now, "dead", text)
		j.state, j.finished = mDead, now
	case op.failKind == "retryAfter":
		j.end(now, "failed", text)
		j.state, j.runAt = mPending, now+int64(op.d)
	default:
		j.end(now, "failed", text)
		j.state, j.runAt = mPending, now+int64(n.m.backoff(j, j.attempt))
	}
	return nil
}

// batch checks the per-token errors of a batch call and returns the jobs
// whose token was current, in order, with their places in toks: a job
// named twice is lost the second time.
func (n *lstate) batch(toks []Token, res *lout) ([]*mjob, []int, error) {
	if res.err != nil {
		return nil, nil, fmt.Errorf("batch failed: %v", res.err)
	}
	if len(res.errs) != len(toks) {
		return nil, nil, fmt.Errorf("%d errors for %d tokens", len(res.errs), len(toks))
	}
	var ok []*mjob
	var idx []int
	seen := map[uint64]bool{}
	for i, tok := range toks {
		j, outcome := n.m.tokenOutcome(tok, n.now)
		if seen[tok.Job] {
			outcome = "lost"
		}
		e := res.errs[i]
		switch {
		case outcome == "ok" && e == nil:
			seen[tok.Job] = true
			ok = append(ok, j)
			idx = append(idx, i)
		case outcome == "lost" && errors.Is(e, ErrLeaseLost) && !errors.Is(e, ErrLeaseExpired):
		default:
			return nil, nil, fmt.Errorf("token %d %+v: %v, model says %s", i, tok, e, outcome)
		}
	}
	return ok, idx, nil
}

func (n *lstate) completeBatch(op *lin, res *lout) error {
	jobs, idx, err := n.batch(op.toks, res)
	if err != nil {
		return err
	}
	off := make([]int, len(op.cs)+1) // where each completion's follow-ups start in res.enq
	for i, c := range op.cs {
		off[i+1] = off[i] + len(c.Then)
	}
	if len(res.enq) != off[len(op.cs)] {
		return fmt.Errorf("%d follow-up lookups for %d follow-ups", len(res.enq), off[len(op.cs)])
	}
	var then []NewJob
	var got []Enqueued
	for k, j := range jobs {
		c := op.cs[idx[k]]
		j.end(n.now, "completed", "")
		j.state, j.finished, j.result, j.hasResult = mCompleted, n.now, c.Result, c.Result != nil
		then = append(then, c.Then...)
		got = append(got, res.enq[off[idx[k]]:off[idx[k]+1]]...)
	}
	return n.enqueue(then, got, true)
}

// stepIDs applies a call naming job IDs to one of the purge choices.
func stepIDs(n *lstate, op *lin, res *lout) error {
	if op.kind == opGet {
		j := n.m.jobs[op.ids[0]]
		if j == nil {
			if !errors.Is(res.err, ErrNotFound) {
				return fmt.Errorf("Get: %v, want ErrNotFound", res.err)
			}
			return nil
		}
		if res.err != nil {
			return fmt.Errorf("Get: %v, want job %d", res.err, j.id)
		}
		if d := j.diff(res.job, n.now, true); len(d) > 0 {
			return fmt.Errorf("Get(%d) differs: %s", j.id, strings.Join(d, "; "))
		}
		return nil
	}
	var ok func(*mjob) bool
	switch op.kind {
	case opPurge:
		ok = func(j *mjob) bool { return j.state.terminal() }
	case opRequeue:
		ok = func(j *mjob) bool { return j.state == mDead }
	default:
		ok = func(j *mjob) bool { return j.state == mPending }
	}
	seen := map[uint64]bool{}
	var jobs []*mjob
	var want error
	for _, id := range op.ids {
		j := n.m.jobs[id]
		if seen[id] {
			continue
		}
		if j == nil {
			want = ErrNotFound
			break
		}
		if !ok(j) {
			want = ErrState
			break
		}
		seen[id] = true
		jobs = append(jobs, j)
	}
	if (want == nil && res.err != nil) || (want != nil && !errors.Is(res.err, want)) {
		return fmt.Errorf("%v, want %v", res.err, want)
	}
	if want != nil {
		return nil
	}
	for _, j := range jobs {
		switch op.kind {
		case opPurge:
			delete(n.m.jobs, j.id)
		case opCancel:
			j.state, j.finished = mCancelled, n.now
		case opRequeue:
			j.state, j.attempt, j.runAt = mPending, 0, n.now+int64(op.ropts.Delay)
			j.history = append(j.history, mattempt{started: n.now, ended: n.now, outcome: "requeued"})
			if op.ropts.Queue != "" {
				j.queue = op.ropts.Queue
			}
		}
	}
	return nil
}

// listing checks a list of every job (Jobs, or a reopened queue's with
// payloads when full) and removes the limbo jobs it lacks.
func (n *lstate) listing(got []*Job, full bool) error {
	listed := map[uint64]bool{}
	for _, g := range got {
		j := n.m.jobs[g.ID]
		if j == nil {
			return fmt.Errorf("job %d (%s) is listed; the model has no such job", g.ID, g.State)
		}
		if d := j.diff(g, n.now, full); len(d) > 0 {
			return fmt.Errorf("job %d differs: %s", g.ID, strings.Join(d, "; "))
		}
		listed[g.ID] = true
	}
	for _, id := range n.m.ids() {
		if listed[id] {
			continue
		}
		if !n.limbo(n.m.jobs[id]) {
			return fmt.Errorf("job %d (%s) is missing", id, n.m.jobs[id].state)
		}
		delete(n.m.jobs, id)
	}
	return nil
}

// stats checks per-queue counts; completed and cancelled counts may lack
// limbo jobs, which stay unresolved.
func (n *lstate) stats(got map[string]QueueStats) error {
	want := n.m.counts(n.now)
	limbo := map[string]QueueStats{}
	for _, j := range n.m.jobs {
		if n.limbo(j) {
			l := limbo[j.queue]
			if j.state == mCompleted {
				l.Completed++
			} else {
				l.Cancelled++
			}
			limbo[j.queue] = l
		}
	}
	names := slices.Collect(maps.Keys(want))
	for name := range got {
		names = append(names, name)
	}
	for _, name := range names {
		g, w, l := got[name], want[name], limbo[name]
		g.Metrics, g.OldestReady = Metrics{}, 0
		ok := g.Ready == w.Ready && g.Scheduled == w.Scheduled && g.Leased == w.Leased && g.Dead == w.Dead &&
			g.Paused == w.Paused &&
			g.Completed <= w.Completed && g.Completed >= w.Completed-l.Completed &&
			g.Cancelled <= w.Cancelled && g.Cancelled >= w.Cancelled-l.Cancelled
		if !ok {
			return fmt.Errorf("Stats of %q = %+v, want %+v (less up to %d completed, %d cancelled in limbo)",
				name, g, w, l.Completed, l.Cancelled)
		}
	}
	return nil
}

// dead checks the dead-letter listing: oldest death first.
func (n *lstate) dead(got []*Job) error {
	var want []uint64
	for _, id := range n.m.idsIn(mDead) {
		want = append(want, id)
	}
	slices.SortStableFunc(want, func(a, b uint64) int {
		return int(n.m.jobs[a].finished - n.m.jobs[b].finished)
	})
	var ids []uint64
	for _, j := range got {
		ids = append(ids, j.ID)
		if mj := n.m.jobs[j.ID]; mj != nil {
			if d := mj.diff(j, n.now, false); len(d) > 0 {
				return fmt.Errorf("dead job %d differs: %s", j.ID, strings.Join(d, "; "))
			}
		}
	}
	if !slices.Equal(ids, want) {
		return fmt.Errorf("Dead lists %v, want %v", ids, want)
	}
	return nil
}

// reopened checks what a queue reopened from the directory (a power-cut
// image, or the directory after Close) holds: the state with every lease
// voided, at the clock the copy was taken.
func (n *lstate) reopened(op *lin, res *lout) error {
	if res.err != nil {
		return fmt.Errorf("reopen: %v", res.err)
	}
	v := n.clone()
	v.m.voidAll(n.now)
	if err := v.listing(res.jobs, true); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(v.m.paused)) {
		if v.m.paused[name] != res.paused[name] {
			return fmt.Errorf("queue %q paused %v, want %v", name, res.paused[name], v.m.paused[name])
		}
	}
	for name, p := range res.paused {
		if p && !v.m.paused[name] {
			return fmt.Errorf("queue %q paused, want not paused", name)
		}
	}
	// What the reopened queue lacks of the limbo jobs is gone from the
	// live state too: a purge in the log is applied or in flight.
	for id := range n.m.jobs {
		if v.m.jobs[id] == nil {
			delete(n.m.jobs, id)
		}
	}
	return nil
}
