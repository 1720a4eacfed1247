package queue

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"pgregory.net/rapid"
)

// The calls TestModel makes on several jobs or leases at once.

// leaseN leases up to n jobs at once: the best ready ones, in order.
func (h *harness) leaseN(t *rapid.T) {
	name := rapid.SampledFrom([]string{DefaultQueue, "b"}).Draw(t, "queue")
	n := rapid.IntRange(1, 4).Draw(t, "n")
	now := h.now()
	ls, err := h.q.TryLeaseN(h.ctx, name, n)
	if err != nil {
		t.Fatalf("TryLeaseN(%q, %d): %v", name, n, err)
	}
	h.m.reap(now)
	var want []Token
	for len(want) < n {
		j := h.m.nextReady(name, now)
		if j == nil {
			break
		}
		h.m.leaseJob(j, now)
		want = append(want, Token{Job: j.id, Attempt: j.attempt, Lease: j.leases})
	}
	var got []Token
	for _, l := range ls {
		got = append(got, l.Token)
		if j := h.m.jobs[l.Token.Job]; j == nil || string(l.Job.Payload) != string(j.payload) || nsOf(l.Deadline) != j.deadline {
			t.Fatalf("TryLeaseN(%q, %d): lease %+v has the wrong payload or deadline", name, n, l.Token)
		}
	}
	t.Logf("TryLeaseN(%q, %d) = %+v (model: %+v)", name, n, got, want)
	if !slices.Equal(got, want) {
		t.Fatalf("TryLeaseN(%q, %d) = %+v, want %+v", name, n, got, want)
	}
	h.tokens = append(h.tokens, got...)
	h.cov[fmt.Sprintf("leaseN: %d of %d", len(got), n)]++
}

// batchOutcomes predicts a batch call on tokens: each is ok, expired or
// lost on its own, and a job named twice is lost the second time.
func (h *harness) batchOutcomes(toks []Token, now int64) ([]*mjob, []string) {
	jobs := make([]*mjob, len(toks))
	outs := make([]string, len(toks))
	seen := map[uint64]bool{}
	for i, tok := range toks {
		jobs[i], outs[i] = h.m.tokenOutcome(tok, now)
		if seen[tok.Job] {
			outs[i] = "lost"
		}
		if outs[i] != "lost" {
			seen[tok.Job] = true
		}
	}
	return jobs, outs
}

func (h *harness) checkBatchErrs(t *rapid.T, call string, errs []error, err error, outs []string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	if len(errs) != len(outs) {
		t.Fatalf("%s: %d errors for %d tokens", call, len(errs), len(outs))
	}
	for i, out := range outs {
		e := errs[i]
		h.cov["batch token: "+out]++
		ok := (out == "ok" && e == nil) || (out == "expired" && errors.Is(e, ErrLeaseExpired)) ||
			(out == "lost" && errors.Is(e, ErrLeaseLost) && !errors.Is(e, ErrLeaseExpired))
		if !ok {
			t.Fatalf("%s: token %d: %v, model says %s", call, i, e, out)
		}
	}
}

// completeBatch completes several leases in one entry, some with a
// follow-up job; stale and expired tokens fail alone.
func (h *harness) completeBatch(t *rapid.T) {
	n := rapid.IntRange(1, 3).Draw(t, "completions")
	cs := make([]Completion, n)
	toks := make([]Token, n)
	for i := range cs {
		toks[i] = h.drawToken(t)
		h.seq++
		cs[i] = Completion{Token: toks[i], Result: []byte(fmt.Sprintf("batch result %d", h.seq))}
		if rapid.IntRange(0, 2).Draw(t, "followUp") == 0 {
			cs[i].Then = []NewJob{h.drawJob(t, "then")}
		}
	}
	model := make([][]NewJob, n)
	for i := range cs {
		model[i] = slices.Clone(cs[i].Then)
	}
	now := h.now()
	jobs, outs := h.batchOutcomes(toks, now)
	// Follow-ups are not returned by CompleteBatch: collect the new jobs
	// from the listing and check them against the model's expectations.
	before := h.m.maxID
	errs, err := h.q.CompleteBatch(h.ctx, cs)
	call := fmt.Sprintf("CompleteBatch(%+v)", toks)
	t.Logf("%s = %v, %v (model: %v)", call, errs, err, outs)
	h.checkBatchErrs(t, call, errs, err, outs)
	var then []NewJob
	for i, out := range outs {
		j := jobs[i]
		switch out {
		case "expired":
			h.m.expire(j, now, "~lease expired")
		case "ok":
			if h.completed[j.id] {
				t.Fatalf("job %d completed twice", j.id)
			}
			h.completed[j.id] = true
			j.end(now, "completed", "")
			j.state, j.finished, j.result, j.hasResult = mCompleted, now, cs[i].Result, true
			then = append(then, model[i]...)
		}
	}
	h.m.enqueue(t, then, h.followUps(t, then, before), now)
}

// followUps reconstructs what enqueueing then returned from the queue's
// listing: new jobs got the IDs after before, in order; a duplicate is the
// key's holder.
func (h *harness) followUps(t *rapid.T, then []NewJob, before uint64) []Enqueued {
	jobs, err := h.q.Jobs(h.ctx, JobFilter{AfterID: before})
	if err != nil {
		t.Fatal(err)
	}
	var out []Enqueued
	next := 0
	inBatch := map[string]uint64{}
	for _, nj := range then {
		if id, ok := inBatch[nj.Key]; ok && nj.Key != "" {
			out = append(out, Enqueued{ID: id, Duplicate: true})
			continue
		}
		if nj.Key != "" {
			if hj := h.m.keyHolder(nj.Key); hj != nil && !h.m.retentionOver(hj, h.now()) {
				out = append(out, Enqueued{ID: hj.id, Duplicate: true})
				continue
			}
		}
		if next >= len(jobs) {
			t.Fatalf("follow-up job %q (key %q) was not created", nj.Payload, nj.Key)
		}
		out = append(out, Enqueued{ID: jobs[next].ID})
		if nj.Key != "" {
			inBatch[nj.Key] = jobs[next].ID
		}
		next++
	}
	if next != len(jobs) {
		t.Fatalf("%d follow-up jobs created, the model expects %d", len(jobs), next)
	}
	return out
}

// extendBatch extends several leases in one entry.
func (h *harness) extendBatch(t *rapid.T) {
	n := rapid.IntRange(1, 3).Draw(t, "tokens")
	toks := make([]Token, n)
	for i := range toks {
		toks[i] = h.drawToken(t)
	}
	d := time.Duration(rapid.SampledFrom([]int{0, 10, 90}).Draw(t, "extendSec")) * time.Second
	now := h.now()
	jobs, outs := h.batchOutcomes(toks, now)
	errs, err := h.q.ExtendBatch(h.ctx, toks, d)
	call := fmt.Sprintf("ExtendBatch(%+v, %v)", toks, d)
	t.Logf("%s = %v, %v (model: %v)", call, errs, err, outs)
	h.checkBatchErrs(t, call, errs, err, outs)
	if d == 0 {
		d = h.opts.LeaseDuration
	}
	for i, out := range outs {
		switch out {
		case "expired":
			h.m.expire(jobs[i], now, "~lease expired")
		case "ok":
			jobs[i].deadline = now + int64(d)
		}
	}
}
