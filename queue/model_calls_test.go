package queue

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"pgregory.net/rapid"
)

// The calls TestModel makes one at a time, each checked against the
// model's prediction and then applied to the model.

func (h *harness) drawJob(t *rapid.T, label string) NewJob {
	h.seq++
	size := rapid.SampledFrom([]int{0, 1, 40, 300, 1500}).Draw(t, label+".size")
	payload := []byte(strings.Repeat(fmt.Sprintf("job%d.", h.seq), size/5+1))[:size]
	nj := NewJob{
		Queue:       rapid.SampledFrom([]string{"", "b"}).Draw(t, label+".queue"),
		Key:         rapid.SampledFrom(modelKeys).Draw(t, label+".key"),
		Payload:     payload,
		Priority:    int32(rapid.IntRange(-1, 1).Draw(t, label+".priority")),
		MaxAttempts: rapid.SampledFrom([]int{0, 0, 1, 2, 4}).Draw(t, label+".maxAttempts"),
		Delay:       time.Duration(rapid.SampledFrom([]int{0, 0, 2, 45}).Draw(t, label+".delaySec")) * time.Second,
	}
	if rapid.IntRange(0, 3).Draw(t, label+".ownBackoff") == 0 {
		nj.Backoff = &Backoff{Base: 3 * time.Second, Cap: 10 * time.Second}
	}
	nj.Group = rapid.SampledFrom([]string{"", "", "g1", "g2"}).Draw(t, label+".group")
	return nj
}

func (h *harness) enqueue(t *rapid.T) {
	nj := h.drawJob(t, "job")
	now := h.now()
	got, err := h.q.Enqueue(h.ctx, nj)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	t.Logf("Enqueue(queue %q key %q) = %+v", nj.Queue, nj.Key, got)
	h.m.enqueue(t, []NewJob{nj}, []Enqueued{got}, now)
}

func (h *harness) enqueueBatch(t *rapid.T) { h.enqueueN(t, rapid.IntRange(1, 4).Draw(t, "batch")) }

func (h *harness) enqueueN(t *rapid.T, n int) {
	if n == 0 {
		return
	}
	njs := make([]NewJob, n)
	for i := range njs {
		njs[i] = h.drawJob(t, fmt.Sprintf("job%d", i))
	}
	model := slices.Clone(njs) // EnqueueBatch may fill in defaults
	now := h.now()
	got, err := h.q.EnqueueBatch(h.ctx, njs)
	if err != nil {
		t.Fatalf("EnqueueBatch: %v", err)
	}
	t.Logf("EnqueueBatch(%d jobs) = %+v", n, got)
	h.m.enqueue(t, model, got, now)
}

// work leases a job and at once completes or fails it, as a worker would.
func (h *harness) work(t *rapid.T) {
	if !h.lease(t) {
		return
	}
	tok := h.tokens[len(h.tokens)-1]
	if rapid.Bool().Draw(t, "completeIt") {
		h.completeToken(t, tok)
	} else {
		h.failToken(t, tok)
	}
}

// lease calls TryLease and reports whether it leased a job.
func (h *harness) lease(t *rapid.T) bool {
	// Mostly a queue with a job ready (if any), else any queue.
	names := []string{DefaultQueue, "b", "c"}
	now := h.now()
	var ready []string
	for _, n := range names {
		if h.m.nextReady(n, now) != nil {
			ready = append(ready, n)
		}
	}
	if len(ready) > 0 && rapid.IntRange(0, 3).Draw(t, "readyQueue") > 0 {
		names = ready
	}
	name := rapid.SampledFrom(names).Draw(t, "queue")
	l, err := h.q.TryLease(h.ctx, name)
	h.m.reap(now)
	want := h.m.nextReady(name, now)
	if want == nil {
		if !errors.Is(err, ErrNoJob) {
			t.Fatalf("TryLease(%q) = %v, want ErrNoJob (lease %+v)", name, err, leaseInfo(l))
		}
		t.Logf("TryLease(%q) = ErrNoJob", name)
		h.cov["lease: none ready"]++
		return false
	}
	if err != nil {
		t.Fatalf("TryLease(%q): %v, want job %d", name, err, want.id)
	}
	h.m.leaseJob(want, now)
	wantTok := Token{Job: want.id, Attempt: want.attempt, Lease: want.leases}
	t.Logf("TryLease(%q) = %+v", name, l.Token)
	if l.Token != wantTok || nsOf(l.Deadline) != want.deadline || string(l.Job.Payload) != string(want.payload) {
		t.Fatalf("TryLease(%q) = token %+v deadline %v payload %.20q, want %+v %v %.20q",
			name, l.Token, l.Deadline, l.Job.Payload, wantTok, time.Unix(0, want.deadline), want.payload)
	}
	h.tokens = append(h.tokens, l.Token)
	h.cov[fmt.Sprintf("lease: attempt %d", l.Token.Attempt)]++
	return true
}

func leaseInfo(l *Lease) any {
	if l == nil {
		return nil
	}
	return l.Token
}

// drawToken picks a token: mostly a current lease's, else any token ever
// handed out (stale ones), else one for a job that does not exist.
func (h *harness) drawToken(t *rapid.T) Token {
	var cur []Token
	for _, id := range h.m.idsIn(mLeased) {
		j := h.m.jobs[id]
		cur = append(cur, Token{Job: id, Attempt: j.attempt, Lease: j.leases})
	}
	switch k := rapid.IntRange(0, 9).Draw(t, "tokenKind"); {
	case k < 6 && len(cur) > 0:
		return cur[rapid.IntRange(0, len(cur)-1).Draw(t, "current")]
	case k < 9 && len(h.tokens) > 0:
		return h.tokens[rapid.IntRange(0, len(h.tokens)-1).Draw(t, "old")]
	}
	return Token{Job: h.m.maxID + 7, Attempt: 1, Lease: 1}
}

// checkTokenErr checks a call's error against the model's prediction for
// its token; it reports whether the call succeeded.
func (h *harness) checkTokenErr(t *rapid.T, call string, err error, j *mjob, outcome string, now int64) bool {
	t.Helper()
	switch outcome {
	case "lost":
		if !errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("%s = %v, want ErrLeaseLost (stale token)", call, err)
		}
	case "expired":
		if !errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("%s = %v, want ErrLeaseExpired", call, err)
		}
		h.m.expire(j, now, "~lease expired")
	default:
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		return true
	}
	return false
}

func (h *harness) complete(t *rapid.T) { h.completeToken(t, h.drawToken(t)) }

func (h *harness) completeToken(t *rapid.T, tok Token) {
	h.seq++
	var result []byte
	switch rapid.IntRange(0, 2).Draw(t, "result") {
	case 1:
		result = []byte{}
	case 2:
		result = []byte(fmt.Sprintf("result %d", h.seq))
	}
	var then []NewJob
	if rapid.Bool().Draw(t, "followUp") {
		then = []NewJob{h.drawJob(t, "then")}
	}
	model := slices.Clone(then)
	now := h.now()
	j, outcome := h.m.tokenOutcome(tok, now)
	res, err := h.q.CompleteAndEnqueue(h.ctx, tok, result, then)
	call := fmt.Sprintf("CompleteAndEnqueue(%+v, %q, %d follow-ups)", tok, result, len(then))
	t.Logf("%s = %v (model: %s)", call, err, outcome)
	h.cov[strings.Fields(call)[0][:4]+": "+outcome]++
	if !h.checkTokenErr(t, call, err, j, outcome, now) {
		return
	}
	if h.completed[j.id] {
		t.Fatalf("job %d completed twice", j.id)
	}
	h.completed[j.id] = true
	j.end(now, "completed", "")
	j.state, j.finished, j.result, j.hasResult = mCompleted, now, result, result != nil
	h.m.enqueue(t, model, res, now)
}

func (h *harness) fail(t *rapid.T) { h.failToken(t, h.drawToken(t)) }

func (h *harness) failToken(t *rapid.T, tok Token) {
	h.seq++
	inner := fmt.Errorf("boom %d", h.seq)
	kind := rapid.SampledFrom([]string{"error", "error", "permanent", "retryAfter", "snooze"}).Draw(t, "failure")
	d := time.Duration(rapid.IntRange(1, 90).Draw(t, "delaySec")) * time.Second
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
	now := h.now()
	j, outcome := h.m.tokenOutcome(tok, now)
	err := h.q.Fail(h.ctx, tok, ferr)
	call := fmt.Sprintf("Fail(%+v, %s %q)", tok, kind, ferr)
	t.Logf("%s = %v (model: %s)", call, err, outcome)
	h.cov[strings.Fields(call)[0][:4]+": "+outcome]++
	if !h.checkTokenErr(t, call, err, j, outcome, now) {
		return
	}
	text := ferr.Error()
	h.cov["fail: "+kind]++
	switch {
	case kind == "snooze":
		j.end(now, "released", "")
		j.state, j.attempt, j.runAt = mPending, j.attempt-1, now+int64(d)
	case kind == "permanent" || j.attempt >= j.maxAttempts:
		j.end(now, "dead", text)
		j.state, j.finished = mDead, now
	case kind == "retryAfter":
		j.end(now, "failed", text)
		j.state, j.runAt = mPending, now+int64(d)
	default:
		j.end(now, "failed", text)
		j.state, j.runAt = mPending, now+int64(h.m.backoff(j, j.attempt))
	}
}

func (h *harness) extend(t *rapid.T) {
	tok := h.drawToken(t)
	d := time.Duration(rapid.SampledFrom([]int{0, 10, 90}).Draw(t, "extendSec")) * time.Second
	now := h.now()
	j, outcome := h.m.tokenOutcome(tok, now)
	deadline, err := h.q.Extend(h.ctx, tok, d)
	call := fmt.Sprintf("Extend(%+v, %v)", tok, d)
	t.Logf("%s = %v (model: %s)", call, err, outcome)
	h.cov[strings.Fields(call)[0][:4]+": "+outcome]++
	if !h.checkTokenErr(t, call, err, j, outcome, now) {
		return
	}
	if d == 0 {
		d = h.opts.LeaseDuration
	}
	j.deadline = now + int64(d)
	if nsOf(deadline) != j.deadline {
		t.Fatalf("%s returned deadline %v, want %v", call, deadline, time.Unix(0, j.deadline))
	}
}

func (h *harness) release(t *rapid.T) {
	tok := h.drawToken(t)
	now := h.now()
	j, outcome := h.m.tokenOutcome(tok, now)
	err := h.q.Release(h.ctx, tok)
	call := fmt.Sprintf("Release(%+v)", tok)
	t.Logf("%s = %v (model: %s)", call, err, outcome)
	h.cov[strings.Fields(call)[0][:4]+": "+outcome]++
	if !h.checkTokenErr(t, call, err, j, outcome, now) {
		return
	}
	j.end(now, "released", "")
	j.state, j.attempt, j.runAt = mPending, j.attempt-1, now
}

func (h *harness) advance(t *rapid.T) {
	var d time.Duration
	if rapid.IntRange(0, 9).Draw(t, "big") == 0 {
		d = time.Duration(rapid.IntRange(1, 12).Draw(t, "minutes")) * time.Minute
	} else {
		d = time.Duration(rapid.IntRange(0, 40_000).Draw(t, "ms")) * time.Millisecond
	}
	h.mc.Add(d)
	t.Logf("clock +%v", d)
	h.afterAdvance(t)
}

// afterAdvance may make a call right after the clock moved, before the
// check that follows every step looks at the queue (and so records the
// expiry of every lease that ran out): this is how calls meet leases whose
// deadline passed unnoticed.
func (h *harness) afterAdvance(t *rapid.T) {
	ops := []func(*rapid.T){nil, h.work, h.complete, h.fail, h.extend, h.release, h.completeBatch, h.extendBatch}
	if op := ops[rapid.IntRange(0, len(ops)-1).Draw(t, "thenCall")]; op != nil {
		op(t)
	}
}

// advanceToNext moves the clock to the next moment something is due (a
// run-at, a lease deadline, the end of a retention), give or take 1ns, to
// test the boundaries.
func (h *harness) advanceToNext(t *rapid.T) {
	now := h.now()
	var next []int64
	for _, j := range h.m.jobs {
		for _, at := range []int64{j.runAt, j.deadline, j.finished + int64(h.m.retention)} {
			if at > now {
				next = append(next, at)
			}
		}
	}
	if len(next) == 0 {
		t.Logf("advanceToNext: nothing due")
		return
	}
	target := slices.Min(next) + int64(rapid.IntRange(-1, 1).Draw(t, "offsetNs"))
	if target > now {
		h.mc.Add(time.Duration(target - now))
		t.Logf("clock +%v (to the next due time %+d ns)", time.Duration(target-now), target-slices.Min(next))
	}
	h.afterAdvance(t)
}

// drawIDs picks one or two job IDs: mostly of jobs in the given states,
// sometimes any ID ever used or one never used.
func (h *harness) drawIDs(t *rapid.T, states ...mstate) []uint64 {
	n := rapid.IntRange(1, 2).Draw(t, "ids")
	ids := make([]uint64, n)
	pref := h.m.idsIn(states...)
	for i := range ids {
		if len(pref) > 0 && rapid.IntRange(0, 3).Draw(t, "preferred") > 0 {
			ids[i] = pref[rapid.IntRange(0, len(pref)-1).Draw(t, "pick")]
		} else {
			ids[i] = rapid.Uint64Range(1, h.m.maxID+1).Draw(t, "anyID")
		}
	}
	return ids
}

// changeOutcome predicts a bulk call (Requeue, Purge, Cancel): every ID
// must exist and be in an accepted state, or the call fails as a whole with
// ErrNotFound or ErrState for the first that is not.
func (h *harness) changeOutcome(ids []uint64, ok func(*mjob) bool) ([]*mjob, error) {
	seen := map[uint64]bool{}
	var jobs []*mjob
	for _, id := range ids {
		if seen[id] {
			continue
		}
		j := h.m.jobs[id]
		if j == nil {
			return nil, ErrNotFound
		}
		if !ok(j) {
			return nil, ErrState
		}
		seen[id] = true
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func (h *harness) checkChange(t *rapid.T, call string, err, want error) bool {
	t.Helper()
	t.Logf("%s = %v (model: %v)", call, err, want)
	h.cov[fmt.Sprintf("%s: %v", call[:strings.Index(call, "(")], want)]++
	if want == nil && err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", call, err, want)
	}
	return err == nil
}

func (h *harness) requeue(t *rapid.T) {
	ids := h.drawIDs(t, mDead)
	opts := RequeueOptions{
		Queue: rapid.SampledFrom([]string{"", "", "b", "c"}).Draw(t, "toQueue"),
		Delay: time.Duration(rapid.SampledFrom([]int{0, 5}).Draw(t, "delaySec")) * time.Second,
	}
	now := h.now()
	jobs, want := h.changeOutcome(ids, func(j *mjob) bool { return j.state == mDead })
	err := h.q.Requeue(h.ctx, ids, opts)
	if !h.checkChange(t, fmt.Sprintf("Requeue(%v, %+v)", ids, opts), err, want) {
		return
	}
	for _, j := range jobs {
		j.state, j.attempt, j.runAt = mPending, 0, now+int64(opts.Delay)
		// The timeline keeps the old attempts and marks the restart.
		j.history = append(j.history, mattempt{started: now, ended: now, outcome: "requeued"})
		if opts.Queue != "" {
			j.queue = opts.Queue
		}
	}
}

func (h *harness) cancel(t *rapid.T) {
	ids := h.drawIDs(t, mPending)[:1]
	now := h.now()
	jobs, want := h.changeOutcome(ids, func(j *mjob) bool { return j.state == mPending })
	err := h.q.Cancel(h.ctx, ids[0])
	if !h.checkChange(t, fmt.Sprintf("Cancel(%d)", ids[0]), err, want) {
		return
	}
	jobs[0].state, jobs[0].finished = mCancelled, now
}

func (h *harness) purge(t *rapid.T) {
	ids := h.drawIDs(t, mCompleted, mDead, mCancelled)
	jobs, want := h.changeOutcome(ids, func(j *mjob) bool { return j.state.terminal() })
	err := h.q.Purge(h.ctx, ids)
	if !h.checkChange(t, fmt.Sprintf("Purge(%v)", ids), err, want) {
		return
	}
	for _, j := range jobs {
		delete(h.m.jobs, j.id)
	}
}

func (h *harness) pause(t *rapid.T) {
	name := queueName(rapid.SampledFrom([]string{"", "b"}).Draw(t, "queue"))
	pause := rapid.Bool().Draw(t, "pause")
	var err error
	if pause {
		err = h.q.Pause(h.ctx, name)
	} else {
		err = h.q.Resume(h.ctx, name)
	}
	t.Logf("pause(%q, %v) = %v", name, pause, err)
	if err != nil {
		t.Fatal(err)
	}
	h.m.paused[name] = pause
}
