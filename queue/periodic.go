package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/robfig/cron/v3"
	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Schedule describes a periodic job: every tick of Cron (or every Every)
// enqueues a copy of Job. Register one with Queue.Schedule.
type Schedule struct {
	// Name identifies the schedule: 1 to 255 bytes of ASCII letters,
	// digits and - _ . : / (as a queue name). Registering a name again
	// replaces its definition.
	Name string
	// Cron is a cron expression: five fields (minute, hour, day of month,
	// month, day of week) or a descriptor such as "@hourly", parsed by
	// github.com/robfig/cron/v3's standard parser, evaluated in UTC unless
	// it starts with CRON_TZ=<zone>. Set Cron or Every, not both.
	Cron string
	// Every is a fixed interval of at least a second; ticks fall at
	// whole multiples of it after the schedule was registered.
	Every time.Duration
	// Job is the template of each enqueued job. Its Key, RunAt and Delay
	// must be empty: each tick's job gets the key
	// walq:periodic:<name>:<tick as Unix seconds> and runs at once.
	Job NewJob
	// Missed says what happens to ticks that came due while the queue was
	// closed. Defaults to MissedRunOnce.
	Missed Missed
}

// Missed is a schedule's policy for ticks missed while the queue was
// closed.
type Missed uint8

const (
	// MissedRunOnce enqueues one job for the whole missed period (keyed by
	// its latest tick), however many ticks it held.
	MissedRunOnce Missed = 0
	// MissedSkip enqueues nothing for ticks missed while the queue was
	// closed; the schedule goes on with the first tick after Open.
	MissedSkip Missed = 1
)

// String returns "run-once" or "skip".
func (m Missed) String() string {
	switch m {
	case MissedRunOnce:
		return "run-once"
	case MissedSkip:
		return "skip"
	}
	return fmt.Sprintf("missed(%d)", uint8(m))
}

// ScheduleInfo describes a registered schedule.
type ScheduleInfo struct {
	// Name, Spec (the cron expression or "@every <duration>"), Queue (the
	// template's named queue) and Missed describe the schedule.
	Name   string
	Spec   string
	Queue  string
	Missed Missed
	// Next is the tick the schedule enqueues for next: in the future, or
	// at or before now when a tick is due and not yet enqueued (a writer
	// enqueues it as soon as it looks: a lease, Stats, Schedules, or its
	// background timer).
	Next time.Time
	// LastRun is the tick that last enqueued a job; zero if none did.
	LastRun time.Time
	// LastJob is the ID of that job while the queue still holds it (until
	// its retention ends); 0 otherwise.
	LastJob uint64
	// Registered is when the schedule's current spec was registered.
	Registered time.Time
	// Error says why the spec cannot be evaluated (a log written by a walq
	// that accepted a spec this one does not); such a schedule never fires.
	Error string
}

// periodicPrefix begins the idempotency key of every job a schedule
// enqueues; the key ends with the tick in Unix seconds.
const periodicPrefix = "walq:periodic:"

// periodicKey returns the idempotency key of the job schedule name enqueues
// for the tick at (Unix ns).
func periodicKey(name string, at int64) string {
	return periodicPrefix + name + ":" + strconv.FormatInt(unixTime(at).Unix(), 10)
}

// maxCatchUp bounds the ticks of a cron spec walked to find the latest one
// due: a minutely schedule closed for two years. Beyond it the latest tick
// found so far is taken.
const maxCatchUp = 1 << 20

// periodic is the queue's in-memory schedule state beside the index's
// durable one.
type periodic struct {
	// next is the earliest tick not yet enqueued of any schedule (Unix ns),
	// 0 when there is none: a lookup on the hot path without q.mu.
	next atomic.Int64
	// skipped maps a MissedSkip schedule to the latest tick it skipped;
	// under q.mu. Skipped ticks all fall before opened, so they need not
	// be durable: after a restart they are still before the new open.
	skipped map[string]int64
	// opened is the clock at Open: ticks before it were missed.
	opened int64
	// wake asks the background loop to look again (a schedule changed).
	wake chan struct{}
}

// ticker computes a spec's ticks.
type ticker interface {
	// next returns the first tick after after, or 0 if there is none.
	next(after int64) int64
}

// everyTicker ticks at anchor + k·d for k ≥ 1.
type everyTicker struct{ anchor, d int64 }

func (t everyTicker) next(after int64) int64 {
	if after < t.anchor {
		return t.anchor + t.d
	}
	return t.anchor + ((after-t.anchor)/t.d+1)*t.d
}

// latest returns the latest tick in (after, now], or 0: in O(1).
func (t everyTicker) latest(after, now int64) int64 {
	first := t.next(after)
	if first > now {
		return 0
	}
	return t.anchor + (now-t.anchor)/t.d*t.d
}

// cronTicker ticks by a parsed cron spec.
type cronTicker struct{ s cron.Schedule }

func (t cronTicker) next(after int64) int64 {
	n := t.s.Next(unixTime(after).UTC())
	if n.IsZero() {
		return 0
	}
	return n.UnixNano()
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// everyPrefix begins the spec of an interval schedule.
const everyPrefix = "@every "

// parseSpec returns the ticker of spec, anchored at anchor (Unix ns) for an
// interval.
func parseSpec(spec string, anchor int64) (ticker, error) {
	if d, ok := strings.CutPrefix(spec, everyPrefix); ok {
		every, err := time.ParseDuration(d)
		if err != nil || every < time.Second {
			return nil, fmt.Errorf("interval %q: want a duration of at least 1s", d)
		}
		return everyTicker{anchor: anchor, d: int64(every)}, nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	return cronTicker{s: s}, nil
}

// latestTick returns the latest tick of t in (after, now], 0 if none.
func latestTick(t ticker, after, now int64) int64 {
	if e, ok := t.(everyTicker); ok {
		return e.latest(after, now)
	}
	due := t.next(after)
	if due == 0 || due > now {
		return 0
	}
	for i := 0; i < maxCatchUp; i++ {
		n := t.next(due)
		if n == 0 || n > now {
			break
		}
		due = n
	}
	return due
}

// spec validates s and returns its durable form.
func (q *Queue) scheduleSpec(s *Schedule) (string, error) {
	if s.Name == "" {
		return "", fmt.Errorf("%w: Schedule.Name: empty", ErrInvalid)
	}
	if err := checkQueueName("Schedule.Name", s.Name); err != nil {
		return "", err
	}
	if s.Missed > MissedSkip {
		return "", fmt.Errorf("%w: Schedule.Missed: %d is not a policy", ErrInvalid, s.Missed)
	}
	nj := s.Job
	switch {
	case nj.Key != "":
		return "", fmt.Errorf("%w: Schedule.Job.Key: set (each tick's job gets its own key)", ErrInvalid)
	case !nj.RunAt.IsZero() || nj.Delay != 0:
		return "", fmt.Errorf("%w: Schedule.Job: RunAt or Delay set (a tick's job runs at once)", ErrInvalid)
	}
	if err := q.validate(&nj); err != nil {
		return "", fmt.Errorf("Schedule.Job: %w", err)
	}
	var spec string
	switch {
	case (s.Cron == "") == (s.Every == 0):
		return "", fmt.Errorf("%w: Schedule: set exactly one of Cron and Every", ErrInvalid)
	case s.Every != 0:
		spec = everyPrefix + s.Every.String()
	default:
		spec = strings.TrimSpace(s.Cron)
	}
	if _, err := parseSpec(spec, 0); err != nil {
		return "", fmt.Errorf("%w: Schedule: %v", ErrInvalid, err)
	}
	return spec, nil
}

// Schedule registers a periodic schedule, durably: each tick of s enqueues
// one copy of s.Job, exactly once even across crashes and restarts (the
// tick's job is written in one atomic entry with the schedule's new last
// run, and is keyed walq:periodic:<name>:<tick>). The first tick is the
// first after the call. Registering an existing name with the same
// definition changes nothing (so a program can register its schedules at
// every start); with another definition it replaces it, keeping the last
// run, and a changed spec starts counting from now. Ticks are enqueued
// when the queue looks (a lease, Stats, Schedules) or its background timer
// fires, on the queue's clock; a writer that was closed catches up once, as
// s.Missed says.
func (q *Queue) Schedule(ctx context.Context, s Schedule) error {
	spec, err := q.scheduleSpec(&s)
	if err != nil {
		return err
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	now := q.now()
	ns := index.Schedule{Name: s.Name, Spec: spec, Missed: uint8(s.Missed),
		Anchor: unixTime(now).Truncate(time.Second).UnixNano(), Queue: s.Job.Queue, Payload: s.Job.Payload,
		Priority: int64(s.Job.Priority), MaxAttempts: int64(s.Job.MaxAttempts), Timeout: int64(s.Job.Timeout),
		Group: s.Job.Group}
	if ns.Queue == "" {
		ns.Queue = DefaultQueue
	}
	if ns.Payload == nil {
		ns.Payload = []byte{}
	}
	if b := s.Job.Backoff; b != nil {
		ns.BackoffBase, ns.BackoffCap = int64(b.Base), int64(b.Cap)
	}
	if old := q.idx.Schedule(s.Name); old != nil {
		ns.LastRun = old.LastRun
		if old.Spec == ns.Spec {
			ns.Anchor = old.Anchor // keep an interval's phase
		}
		if old.SameDefinition(&ns) {
			return nil
		}
	}
	delete(q.periodic.skipped, s.Name)
	if err := q.commit([]wlog.Record{ns.Record(now)}, nil); err != nil {
		return err
	}
	q.scheduleChangedLocked()
	return nil
}

// Unschedule removes the named schedule, durably. Jobs it already enqueued
// stay. An unknown name gives ErrNotFound.
func (q *Queue) Unschedule(ctx context.Context, name string) error {
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	if q.idx.Schedule(name) == nil {
		return fmt.Errorf("%w: schedule %q", ErrNotFound, name)
	}
	delete(q.periodic.skipped, name)
	if err := q.commit([]wlog.Record{{Kind: wlog.KindSchedule, Key: name, At: q.now()}}, nil); err != nil {
		return err
	}
	q.scheduleChangedLocked()
	return nil
}

// Schedules returns the registered schedules, sorted by name, after
// enqueueing any tick that is due (on a writable queue).
func (q *Queue) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	if err := q.fireDue(ctx); err != nil {
		return nil, err
	}
	if err := q.begin(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	return q.scheduleInfosLocked(q.now()), nil
}

// scheduleInfosLocked describes every schedule. The caller holds q.mu.
func (q *Queue) scheduleInfosLocked(now int64) []ScheduleInfo {
	ss := q.idx.Schedules()
	out := make([]ScheduleInfo, 0, len(ss))
	for _, s := range ss {
		si := ScheduleInfo{Name: s.Name, Spec: s.Spec, Queue: s.Queue, Missed: Missed(s.Missed),
			Registered: unixTime(s.Anchor)}
		if s.LastRun != 0 {
			si.LastRun = unixTime(s.LastRun)
			if j := q.idx.Key(periodicKey(s.Name, s.LastRun)); j != nil {
				si.LastJob = j.ID
			}
		}
		t, err := parseSpec(s.Spec, s.Anchor)
		if err != nil {
			si.Error = err.Error()
		} else if next := q.nextTick(s, t, now); next != 0 {
			si.Next = unixTime(next)
		}
		out = append(out, si)
	}
	return out
}

// nextTick returns the tick s enqueues for next: its latest due tick if one
// is due at now, else its first tick to come (0 if none). The caller holds
// q.mu.
func (q *Queue) nextTick(s *index.Schedule, t ticker, now int64) int64 {
	after := max(s.LastRun, s.Anchor, q.periodic.skipped[s.Name])
	if due := latestTick(t, after, now); due != 0 {
		return due
	}
	return t.next(after)
}

// scheduleChangedLocked recomputes the earliest tick and wakes the
// background loop. The caller holds q.mu.
func (q *Queue) scheduleChangedLocked() {
	q.updateNextTickLocked(q.now())
	select {
	case q.periodic.wake <- struct{}{}:
	default:
	}
}

// updateNextTickLocked recomputes periodic.next. The caller holds q.mu.
func (q *Queue) updateNextTickLocked(now int64) {
	var next int64
	for _, s := range q.idx.Schedules() {
		t, err := parseSpec(s.Spec, s.Anchor)
		if err != nil {
			continue
		}
		if n := q.nextTick(s, t, now); n != 0 && (next == 0 || n < next) {
			next = n
		}
	}
	q.periodic.next.Store(next)
	if next != 0 {
		q.wakeLeasers() // a leaser sleeping until an earlier time must look again
	}
}

// fireDue enqueues the due tick of every schedule. It costs an atomic load
// when nothing is due. It takes ctlMu, as every change of a schedule does,
// so that no schedule record is in flight while compaction's checkpoint
// restates the schedules, and callers must hold neither ctlMu nor q.mu.
func (q *Queue) fireDue(ctx context.Context) error {
	if q.opts.ReadOnly {
		return nil
	}
	if n := q.periodic.next.Load(); n == 0 || q.now() < n {
		return nil
	}
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	now := q.now()
	for _, s := range q.idx.Schedules() {
		if err := q.fireLocked(s.Name, now); err != nil {
			return err
		}
	}
	q.updateNextTickLocked(now)
	return nil
}

// fireLocked enqueues the latest due tick of the named schedule, if any,
// in one entry with the schedule's new last run. The caller holds ctlMu
// and q.mu and has nothing reserved.
func (q *Queue) fireLocked(name string, now int64) error {
	s := q.idx.Schedule(name)
	if s == nil {
		return nil
	}
	t, err := parseSpec(s.Spec, s.Anchor)
	if err != nil {
		return nil // reported by Schedules; never fires
	}
	due := latestTick(t, max(s.LastRun, s.Anchor, q.periodic.skipped[name]), now)
	if due == 0 {
		return nil
	}
	if Missed(s.Missed) == MissedSkip && due < q.periodic.opened {
		q.periodic.skipped[name] = due
		return nil
	}
	nj := NewJob{Queue: s.Queue, Payload: s.Payload, Key: periodicKey(name, due), Priority: int32(s.Priority),
		MaxAttempts: int(s.MaxAttempts), Timeout: time.Duration(s.Timeout), Group: s.Group}
	if s.BackoffBase != 0 || s.BackoffCap != 0 {
		nj.Backoff = &Backoff{Base: time.Duration(s.BackoffBase), Cap: time.Duration(s.BackoffCap)}
	}
	jobs := []NewJob{nj}
	// The schedule cannot change while we wait: every change holds ctlMu.
	if err := q.waitKeys(jobs); err != nil {
		return err
	}
	var e entry
	q.addJobs(&e, jobs, now)
	ns := *s
	ns.LastRun = due
	e.recs = append(e.recs, ns.Record(now))
	return q.commitEntry(&e)
}

// startPeriodic sets up the schedule state at Open and, for a writer,
// enqueues the ticks due (missed while closed) and starts the loop that
// enqueues ticks when nobody looks.
func (q *Queue) startPeriodic() {
	q.periodic.skipped = make(map[string]int64)
	q.periodic.opened = q.now()
	q.periodic.wake = make(chan struct{}, 1)
	q.updateNextTickLocked(q.periodic.opened)
	if q.opts.ReadOnly {
		return
	}
	// Catch up before Open returns, as retention does, so that the job of
	// a missed period exists once Open has returned. A failure is left
	// to the loop to retry.
	if err := q.fireDue(context.Background()); err != nil {
		q.opts.Logger.Warn("walq: periodic schedule: enqueue at open failed; will retry", "err", err)
	}
	q.bg.Add(1)
	go q.runPeriodic()
}

// runPeriodic enqueues due ticks on the queue's clock until Close. Calls
// that look (Lease, Stats, Schedules) enqueue them too; both go through
// fireDue, so a tick is enqueued once whoever gets there first.
func (q *Queue) runPeriodic() {
	defer q.bg.Done()
	ctx := context.Background()
	var retry int64 // after a failure: when to try again
	for {
		next := q.periodic.next.Load()
		if retry != 0 {
			next = retry
		}
		if next != 0 && next <= q.now() {
			retry = 0
			err := q.fireDue(ctx)
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				q.opts.Logger.Warn("walq: periodic schedule: enqueue failed; will retry", "err", err)
				retry = addDuration(q.now(), time.Second)
			}
			continue
		}
		var timer <-chan time.Time
		var t *clock.Timer
		if next != 0 {
			t = q.opts.Clock.Timer(time.Duration(next - q.now()))
			timer = t.C
		}
		select {
		case <-timer:
		case <-q.periodic.wake:
		case <-q.done:
		}
		if t != nil {
			t.Stop()
		}
		select {
		case <-q.done:
			return
		default:
		}
	}
}

// scheduleChunk bounds the payload bytes of the schedule records restated
// in one entry, as carryBytes does for carries.
const scheduleChunk = 4 << 20

// restateSchedules commits recs (compaction's checkpoint) with a record
// restating every schedule and every batch not yet ended, in as many
// entries as their payloads need. The caller holds ctlMu and q.mu: no schedule changes meanwhile, and
// every entry lands after the compaction's cut.
func (q *Queue) restateSchedules(recs []wlog.Record, now int64) error {
	more, busy, err := q.restateBatches(now) // batch.go; reserves members, waiting first
	if err != nil {
		return err
	}
	for _, s := range q.idx.Schedules() {
		more = append(more, s.Record(now))
	}
	// Every batch restated and its reserved members go in the first
	// chunk that holds its record; the reservations end with that chunk.
	size, heldUpTo := 0, 0
	for i, r := range more {
		if size > 0 && size+len(r.Payload) > scheduleChunk {
			chunk := chunkBusy(busy, heldUpTo, i)
			if err := q.commit(recs, chunk); err != nil {
				q.unreserve(flatten(busy[min(i, len(busy)):]))
				return err
			}
			recs, size, heldUpTo = nil, 0, i
		}
		recs = append(recs, r)
		size += len(r.Payload) + len(r.Spec) + len(r.Key)
	}
	return q.commit(recs, chunkBusy(busy, heldUpTo, len(more)))
}

// chunkBusy returns the reservations of the batches among records from to
// to of restateSchedules' list (the batches come first).
func chunkBusy(busy [][]*index.Job, from, to int) []*index.Job {
	return flatten(busy[min(from, len(busy)):min(to, len(busy))])
}

func flatten(jss [][]*index.Job) []*index.Job {
	var out []*index.Job
	for _, js := range jss {
		out = append(out, js...)
	}
	return out
}
