package queue

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"pgregory.net/rapid"
)

// This file holds the model TestModel checks the queue against: what a job
// queue with walq's documented semantics should contain after any sequence
// of calls, written as plainly as possible (maps and loops, no heaps, no
// log). model_test.go drives the real queue and the model side by side.

// mstate is a job's state in the model.
type mstate int

const (
	mPending mstate = iota + 1
	mLeased
	mCompleted
	mDead
	mCancelled
)

func (s mstate) String() string {
	return [...]string{"?", "pending", "leased", "completed", "dead", "cancelled"}[s]
}

func (s mstate) terminal() bool { return s == mCompleted || s == mDead || s == mCancelled }

// mattempt is one attempt in a model job's history. An err starting with
// "~" is a substring the queue's own (generated) text must contain.
type mattempt struct {
	started, ended int64
	outcome        string
	err            string
}

// mjob is one job of the model.
type mjob struct {
	id          uint64
	queue       string
	key         string
	payload     []byte
	priority    int32
	maxAttempts int
	backoff     *Backoff // per-job override, nil for the queue's
	created     int64
	group       string

	state     mstate
	runAt     int64 // pending jobs: when ready
	attempt   int
	leases    int   // leases ever taken: the Lease of the next token
	deadline  int64 // leased jobs
	lastErr   string
	finished  int64
	result    []byte
	hasResult bool
	history   []mattempt
}

// model is the expected content of the queue.
type model struct {
	jobs      map[uint64]*mjob
	paused    map[string]bool
	maxID     uint64 // the largest job ID ever handed out
	retention time.Duration
	lease     time.Duration
	attempts  int // Options.MaxAttempts
	cov       coverage
}

func newModel(o *Options) *model {
	return &model{jobs: map[uint64]*mjob{}, paused: map[string]bool{},
		retention: o.KeyRetention, lease: o.LeaseDuration, attempts: o.MaxAttempts}
}

func queueName(s string) string {
	if s == "" {
		return DefaultQueue
	}
	return s
}

// ids returns the model's job IDs in order.
func (m *model) ids() []uint64 {
	out := make([]uint64, 0, len(m.jobs))
	for id := range m.jobs {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// idsIn returns the IDs of the jobs in one of the states, in order.
func (m *model) idsIn(states ...mstate) []uint64 {
	var out []uint64
	for _, id := range m.ids() {
		if slices.Contains(states, m.jobs[id].state) {
			out = append(out, id)
		}
	}
	return out
}

func (m *model) keyHolder(key string) *mjob {
	for _, j := range m.jobs {
		if j.key == key {
			return j
		}
	}
	return nil
}

func (m *model) retentionOver(j *mjob, now int64) bool {
	return (j.state == mCompleted || j.state == mCancelled) && j.finished+int64(m.retention) <= now
}

// enqueue checks what EnqueueBatch (or the follow-ups of a completion)
// returned for njs against the model and applies it: a key held by a job
// inside its retention is a duplicate of that job; a key whose job is past
// retention purges that job; a key repeated in one call yields one job.
func (m *model) enqueue(t *rapid.T, njs []NewJob, got []Enqueued, now int64) {
	t.Helper()
	if len(got) != len(njs) {
		t.Fatalf("%d results for %d jobs", len(got), len(njs))
	}
	inBatch := map[string]uint64{}
	for i, nj := range njs {
		if nj.Key != "" {
			if id, ok := inBatch[nj.Key]; ok {
				wantEnqueued(t, i, got[i], Enqueued{ID: id, Duplicate: true})
				m.cov["enqueue: duplicate in batch"]++
				continue
			}
			if h := m.keyHolder(nj.Key); h != nil {
				if !m.retentionOver(h, now) {
					wantEnqueued(t, i, got[i], Enqueued{ID: h.id, Duplicate: true})
					m.cov["enqueue: duplicate of a "+h.state.String()+" job"]++
					continue
				}
				m.cov["enqueue: key reused after retention"]++
				delete(m.jobs, h.id)
			}
		}
		if got[i].Duplicate || got[i].ID <= m.maxID {
			t.Fatalf("job %d: got %+v, want a new job with an ID above %d (IDs are never reused)", i, got[i], m.maxID)
		}
		m.maxID = got[i].ID
		maxAttempts := nj.MaxAttempts
		if maxAttempts == 0 {
			maxAttempts = m.attempts
		}
		m.jobs[got[i].ID] = &mjob{
			id: got[i].ID, queue: queueName(nj.Queue), key: nj.Key, payload: nj.Payload,
			priority: nj.Priority, maxAttempts: maxAttempts, backoff: nj.Backoff, created: now,
			state: mPending, runAt: now + int64(nj.Delay), group: nj.Group,
		}
		if nj.Key != "" {
			inBatch[nj.Key] = got[i].ID
		}
	}
}

func wantEnqueued(t *rapid.T, i int, got, want Enqueued) {
	t.Helper()
	if got != want {
		t.Fatalf("job %d: got %+v, want %+v", i, got, want)
	}
}

// nextReady returns the job TryLease must hand out from the named queue:
// highest priority, then earliest run-at, then lowest ID, among the ready
// jobs whose group (if any) has no job leased and no unfinished job with a
// lower ID; nil if none is ready or the queue is paused.
func (m *model) nextReady(name string, now int64) *mjob {
	if m.paused[name] {
		return nil
	}
	var best *mjob
	for _, j := range m.jobs {
		if j.state != mPending || j.queue != name || j.runAt > now || !m.groupTurn(j) {
			continue
		}
		if best == nil || j.priority > best.priority ||
			(j.priority == best.priority && (j.runAt < best.runAt || (j.runAt == best.runAt && j.id < best.id))) {
			best = j
		}
	}
	return best
}

// groupTurn reports whether it is pending job j's turn in its group: no
// other unfinished job of the group is leased or has a lower ID.
func (m *model) groupTurn(j *mjob) bool {
	if j.group == "" {
		return true
	}
	for _, o := range m.jobs {
		if o != j && o.group == j.group && !o.state.terminal() && (o.state == mLeased || o.id < j.id) {
			return false
		}
	}
	return true
}

func (m *model) leaseJob(j *mjob, now int64) {
	j.state = mLeased
	j.attempt++
	j.leases++
	j.deadline = now + int64(m.lease)
	j.history = append(j.history, mattempt{started: now})
}

// end closes the running attempt of a leased job.
func (j *mjob) end(now int64, outcome, err string) {
	h := &j.history[len(j.history)-1]
	h.ended, h.outcome, h.err = now, outcome, err
	if err != "" {
		j.lastErr = err
	}
	j.deadline = 0
}

// reap ends every lease whose deadline is at or before now, as TryLease does
// before it looks for work.
func (m *model) reap(now int64) {
	for _, id := range m.idsIn(mLeased) {
		if j := m.jobs[id]; j.deadline <= now {
			m.expire(j, now, "~lease expired")
		}
	}
}

// expire ends a lease that ran out (or whose process died): the attempt
// counts; the job is ready at once, or dead without attempts left (the
// poison-pill rule).
func (m *model) expire(j *mjob, now int64, why string) {
	m.cov["lease ended: "+why[1:]]++
	if j.attempt >= j.maxAttempts {
		m.cov["dead: "+why[1:]]++
		if why == "~process exited" {
			why = "~poison pill"
		}
		j.end(now, "dead", why)
		j.state, j.finished = mDead, now
		return
	}
	j.end(now, "expired", why)
	j.state, j.runAt = mPending, now
}

// voidAll is what Open does to the leases of a crashed or closed queue. It
// returns how many leases were voided and how many jobs died of it.
func (m *model) voidAll(now int64) (voided, poison int) {
	for _, id := range m.idsIn(mLeased) {
		j := m.jobs[id]
		voided++
		if j.attempt >= j.maxAttempts {
			poison++
		}
		m.expire(j, now, "~process exited")
	}
	return voided, poison
}

// backoff is the delay after failed attempt n: base·2^(n-1), at most cap,
// no jitter.
func (m *model) backoff(j *mjob, n int) time.Duration {
	base, limit := time.Second, time.Hour
	if j.backoff != nil {
		base, limit = j.backoff.Base, j.backoff.Cap
		if limit < base {
			limit = base
		}
	}
	d := base << (n - 1)
	if d > limit || d <= 0 {
		d = limit
	}
	return d
}

// tokenOutcome says what the queue must do with a call carrying tok: ok,
// expired (recorded as such) or lost (nothing changes). A token names one
// lease: a token of an earlier lease is stale even when the attempt number
// was given back (release, snooze) or reset (requeue).
func (m *model) tokenOutcome(tok Token, now int64) (j *mjob, outcome string) {
	j = m.jobs[tok.Job]
	if j == nil || j.state != mLeased || j.attempt != tok.Attempt || j.leases != tok.Lease {
		return j, "lost"
	}
	if now >= j.deadline {
		return j, "expired"
	}
	return j, "ok"
}

// publicState is the state Jobs and Get report at now.
func (j *mjob) publicState(now int64) JobState {
	switch j.state {
	case mPending:
		if j.runAt > now {
			return StateScheduled
		}
		return StateReady
	case mLeased:
		return StateLeased
	case mCompleted:
		return StateCompleted
	case mDead:
		return StateDead
	}
	return StateCancelled
}

func nsOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func errMatches(got, want string) bool {
	if w, ok := strings.CutPrefix(want, "~"); ok {
		return strings.Contains(got, w)
	}
	return got == want
}

// diff lists how a job snapshot (from Jobs, or Get when full) differs from
// the model job; empty if it does not.
func (j *mjob) diff(got *Job, now int64, full bool) []string {
	var d []string
	add := func(field string, g, w any) {
		d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.Queue != j.queue {
		add("Queue", got.Queue, j.queue)
	}
	if got.Key != j.key {
		add("Key", got.Key, j.key)
	}
	if s := j.publicState(now); got.State != s {
		add("State", got.State, s)
	}
	if got.Attempt != j.attempt {
		add("Attempt", got.Attempt, j.attempt)
	}
	if got.MaxAttempts != j.maxAttempts {
		add("MaxAttempts", got.MaxAttempts, j.maxAttempts)
	}
	if got.Priority != j.priority {
		add("Priority", got.Priority, j.priority)
	}
	if got.Group != j.group {
		add("Group", got.Group, j.group)
	}
	if j.state == mPending && nsOf(got.RunAt) != j.runAt {
		add("RunAt", time.Unix(0, nsOf(got.RunAt)).Sub(time.Unix(0, now)), time.Unix(0, j.runAt).Sub(time.Unix(0, now)))
	}
	if nsOf(got.EnqueuedAt) != j.created {
		add("EnqueuedAt", got.EnqueuedAt, time.Unix(0, j.created))
	}
	if nsOf(got.LeaseDeadline) != j.deadline {
		add("LeaseDeadline (ns)", nsOf(got.LeaseDeadline), j.deadline)
	}
	if !errMatches(got.LastError, j.lastErr) {
		add("LastError", fmt.Sprintf("%q", got.LastError), fmt.Sprintf("%q", j.lastErr))
	}
	wantFinished := j.finished
	if !j.state.terminal() {
		wantFinished = 0 // a requeued job is not finished
	}
	if nsOf(got.FinishedAt) != wantFinished {
		add("FinishedAt (ns)", nsOf(got.FinishedAt), wantFinished)
	}
	if got.HasResult != j.hasResult {
		add("HasResult", got.HasResult, j.hasResult)
	}
	d = append(d, j.diffHistory(got.History)...)
	if full {
		if !bytes.Equal(got.Payload, j.payload) {
			add("Payload", fmt.Sprintf("%.20q (%d bytes)", got.Payload, len(got.Payload)), fmt.Sprintf("%.20q (%d bytes)", j.payload, len(j.payload)))
		}
		if !bytes.Equal(got.Result, j.result) || (j.hasResult && got.Result == nil) {
			add("Result", fmt.Sprintf("%q", got.Result), fmt.Sprintf("%q", j.result))
		}
	}
	return d
}

func (j *mjob) diffHistory(got []Attempt) []string {
	if len(got) != len(j.history) {
		return []string{fmt.Sprintf("History has %d attempts (%v), want %d (%v)", len(got), got, len(j.history), j.history)}
	}
	var d []string
	for i, a := range got {
		w := j.history[i]
		if nsOf(a.Started) != w.started || nsOf(a.Ended) != w.ended || a.Outcome != w.outcome || !errMatches(a.Error, w.err) {
			d = append(d, fmt.Sprintf("History[%d] = {started %d ended %d %q %q}, want %+v",
				i, nsOf(a.Started), nsOf(a.Ended), a.Outcome, a.Error, w))
		}
	}
	return d
}

// counts returns the model's per-queue counts as Stats reports them.
func (m *model) counts(now int64) map[string]QueueStats {
	out := map[string]QueueStats{}
	for _, j := range m.jobs {
		s := out[j.queue]
		switch j.publicState(now) {
		case StateReady:
			s.Ready++
		case StateScheduled:
			s.Scheduled++
		case StateLeased:
			s.Leased++
		case StateCompleted:
			s.Completed++
		case StateDead:
			s.Dead++
		case StateCancelled:
			s.Cancelled++
		}
		out[j.queue] = s
	}
	for name, p := range m.paused {
		s := out[name]
		s.Paused = p
		out[name] = s
	}
	return out
}
