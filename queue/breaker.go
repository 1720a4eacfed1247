package queue

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Breaker is a named queue's circuit breaker: after Failures consecutive
// failed attempts (failed, dead or expired; a completion resets the count,
// a release or snooze does not count) the queue hands out no lease for
// Cooldown, then lets one probe job through (half-open): its completion
// closes the breaker, its failure opens it again for another Cooldown.
// Jobs waiting behind an open breaker are not leased, so they consume no
// attempts. Set it with Options.Breakers.
type Breaker struct {
	// Failures is how many consecutive failed attempts open the breaker;
	// at least 1.
	Failures int
	// Cooldown is how long an open breaker hands out no lease; positive.
	Cooldown time.Duration
}

// BreakerState is a circuit breaker's state.
type BreakerState string

// The breaker states.
const (
	// BreakerClosed: leases are handed out as usual.
	BreakerClosed BreakerState = "closed"
	// BreakerOpen: no lease until the cool-down has passed; then the next
	// lease is the probe.
	BreakerOpen BreakerState = "open"
	// BreakerHalfOpen: the probe job is leased; no other lease until its
	// outcome.
	BreakerHalfOpen BreakerState = "half-open"
)

// BreakerStatus describes a queue's circuit breaker in QueueStats.
type BreakerStatus struct {
	// State is empty for a queue without a breaker.
	State BreakerState `json:"state"`
	// Failures counts the consecutive failed attempts so far.
	Failures int `json:"failures"`
	// OpenedAt is when the breaker last opened; ProbeAt is when an open
	// breaker lets its probe through. Zero while closed.
	OpenedAt time.Time `json:"opened_at"`
	ProbeAt  time.Time `json:"probe_at"`
	// Probe is the probe job's ID while half-open.
	Probe uint64 `json:"probe,omitempty"`
}

// The breaker events, each with the Queue, At and (for an opening, the job
// whose failure opened it; for half-open, the probe) Job.
const (
	EventBreakerOpened   EventKind = "breaker_opened"
	EventBreakerHalfOpen EventKind = "breaker_half_open"
	EventBreakerClosed   EventKind = "breaker_closed"
)

// copyBreakers validates breakers and returns a copy.
func copyBreakers(bs map[string]Breaker) (map[string]Breaker, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	for name, b := range bs {
		if err := checkQueueName("Options.Breakers", name); err != nil {
			return nil, err
		}
		if b.Failures < 1 || b.Cooldown <= 0 {
			return nil, fmt.Errorf("%w: Options.Breakers[%q]: want Failures ≥ 1 and Cooldown > 0, got %d and %v",
				ErrInvalid, name, b.Failures, b.Cooldown)
		}
	}
	c := maps.Clone(bs)
	if b, ok := c[""]; ok {
		delete(c, "")
		c[DefaultQueue] = b
	}
	return c, nil
}

// breaker is one queue's breaker state, in memory, guarded by q.mu. It is a
// function of the attempts' outcomes in the order they became visible; at
// Open it is rebuilt from the jobs' histories (restoreBreakers).
type breaker struct {
	cfg      Breaker
	state    BreakerState
	failures int
	openedAt int64
	probe    uint64 // the probe job while half-open
	probing  bool   // a probe lease is in flight (reserved)
}

// outcome classes of an attempt's end.
const (
	attemptNeutral = iota
	attemptSucceeded
	attemptFailed
)

func attemptClass(k wlog.Kind) int {
	switch k {
	case wlog.KindCompleted:
		return attemptSucceeded
	case wlog.KindFailed, wlog.KindDead, wlog.KindExpired:
		return attemptFailed
	}
	return attemptNeutral
}

// saw feeds one attempt's end (job id, class, at) into the breaker and
// returns the event of the transition it caused, if any ("" for none).
func (b *breaker) saw(id uint64, class int, at int64) EventKind {
	if class == attemptNeutral {
		if b.state == BreakerHalfOpen && id == b.probe { // a released probe: the next lease probes again
			b.state, b.probe = BreakerOpen, 0
		}
		return ""
	}
	switch b.state {
	case BreakerClosed:
		if class == attemptSucceeded {
			b.failures = 0
			return ""
		}
		b.failures++
		if b.failures >= b.cfg.Failures {
			b.state, b.openedAt = BreakerOpen, at
			return EventBreakerOpened
		}
	case BreakerHalfOpen:
		if id != b.probe {
			return "" // a job leased before the breaker opened
		}
		b.probe = 0
		if class == attemptSucceeded {
			b.state, b.failures, b.openedAt = BreakerClosed, 0, 0
			return EventBreakerClosed
		}
		b.failures++
		b.state, b.openedAt = BreakerOpen, at
		return EventBreakerOpened
	}
	return "" // open: jobs leased before it opened end without effect
}

// probeAt is when an open breaker lets its probe through.
func (b *breaker) probeAt() int64 { return addDuration(b.openedAt, b.cfg.Cooldown) }

// leaseBudget returns how many leases the breaker allows at now (n when
// closed) and, when none, the time it may allow one (0 if only an event
// can: the probe's outcome). The caller holds q.mu.
func (b *breaker) leaseBudget(n int, now int64) (int, int64) {
	switch {
	case b == nil || b.state == BreakerClosed:
		return n, 0
	case b.state == BreakerOpen && now >= b.probeAt() && !b.probing:
		return 1, 0
	case b.state == BreakerOpen && now < b.probeAt():
		return 0, b.probeAt()
	}
	return 0, 0
}

// restoreBreakers builds the breakers at Open: each replays, in end-time
// order, the outcomes kept in its queue's job histories (the leases voided
// at this Open included, as expired attempts). An attempt that ended after
// an open breaker's cool-down counts as its probe.
func (q *Queue) restoreBreakers() {
	if len(q.opts.Breakers) == 0 {
		return
	}
	q.breakers = make(map[string]*breaker, len(q.opts.Breakers))
	type end struct {
		at    int64
		id    uint64
		class int
	}
	ends := map[string][]end{}
	for name, cfg := range q.opts.Breakers {
		q.breakers[name] = &breaker{cfg: cfg, state: BreakerClosed}
	}
	q.idx.JobsFrom(0, func(j *index.Job) bool {
		if q.breakers[j.Queue.Name] == nil {
			return true
		}
		for _, a := range j.History() {
			if c := attemptClass(a.Outcome); a.Ended != 0 && c != attemptNeutral {
				ends[j.Queue.Name] = append(ends[j.Queue.Name], end{at: a.Ended, id: j.ID, class: c})
			}
		}
		return true
	})
	for name, es := range ends {
		sort.Slice(es, func(i, k int) bool { return es[i].at < es[k].at || es[i].at == es[k].at && es[i].id < es[k].id })
		b := q.breakers[name]
		for _, e := range es {
			if b.state == BreakerOpen && e.at >= b.probeAt() {
				b.state, b.probe = BreakerHalfOpen, e.id
			}
			b.saw(e.id, e.class, e.at)
		}
	}
	q.writeBreakerStatus()
}

// breakersSaw feeds the attempt ends among recs into the breakers of their
// queues, and publishes the transitions. It runs when recs are submitted to
// the log, under q.mu, as lease decisions do: the breaker sees outcomes in
// log order, and no lease is decided after the failure that opened it was
// submitted. (An entry that then fails to become durable was still counted:
// the job's attempt ends again later, and counts again.) The caller holds
// q.mu; the records' jobs are reserved.
func (q *Queue) breakersSaw(recs []wlog.Record) {
	if len(q.breakers) == 0 {
		return
	}
	changed := false
	for i := range recs {
		r := &recs[i]
		switch r.Kind {
		case wlog.KindCompleted, wlog.KindFailed, wlog.KindDead, wlog.KindExpired, wlog.KindReleased:
		default:
			continue
		}
		j := q.idx.Job(r.Job)
		if j == nil {
			continue
		}
		b := q.breakers[j.Queue.Name]
		if b == nil {
			continue
		}
		q.traceBreaker(brkStep{state: b.state, openedAt: b.openedAt, now: r.At, end: r.Kind, job: r.Job})
		if ev := b.saw(r.Job, attemptClass(r.Kind), r.At); ev != "" {
			q.breakerEvent(ev, j.Queue.Name, r.Job, r.At, r.Error)
			changed = true
		}
	}
	if changed {
		q.writeBreakerStatus()
		q.wakeLeasers() // a closed breaker leases again; a reopened one sleeps until its probe
	}
}

// probeLeased records that the probe lease of queue name's breaker is
// durable (id) or failed (id 0). The caller holds q.mu.
func (q *Queue) probeLeased(name string, b *breaker, id uint64, now int64) {
	b.probing = false
	if id == 0 {
		q.wakeLeasers()
		return
	}
	b.state, b.probe = BreakerHalfOpen, id
	q.breakerEvent(EventBreakerHalfOpen, name, id, now, "")
	q.writeBreakerStatus()
}

// brkStep is one step of a breaker's history as tests see it: a lease
// decision (leased > 0, job the first job leased) or an attempt's end
// (end, job), at now.
type brkStep struct {
	leased   int
	end      wlog.Kind
	job      uint64
	now      int64
	state    BreakerState // before the step
	openedAt int64        // before the step
}

// traceBreaker appends step to q.brkTrace, which only tests set: lease
// decisions and attempt ends in the order they happen under q.mu, which
// is log order. The caller holds q.mu.
func (q *Queue) traceBreaker(step brkStep) {
	if q.brkTrace != nil {
		*q.brkTrace = append(*q.brkTrace, step)
	}
}

// breakerEvent sends a breaker transition to the subscribers and the log.
func (q *Queue) breakerEvent(kind EventKind, name string, job uint64, at int64, msg string) {
	ev := Event{Kind: kind, Queue: name, Job: job, At: unixTime(at), Error: msg}
	q.opts.Logger.Warn("walq: circuit breaker", "queue", name, "event", string(kind), "job", job)
	for s := range q.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// breakerStatus describes b.
func breakerStatus(b *breaker) BreakerStatus {
	st := BreakerStatus{State: b.state, Failures: b.failures, Probe: b.probe}
	if b.state != BreakerClosed {
		st.OpenedAt, st.ProbeAt = unixTime(b.openedAt), unixTime(b.probeAt())
	}
	return st
}

// breakerStatusName is a status file the writer keeps while a breaker is
// not closed, so that other processes (walq stats) see it; a diagnostic,
// never read by Open.
const breakerStatusName = "BREAKERS"

// writeBreakerStatus writes (or, when every breaker is closed, removes)
// the breaker status file, best effort. The caller holds q.mu.
func (q *Queue) writeBreakerStatus() {
	if q.opts.ReadOnly {
		return
	}
	path := filepath.Join(q.dir, breakerStatusName)
	open := map[string]BreakerStatus{}
	for name, b := range q.breakers {
		if b.state != BreakerClosed {
			open[name] = breakerStatus(b)
		}
	}
	if len(open) == 0 {
		os.Remove(path)
		return
	}
	b, _ := json.Marshal(open)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		os.Rename(tmp, path)
	}
}

// readBreakerStatus fills the breakers of st's queues from the status file
// a writer left, for a read-only queue.
func (q *Queue) readBreakerStatus(st *Stats) {
	b, err := os.ReadFile(filepath.Join(q.dir, breakerStatusName))
	if err != nil {
		return
	}
	var open map[string]BreakerStatus
	if json.Unmarshal(b, &open) != nil {
		return
	}
	for name, bs := range open {
		qs := st.Queues[name]
		qs.Breaker = bs
		st.Queues[name] = qs
	}
}
