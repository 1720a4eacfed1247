package index_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// t0 is the time (Unix ns) tests start at; fixture records are stamped
// around it and the index is promoted to it.
const t0 = int64(1_700_000_000_000_000_000)

// payload is the payload fixture records carry; only its length matters to
// the index.
var payload = make([]byte, 37)

// applier applies records to an index at consecutive log positions and
// checks the index's invariants after each one, as bbolt's btesting checks
// a database after every test.
type applier struct {
	t   testing.TB
	x   *index.Index
	pos index.Pos
}

func newApplier(t testing.TB) *applier {
	a := &applier{t: t, x: index.New(), pos: index.Pos{Index: 1}}
	a.x.Promote(t0)
	return a
}

// next returns the position for the next record: one record per entry.
func (a *applier) next() index.Pos {
	p := a.pos
	a.pos.Index++
	return p
}

// apply applies recs, failing the test on any error or broken invariant.
func (a *applier) apply(recs ...wlog.Record) {
	a.t.Helper()
	for i := range recs {
		r := &recs[i]
		if err := a.x.Apply(r, a.next()); err != nil {
			a.t.Fatalf("Apply(%s job %d): %v", r.Kind, r.Job, err)
		}
		a.check()
	}
}

// fold applies recs without checking invariants after each, for long
// setups.
func (a *applier) fold(recs ...wlog.Record) {
	a.t.Helper()
	for i := range recs {
		if err := a.x.Apply(&recs[i], a.next()); err != nil {
			a.t.Fatalf("Apply(%s job %d): %v", recs[i].Kind, recs[i].Job, err)
		}
	}
}

func (a *applier) check() {
	a.t.Helper()
	if err := a.x.Check(); err != nil {
		a.t.Fatalf("Check: %v", err)
	}
}

// job returns job id, failing the test if it is unknown.
func (a *applier) job(id uint64) *index.Job {
	a.t.Helper()
	j := a.x.Job(id)
	if j == nil {
		a.t.Fatalf("job %d unknown", id)
	}
	return j
}

func enqueued(id uint64, queue string) wlog.Record {
	return wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: t0 - 1000, Queue: queue,
		Payload: payload, PayloadAt: 40, RunAt: t0, MaxAttempts: 3}
}

func keyed(r wlog.Record, key string) wlog.Record {
	r.Key = key
	return r
}

// step returns the natural valid record of the given kind for job id, whose
// current attempt is attempt. The times are fixed so that tests can assert
// them.
func step(kind wlog.Kind, id uint64, attempt int32) wlog.Record {
	r := wlog.Record{Kind: kind, Job: id, Attempt: int64(attempt)}
	switch kind {
	case wlog.KindLeased:
		r.At, r.Attempt, r.Deadline = t0+10, int64(attempt)+1, t0+1000
	case wlog.KindExtended:
		r.At, r.Deadline = t0+15, t0+2000
	case wlog.KindCompleted:
		r.At, r.Result, r.ResultAt = t0+20, []byte("result"), 77
	case wlog.KindFailed:
		r.At, r.RunAt, r.Error = t0+21, t0+500, "boom"
	case wlog.KindDead:
		r.At, r.Error = t0+22, "fatal"
	case wlog.KindExpired:
		r.At, r.RunAt, r.Error = t0+23, t0+23, "lease expired"
	case wlog.KindReleased:
		r.At, r.RunAt = t0+24, t0+24
	case wlog.KindRequeued:
		r.At, r.RunAt, r.Attempt = t0+25, t0+25, 0
	case wlog.KindCancelled:
		r.At, r.Attempt = t0+26, 0
	case wlog.KindPurged:
		r.At, r.Attempt = t0+27, 0
	}
	return r
}

// from names the state a fixture job is driven to; gone is a purged job.
type from string

const (
	none      from = "none"
	pending   from = "pending"
	scheduled from = "scheduled"
	leased    from = "leased"
	completed from = "completed"
	dead      from = "dead"
	cancelled from = "cancelled"
	gone      from = "gone"
)

// drive creates job id in queue "q" with key "k<id>" and drives it to state
// s through valid records.
func (a *applier) drive(id uint64, s from) {
	a.t.Helper()
	if s == none {
		return
	}
	r := keyed(enqueued(id, "q"), fmt.Sprintf("k%d", id))
	if s == scheduled {
		r.RunAt = t0 + 1_000_000
	}
	a.apply(r)
	var path []wlog.Kind
	switch s {
	case leased:
		path = []wlog.Kind{wlog.KindLeased}
	case completed:
		path = []wlog.Kind{wlog.KindLeased, wlog.KindCompleted}
	case dead:
		path = []wlog.Kind{wlog.KindLeased, wlog.KindDead}
	case cancelled:
		path = []wlog.Kind{wlog.KindCancelled}
	case gone:
		path = []wlog.Kind{wlog.KindCancelled, wlog.KindPurged}
	}
	for _, k := range path {
		a.apply(step(k, id, a.job(id).Attempt))
	}
}

// jobSnap is everything observable about a job, for comparisons.
type jobSnap struct {
	ID                            uint64
	Queue, Key                    string
	Payload                       index.Loc
	RunAt, Created, Deadline      int64
	Attempt, MaxAttempts, Prio    int32
	State                         index.State
	Busy                          bool
	HasX                          bool
	X                             index.Extra
	Finished                      int64
	Error                         string
	History                       []wlog.Attempt
	BackoffBase, BackoffCap, Tout int64
}

func snapJob(j *index.Job) jobSnap {
	s := jobSnap{ID: j.ID, Queue: j.Queue.Name, Key: j.Key(), Payload: j.Payload, RunAt: j.RunAt,
		Created: j.Created, Deadline: j.Deadline(), Attempt: j.Attempt, MaxAttempts: j.MaxAttempts,
		Prio: j.Priority, State: j.State, Busy: j.Busy, Finished: j.Finished(), Error: j.Error(),
		History: slices.Clone(j.History())}
	if j.X != nil {
		s.HasX = true
		s.X = *j.X
		s.X.History = nil // compared through History, cloned
		s.X.Deadline = 0  // compared through Deadline
	}
	return s
}

type queueSnap struct {
	Paused                bool
	Counts                []int
	Ready, Scheduled      int
	Next                  uint64
	NextRunAt             int64
	HasNextRunAt          bool
	OldestReady           int64
	Dead                  []uint64
	HasOldest, HasNextJob bool
}

// indexSnap is everything observable about an index.
type indexSnap struct {
	Records, Len, Created int
	NextID                uint64
	LiveBytes             int64
	Queues                map[string]queueSnap
	Jobs                  []jobSnap
	Keys                  map[string]uint64
	Finished              []uint64
	Expired               []uint64
	Leased                []uint64
	NextDeadline          int64
}

func snapIndex(x *index.Index) indexSnap {
	s := indexSnap{Records: x.Records(), Len: x.Len(), Created: x.Created(), NextID: x.NextID(),
		LiveBytes: x.LiveBytes(), Queues: map[string]queueSnap{}, Keys: map[string]uint64{}}
	for _, q := range x.Queues() {
		qs := queueSnap{Paused: q.Paused, Ready: q.Ready(), Scheduled: q.Scheduled()}
		for _, st := range index.States() {
			qs.Counts = append(qs.Counts, q.Count(st))
		}
		if j := q.Next(); j != nil {
			qs.Next, qs.HasNextJob = j.ID, true
		}
		qs.NextRunAt, qs.HasNextRunAt = q.NextRunAt()
		qs.OldestReady, qs.HasOldest = q.OldestReady()
		q.Dead(func(j *index.Job) bool { qs.Dead = append(qs.Dead, j.ID); return true })
		slices.Sort(qs.Dead)
		s.Queues[q.Name] = qs
	}
	for _, j := range x.Jobs() {
		s.Jobs = append(s.Jobs, snapJob(j))
		if j.Key() != "" {
			s.Keys[j.Key()] = x.Key(j.Key()).ID
		}
	}
	s.Finished = finishedIDs(x)
	s.Expired = expiredIDs(x, math.MaxInt64)
	x.Leased(func(j *index.Job) { s.Leased = append(s.Leased, j.ID) })
	slices.Sort(s.Leased)
	s.NextDeadline, _ = x.NextDeadline()
	return s
}

func finishedIDs(x *index.Index) []uint64 {
	var ids []uint64
	x.Finished(func(j *index.Job) bool { ids = append(ids, j.ID); return true })
	return ids
}

func expiredIDs(x *index.Index, now int64) []uint64 {
	var ids []uint64
	x.Expired(now, func(j *index.Job) bool { ids = append(ids, j.ID); return true })
	return ids
}

// popReady reserves ready jobs of q one by one and returns their IDs in the
// order Next gave them.
func popReady(x *index.Index, q string) []uint64 {
	var ids []uint64
	iq := x.Queue(q)
	for j := iq.Next(); j != nil; j = iq.Next() {
		ids = append(ids, j.ID)
		x.Reserve(j)
	}
	return ids
}

func TestEnqueued(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rec   wlog.Record
		ready bool
		hasX  bool
	}{
		{name: "due", rec: enqueued(1, "q"), ready: true},
		{name: "past", rec: func() wlog.Record { r := enqueued(1, "q"); r.RunAt = t0 - 1; return r }(), ready: true},
		{name: "future", rec: func() wlog.Record { r := enqueued(1, "q"); r.RunAt = t0 + 1; return r }()},
		{name: "key", rec: keyed(enqueued(1, "q"), "order-17"), ready: true},
		{name: "policy", rec: func() wlog.Record {
			r := enqueued(1, "q")
			r.BackoffBase, r.BackoffCap, r.Timeout, r.Priority = 5, 50, 500, -3
			return r
		}(), ready: true, hasX: true},
		{name: "no-payload", rec: func() wlog.Record { r := enqueued(1, "q"); r.Payload, r.PayloadAt = nil, 0; return r }(), ready: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			pos := a.pos
			a.apply(tt.rec)
			j := a.job(1)
			r := tt.rec
			want := jobSnap{ID: 1, Queue: "q", Key: r.Key,
				Payload: index.Loc{Index: pos.Index, Off: uint32(r.PayloadAt), Len: uint32(len(r.Payload))},
				RunAt:   r.RunAt, Created: r.At, MaxAttempts: int32(r.MaxAttempts), Prio: int32(r.Priority),
				State: index.Pending, HasX: tt.hasX}
			if tt.hasX {
				want.X = index.Extra{BackoffBase: r.BackoffBase, BackoffCap: r.BackoffCap, Timeout: r.Timeout}
			}
			if got := snapJob(j); !reflect.DeepEqual(got, want) {
				t.Fatalf("job:\n got %+v\nwant %+v", got, want)
			}
			q := a.x.Queue("q")
			if got := q.Count(index.Pending); got != 1 {
				t.Errorf("Count(pending) = %d, want 1", got)
			}
			if tt.ready != (q.Next() == j) || q.Ready()+q.Scheduled() != 1 {
				t.Errorf("ready = %v (Ready %d, Scheduled %d), want ready %v", q.Next() == j, q.Ready(), q.Scheduled(), tt.ready)
			}
			if a.x.NextID() != 2 || a.x.Len() != 1 || a.x.Records() != 1 || a.x.CreatedAt(0) != j {
				t.Errorf("NextID %d Len %d Records %d, want 2 1 1", a.x.NextID(), a.x.Len(), a.x.Records())
			}
			if r.Key != "" && a.x.Key(r.Key) != j {
				t.Errorf("Key(%q) does not return the job", r.Key)
			}
			if a.x.LiveBytes() < int64(len(r.Payload)+len(r.Key)) {
				t.Errorf("LiveBytes %d below payload+key", a.x.LiveBytes())
			}
		})
	}
}

// TestTransitions checks the outcome of every valid job transition in
// detail.
func TestTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		from  from
		rec   func(j *index.Job) wlog.Record
		check func(t *testing.T, a *applier, pos index.Pos)
	}{
		{
			name: "leased", from: pending,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindLeased, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Leased, 1)
				if j.Deadline() != t0+1000 {
					t.Errorf("Deadline = %d, want %d", j.Deadline(), t0+1000)
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1})
				if q := a.x.Queue("q"); q.Next() != nil || q.Ready() != 0 {
					t.Errorf("leased job still ready")
				}
				if d, ok := a.x.NextDeadline(); !ok || d != t0+1000 {
					t.Errorf("NextDeadline = %d, %v", d, ok)
				}
			},
		},
		{
			name: "leased-scheduled", from: scheduled,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindLeased, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				wantJob(t, a.job(1), index.Leased, 1)
				if q := a.x.Queue("q"); q.Scheduled() != 0 {
					t.Errorf("Scheduled = %d, want 0", q.Scheduled())
				}
			},
		},
		{
			name: "extended", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindExtended, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Leased, 1)
				if j.Deadline() != t0+2000 {
					t.Errorf("Deadline = %d, want %d", j.Deadline(), t0+2000)
				}
				if got := expiredIDs(a.x, t0+1999); len(got) != 0 {
					t.Errorf("Expired before the new deadline: %v", got)
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1})
			},
		},
		{
			name: "completed", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindCompleted, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Completed, 1)
				want := index.Loc{Index: pos.Index, Off: 77, Len: uint32(len("result"))}
				if j.X.Result != want || !j.X.HasResult {
					t.Errorf("Result = %+v (has %v), want %+v", j.X.Result, j.X.HasResult, want)
				}
				if j.Finished() != t0+20 || j.Deadline() != 0 {
					t.Errorf("Finished %d Deadline %d, want %d 0", j.Finished(), j.Deadline(), t0+20)
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1, Ended: t0 + 20, Outcome: wlog.KindCompleted})
				if got := finishedIDs(a.x); !slices.Equal(got, []uint64{1}) {
					t.Errorf("Finished = %v, want [1]", got)
				}
				if _, ok := a.x.NextDeadline(); ok {
					t.Errorf("completed job still leased")
				}
			},
		},
		{
			name: "completed-no-result", from: leased,
			rec: func(j *index.Job) wlog.Record {
				r := step(wlog.KindCompleted, j.ID, j.Attempt)
				r.Result, r.ResultAt = nil, 0
				return r
			},
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				if j.X.HasResult || j.X.Result != (index.Loc{}) {
					t.Errorf("Result = %+v (has %v), want none", j.X.Result, j.X.HasResult)
				}
			},
		},
		{
			name: "completed-empty-result", from: leased,
			rec: func(j *index.Job) wlog.Record {
				r := step(wlog.KindCompleted, j.ID, j.Attempt)
				r.Result = []byte{}
				return r
			},
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				if !j.X.HasResult || j.X.Result.Len != 0 {
					t.Errorf("Result = %+v (has %v), want empty", j.X.Result, j.X.HasResult)
				}
			},
		},
		{
			name: "failed", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindFailed, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Pending, 1)
				if j.RunAt != t0+500 || j.Error() != "boom" || j.Deadline() != 0 {
					t.Errorf("RunAt %d Error %q Deadline %d", j.RunAt, j.Error(), j.Deadline())
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1, Ended: t0 + 21, Outcome: wlog.KindFailed, Error: "boom"})
				q := a.x.Queue("q")
				if q.Scheduled() != 1 || q.Ready() != 0 {
					t.Errorf("Scheduled %d Ready %d, want 1 0", q.Scheduled(), q.Ready())
				}
				if at, ok := q.NextRunAt(); !ok || at != t0+500 {
					t.Errorf("NextRunAt = %d, %v", at, ok)
				}
			},
		},
		{
			name: "failed-due", from: leased,
			rec: func(j *index.Job) wlog.Record {
				r := step(wlog.KindFailed, j.ID, j.Attempt)
				r.RunAt = t0 - 1
				return r
			},
			check: func(t *testing.T, a *applier, pos index.Pos) {
				if q := a.x.Queue("q"); q.Next() != a.job(1) {
					t.Errorf("failed job due now is not ready")
				}
			},
		},
		{
			name: "dead", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindDead, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Dead, 1)
				if j.Finished() != t0+22 || j.Error() != "fatal" {
					t.Errorf("Finished %d Error %q", j.Finished(), j.Error())
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1, Ended: t0 + 22, Outcome: wlog.KindDead, Error: "fatal"})
				if got := deadIDs(a.x.Queue("q")); !slices.Equal(got, []uint64{1}) {
					t.Errorf("Dead = %v, want [1]", got)
				}
				if got := finishedIDs(a.x); len(got) != 0 {
					t.Errorf("Finished lists dead jobs: %v", got)
				}
			},
		},
		{
			name: "expired", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindExpired, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Pending, 1)
				if j.RunAt != t0+23 {
					t.Errorf("RunAt = %d, want %d", j.RunAt, t0+23)
				}
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1, Ended: t0 + 23, Outcome: wlog.KindExpired, Error: "lease expired"})
			},
		},
		{
			name: "released", from: leased,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindReleased, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Pending, 0) // a released attempt does not count
				wantHistory(t, j, wlog.Attempt{Started: t0 + 10, Number: 1, Lease: 1, Ended: t0 + 24, Outcome: wlog.KindReleased})
				// The next lease is attempt 1 again.
				a.apply(step(wlog.KindLeased, 1, 0))
				wantJob(t, j, index.Leased, 1)
			},
		},
		{
			name: "requeued", from: dead,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindRequeued, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Pending, 0)
				q := a.x.Queue("q")
				if j.RunAt != t0+25 || q.Count(index.Dead) != 0 || len(deadIDs(q)) != 0 {
					t.Errorf("RunAt %d, dead count %d, dead set %v", j.RunAt, q.Count(index.Dead), deadIDs(q))
				}
				a.x.Promote(t0 + 25)
				if q.Next() != j {
					t.Errorf("requeued job not ready at its RunAt")
				}
			},
		},
		{
			name: "requeued-same-queue-named", from: dead,
			rec: func(j *index.Job) wlog.Record {
				r := step(wlog.KindRequeued, j.ID, j.Attempt)
				r.Queue = "q"
				return r
			},
			check: func(t *testing.T, a *applier, pos index.Pos) {
				wantJob(t, a.job(1), index.Pending, 0)
				wantCounts(t, a.x, "q", map[index.State]int{index.Pending: 1})
			},
		},
		{
			name: "requeued-other-queue", from: dead,
			rec: func(j *index.Job) wlog.Record {
				r := step(wlog.KindRequeued, j.ID, j.Attempt)
				r.Queue = "other"
				return r
			},
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Pending, 0)
				if j.Queue.Name != "other" || j.Queue != a.x.Queue("other") {
					t.Fatalf("job in queue %q, want other", j.Queue.Name)
				}
				wantCounts(t, a.x, "q", nil)
				wantCounts(t, a.x, "other", map[index.State]int{index.Pending: 1})
				if len(deadIDs(a.x.Queue("q"))) != 0 || len(deadIDs(a.x.Queue("other"))) != 0 {
					t.Errorf("dead sets not empty")
				}
				a.x.Promote(t0 + 25)
				if a.x.Queue("other").Next() != j || a.x.Queue("q").Next() != nil {
					t.Errorf("requeued job not ready in its new queue")
				}
			},
		},
		{
			name: "cancelled", from: pending,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindCancelled, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				j := a.job(1)
				wantJob(t, j, index.Cancelled, 0)
				if j.Finished() != t0+26 || a.x.Queue("q").Next() != nil {
					t.Errorf("Finished %d, still ready %v", j.Finished(), a.x.Queue("q").Next() != nil)
				}
				if got := finishedIDs(a.x); !slices.Equal(got, []uint64{1}) {
					t.Errorf("Finished = %v, want [1]", got)
				}
			},
		},
		{
			name: "cancelled-scheduled", from: scheduled,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindCancelled, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				wantJob(t, a.job(1), index.Cancelled, 0)
				if a.x.Queue("q").Scheduled() != 0 {
					t.Errorf("cancelled job still scheduled")
				}
			},
		},
	}
	for _, f := range []from{completed, dead, cancelled} {
		tests = append(tests, struct {
			name  string
			from  from
			rec   func(j *index.Job) wlog.Record
			check func(t *testing.T, a *applier, pos index.Pos)
		}{
			name: "purged-" + string(f), from: f,
			rec: func(j *index.Job) wlog.Record { return step(wlog.KindPurged, j.ID, j.Attempt) },
			check: func(t *testing.T, a *applier, pos index.Pos) {
				if a.x.Job(1) != nil || a.x.Len() != 0 {
					t.Fatalf("purged job still known")
				}
				if a.x.Key("k1") != nil {
					t.Errorf("purged job's key still held")
				}
				if a.x.LiveBytes() != 0 {
					t.Errorf("LiveBytes = %d after purging every job, want 0", a.x.LiveBytes())
				}
				wantCounts(t, a.x, "q", nil)
				if got := finishedIDs(a.x); len(got) != 0 {
					t.Errorf("Finished = %v after purge", got)
				}
				if a.x.CreatedAt(0) != nil {
					t.Errorf("CreatedAt(0) returns a purged job")
				}
				// The key is free again; the ID stays used.
				a.apply(keyed(enqueued(2, "q"), "k1"))
				if a.x.Key("k1") != a.job(2) || a.x.NextID() != 3 {
					t.Errorf("key not reusable after purge (NextID %d)", a.x.NextID())
				}
			},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			a.drive(1, tt.from)
			pos := a.pos
			a.apply(tt.rec(a.job(1)))
			tt.check(t, a, pos)
			a.check()
			wantRecount(t, a.x)
		})
	}
}

func TestLiveBytes(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	a.drive(1, leased)
	before := a.x.LiveBytes()
	a.apply(step(wlog.KindCompleted, 1, 1))
	if got, want := a.x.LiveBytes()-before, int64(len("result")); got != want {
		t.Errorf("completion grew LiveBytes by %d, want %d (the result)", got, want)
	}
	b0 := a.x.LiveBytes()
	a.apply(enqueued(2, "q"))
	b1 := a.x.LiveBytes()
	a.apply(keyed(enqueued(3, "q"), "a-longer-key"))
	if got, want := (a.x.LiveBytes()-b1)-(b1-b0), int64(len("a-longer-key")); got != want {
		t.Errorf("a key grows LiveBytes by %d, want %d", got, want)
	}
	a.apply(step(wlog.KindPurged, 1, 0), step(wlog.KindCancelled, 2, 0), step(wlog.KindPurged, 2, 0),
		step(wlog.KindCancelled, 3, 0), step(wlog.KindPurged, 3, 0))
	if a.x.LiveBytes() != 0 {
		t.Errorf("LiveBytes = %d with no jobs, want 0", a.x.LiveBytes())
	}
}

func TestQueueRecords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		recs  []wlog.Record
		check func(t *testing.T, x *index.Index)
	}{
		{
			name: "paused",
			recs: []wlog.Record{{Kind: wlog.KindPaused, Queue: "p"}},
			check: func(t *testing.T, x *index.Index) {
				if q := x.Queue("p"); q == nil || !q.Paused {
					t.Errorf("queue p not paused")
				}
			},
		},
		{
			name: "resumed",
			recs: []wlog.Record{{Kind: wlog.KindPaused, Queue: "p"}, {Kind: wlog.KindResumed, Queue: "p"}},
			check: func(t *testing.T, x *index.Index) {
				if q := x.Queue("p"); q == nil || q.Paused {
					t.Errorf("queue p still paused")
				}
			},
		},
		{
			name: "paused-keeps-jobs",
			recs: []wlog.Record{enqueued(1, "p"), {Kind: wlog.KindPaused, Queue: "p"}},
			check: func(t *testing.T, x *index.Index) {
				if q := x.Queue("p"); !q.Paused || q.Next() == nil || q.Count(index.Pending) != 1 {
					t.Errorf("pausing changed the queue's jobs")
				}
			},
		},
		{
			name: "checkpoint",
			recs: []wlog.Record{{Kind: wlog.KindCheckpoint, NextID: 100}},
			check: func(t *testing.T, x *index.Index) {
				if x.NextID() != 100 {
					t.Errorf("NextID = %d, want 100", x.NextID())
				}
			},
		},
		{
			name: "checkpoint-never-lowers",
			recs: []wlog.Record{enqueued(50, "q"), {Kind: wlog.KindCheckpoint, NextID: 10}},
			check: func(t *testing.T, x *index.Index) {
				if x.NextID() != 51 {
					t.Errorf("NextID = %d, want 51", x.NextID())
				}
			},
		},
		{
			name: "enqueue-after-checkpoint",
			recs: []wlog.Record{{Kind: wlog.KindCheckpoint, NextID: 100}, enqueued(7, "q")},
			check: func(t *testing.T, x *index.Index) {
				if x.NextID() != 100 {
					t.Errorf("NextID = %d, want 100", x.NextID())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			a.apply(tt.recs...)
			tt.check(t, a.x)
			if a.x.Records() != len(tt.recs) {
				t.Errorf("Records = %d, want %d", a.x.Records(), len(tt.recs))
			}
		})
	}
}

// TestTransitionMatrix applies every job record kind to a job in every
// state: the transitions the state machine allows succeed and lead to the
// expected state; every other one fails with ErrInconsistent and changes
// nothing.
func TestTransitionMatrix(t *testing.T) {
	t.Parallel()
	allowed := map[wlog.Kind]map[from]from{
		wlog.KindLeased:    {pending: leased},
		wlog.KindExtended:  {leased: leased},
		wlog.KindCompleted: {leased: completed},
		wlog.KindFailed:    {leased: pending},
		wlog.KindDead:      {leased: dead},
		wlog.KindExpired:   {leased: pending},
		wlog.KindReleased:  {leased: pending},
		wlog.KindRequeued:  {dead: pending},
		wlog.KindCancelled: {pending: cancelled},
		wlog.KindPurged:    {completed: gone, dead: gone, cancelled: gone},
	}
	stateOf := map[from]index.State{pending: index.Pending, leased: index.Leased,
		completed: index.Completed, dead: index.Dead, cancelled: index.Cancelled}
	for kind, ok := range allowed {
		for _, f := range []from{pending, leased, completed, dead, cancelled, gone} {
			to, valid := ok[f]
			t.Run(fmt.Sprintf("%s/from=%s", kind, f), func(t *testing.T) {
				t.Parallel()
				a := newApplier(t)
				a.drive(1, f)
				a.drive(2, leased) // a bystander
				var attempt int32
				if j := a.x.Job(1); j != nil {
					attempt = j.Attempt
				}
				r := step(kind, 1, attempt)
				if !valid {
					wantRefused(t, a, r)
					return
				}
				a.apply(r)
				wantRecount(t, a.x)
				if to == gone {
					if a.x.Job(1) != nil {
						t.Fatalf("job 1 still known")
					}
					return
				}
				if got := a.job(1).State; got != stateOf[to] {
					t.Errorf("state %s, want %s", got, stateOf[to])
				}
			})
		}
	}
}

// wantRefused applies r and checks that it fails with an *ApplyError that
// matches ErrInconsistent, and that the index is unchanged.
func wantRefused(t *testing.T, a *applier, r wlog.Record) {
	t.Helper()
	before := snapIndex(a.x)
	pos := a.next()
	pos.Slot = 3
	err := a.x.Apply(&r, pos)
	if !errors.Is(err, index.ErrInconsistent) {
		t.Fatalf("Apply(%s job %d) = %v, want ErrInconsistent", r.Kind, r.Job, err)
	}
	var ae *index.ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("error %T is not an *ApplyError", err)
	}
	if ae.Pos != pos || ae.Kind != r.Kind || ae.Job != r.Job || ae.Reason == "" {
		t.Errorf("ApplyError %+v, want Pos %+v Kind %s Job %d and a reason", *ae, pos, r.Kind, r.Job)
	}
	if msg := err.Error(); !strings.Contains(msg, r.Kind.String()) || !strings.Contains(msg, ae.Reason) {
		t.Errorf("error text %q lacks kind or reason", msg)
	}
	if err := a.x.Check(); err != nil {
		t.Fatalf("Check after refused record: %v", err)
	}
	if after := snapIndex(a.x); !reflect.DeepEqual(before, after) {
		t.Errorf("refused record changed the index:\nbefore %+v\n after %+v", before, after)
	}
}

// TestRefused covers the invalid records the matrix does not: wrong
// attempts, bad creations and queue records.
func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  wlog.Record
	}{
		{"leased/same-attempt", step(wlog.KindLeased, 4, 0)},  // attempt 1 again
		{"leased/skips-attempt", step(wlog.KindLeased, 4, 2)}, // attempt 3 after 1
		{"leased/already-leased", step(wlog.KindLeased, 1, 1)},
		{"completed/stale-attempt", step(wlog.KindCompleted, 1, 0)},
		{"completed/future-attempt", step(wlog.KindCompleted, 1, 2)},
		{"failed/stale-attempt", step(wlog.KindFailed, 1, 0)},
		{"dead/future-attempt", step(wlog.KindDead, 1, 2)},
		{"expired/stale-attempt", step(wlog.KindExpired, 1, 0)},
		{"released/stale-attempt", step(wlog.KindReleased, 1, 0)},
		{"extended/stale-attempt", step(wlog.KindExtended, 1, 0)},
		{"completed/pending-job", step(wlog.KindCompleted, 4, 1)},
		{"cancelled/leased-job", step(wlog.KindCancelled, 1, 0)},
		{"requeued/pending-job", step(wlog.KindRequeued, 4, 0)},
		{"purged/pending-job", step(wlog.KindPurged, 4, 0)},
		{"purged/leased-job", step(wlog.KindPurged, 1, 0)},
		{"completed/unknown-job", step(wlog.KindCompleted, 99, 1)},
		{"leased/unknown-job", step(wlog.KindLeased, 99, 0)},
		{"purged/unknown-job", step(wlog.KindPurged, 99, 0)},
		{"requeued/unknown-job", step(wlog.KindRequeued, 99, 0)},
		{"enqueued/duplicate", enqueued(1, "q")},
		{"enqueued/duplicate-other-queue", enqueued(4, "new")},
		{"enqueued/job-0", enqueued(0, "q")},
		{"enqueued/no-queue", enqueued(9, "")},
		{"enqueued/key-taken", keyed(enqueued(9, "new"), "k1")},
		{"carry/job-0", wlog.Record{Kind: wlog.KindCarry, Job: 0, Queue: "q", State: uint8(index.Pending)}},
		{"carry/no-queue", wlog.Record{Kind: wlog.KindCarry, Job: 9, State: uint8(index.Pending)}},
		{"carry/state-0", wlog.Record{Kind: wlog.KindCarry, Job: 9, Queue: "new", State: 0}},
		{"carry/state-6", wlog.Record{Kind: wlog.KindCarry, Job: 1, Queue: "new", State: 6}},
		{"carry/state-255", wlog.Record{Kind: wlog.KindCarry, Job: 1, Queue: "q", State: 255}},
		{"carry/key-taken", wlog.Record{Kind: wlog.KindCarry, Job: 1, Queue: "new", Key: "k4", State: uint8(index.Pending)}},
		{"carry/new-job-key-taken", wlog.Record{Kind: wlog.KindCarry, Job: 9, Queue: "new", Key: "k1", State: uint8(index.Pending)}},
		{"paused/no-queue", wlog.Record{Kind: wlog.KindPaused}},
		{"resumed/no-queue", wlog.Record{Kind: wlog.KindResumed}},
		{"kind-0/known-job", wlog.Record{Kind: 0, Job: 1}},
		{"kind-200/known-job", wlog.Record{Kind: 200, Job: 1}},
		{"kind-200/unknown-job", wlog.Record{Kind: 200, Job: 99}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			a.drive(1, leased) // attempt 1 running
			a.drive(2, dead)
			a.drive(4, leased)
			a.apply(step(wlog.KindFailed, 4, 1)) // pending after attempt 1
			a.apply(wlog.Record{Kind: wlog.KindPaused, Queue: "q"})
			wantRefused(t, a, tt.rec)
		})
	}
}

// TestCarry restates a job in every state over nothing and over a job in
// every state, moving it to another queue in half the cases.
func TestCarry(t *testing.T) {
	t.Parallel()
	for _, old := range []from{none, pending, scheduled, leased, completed, dead, cancelled} {
		for _, st := range index.States() {
			for _, queue := range []string{"q", "other"} {
				t.Run(fmt.Sprintf("from=%s/to=%s/queue=%s", old, st, queue), func(t *testing.T) {
					t.Parallel()
					testCarry(t, old, st, queue)
				})
			}
		}
	}
}

func carryRecord(st index.State, queue string) wlog.Record {
	r := wlog.Record{Kind: wlog.KindCarry, Job: 1, At: t0 - 50, Created: t0 - 5000, Queue: queue, Key: "carried",
		Payload: payload, PayloadAt: 11, Priority: 4, RunAt: t0 - 10, MaxAttempts: 9, Attempt: 2,
		BackoffBase: 7, BackoffCap: 70, Timeout: 700, State: uint8(st), Error: "second try failed",
		History: []wlog.Attempt{
			{Started: t0 - 4000, Ended: t0 - 3900, Outcome: wlog.KindFailed, Error: "first try failed", Number: 1, Lease: 1},
			{Started: t0 - 3000, Ended: t0 - 2900, Outcome: wlog.KindFailed, Error: "second try failed", Number: 2, Lease: 2},
		}}
	switch st {
	case index.Leased:
		r.History = append(r.History, wlog.Attempt{Started: t0 - 100, Number: 3, Lease: 3})
		r.Attempt, r.Deadline = 3, t0+100
	case index.Completed:
		r.Result, r.ResultAt, r.Finished = []byte("the result"), 120, t0-20
	case index.Dead, index.Cancelled:
		r.Finished = t0 - 20
	}
	return r
}

func testCarry(t *testing.T, old from, st index.State, queue string) {
	a := newApplier(t)
	a.drive(1, old)
	a.drive(2, pending) // a bystander in queue q
	oldJob := a.x.Job(1)
	r := carryRecord(st, queue)
	pos := a.pos
	a.apply(r)
	j := a.job(1)
	if oldJob != nil && j == oldJob {
		t.Fatalf("carry reused the old *Job")
	}
	want := jobSnap{ID: 1, Queue: queue, Key: "carried",
		Payload: index.Loc{Index: pos.Index, Off: 11, Len: uint32(len(payload))},
		RunAt:   r.RunAt, Created: r.Created, Deadline: r.Deadline, Attempt: int32(r.Attempt),
		MaxAttempts: 9, Prio: 4, State: st, HasX: true, Finished: r.Finished, Error: r.Error,
		History: r.History,
		X: index.Extra{BackoffBase: 7, BackoffCap: 70, Timeout: 700, Error: r.Error, Finished: r.Finished,
			Leases: int32(len(r.History))}} // every history entry here is a lease
	if r.Result != nil {
		want.X.Result = index.Loc{Index: pos.Index, Off: 120, Len: uint32(len(r.Result))}
		want.X.HasResult = true
	}
	if got := snapJob(j); !reflect.DeepEqual(got, want) {
		t.Fatalf("carried job:\n got %+v\nwant %+v", got, want)
	}
	// The carry's slices are not retained.
	r.History[0].Error = "scribbled"
	if j.History()[0].Error != "first try failed" {
		t.Errorf("job history aliases the record's")
	}
	if a.x.Key("k1") != nil {
		t.Errorf("old key k1 still held")
	}
	if a.x.Key("carried") != j {
		t.Errorf("carried key not held by the job")
	}
	wantRecount(t, a.x)
	counts := map[index.State]int{st: 1}
	if queue == "q" {
		counts[index.Pending]++ // the bystander
	} else {
		wantCounts(t, a.x, "q", map[index.State]int{index.Pending: 1})
	}
	wantCounts(t, a.x, queue, counts)
	// The job is scheduled by its new state, and only there.
	q := a.x.Queue(queue)
	var ready []uint64
	if st == index.Pending {
		ready = []uint64{1}
	}
	if got := popReadyExcept(a.x, queue, 2); !slices.Equal(got, ready) {
		t.Errorf("ready jobs %v, want %v", got, ready)
	}
	wantLeased := []uint64(nil)
	if st == index.Leased {
		wantLeased = []uint64{1}
		if d, ok := a.x.NextDeadline(); !ok || d != t0+100 {
			t.Errorf("NextDeadline = %d, %v", d, ok)
		}
	}
	if got := expiredIDs(a.x, math.MaxInt64); !slices.Equal(got, wantLeased) {
		t.Errorf("leased jobs %v, want %v", got, wantLeased)
	}
	var fin []uint64
	if st == index.Completed || st == index.Cancelled {
		fin = []uint64{1}
	}
	if got := finishedIDs(a.x); !slices.Equal(got, fin) {
		t.Errorf("Finished = %v, want %v", got, fin)
	}
	var deadSet []uint64
	if st == index.Dead {
		deadSet = []uint64{1}
	}
	if got := deadIDs(q); !slices.Equal(got, deadSet) {
		t.Errorf("Dead = %v, want %v", got, deadSet)
	}
	// The index holds what a fresh index holding only the carry (and the
	// bystander) holds.
	b := newApplier(t)
	b.drive(2, pending)
	b.apply(carryRecord(st, queue))
	if a.x.LiveBytes() != b.x.LiveBytes() {
		t.Errorf("LiveBytes %d, want %d as after the carry alone", a.x.LiveBytes(), b.x.LiveBytes())
	}
	if got := a.x.CreatedAt(a.x.Created() - 1); got != j {
		t.Errorf("carried job is not last in creation order")
	}
	// The carried attempt count is the one later records must follow.
	a.x.Unreserve(j)
	a.check()
	if st == index.Leased {
		a.apply(step(wlog.KindCompleted, 1, 3))
	}
	if st == index.Pending {
		a.apply(step(wlog.KindLeased, 1, 2))
		if a.job(1).Attempt != 3 {
			t.Errorf("attempt after carry at 2 and a lease = %d, want 3", a.job(1).Attempt)
		}
	}
}

// popReadyExcept pops q's ready jobs, leaving out (and putting back) job
// skip.
func popReadyExcept(x *index.Index, q string, skip uint64) []uint64 {
	var ids []uint64
	for _, id := range popReady(x, q) {
		if id != skip {
			ids = append(ids, id)
		}
	}
	if j := x.Job(skip); j != nil {
		x.Unreserve(j)
	}
	return ids
}

// TestPromote checks that after Promote(now) exactly the pending jobs whose
// RunAt is at or before now are ready, across queues, including after the
// clock steps back (ready jobs not yet due go back to the scheduled heap).
func TestPromote(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	runAts := map[uint64]int64{1: t0 - 1, 2: t0, 3: t0 + 1, 4: t0 + 100, 5: t0 + 50, 6: t0 + 100}
	for id := uint64(1); id <= 6; id++ {
		r := enqueued(id, []string{"a", "b"}[id%2])
		r.RunAt = runAts[id]
		a.apply(r)
	}
	tests := []struct {
		name string
		now  int64
		want []uint64 // ready jobs after Promote(now)
	}{
		{"now=t0", t0, []uint64{1, 2}},
		{"backwards", t0 - 1000, nil},
		{"one-before", t0 + 49, []uint64{1, 2, 3}},
		{"back-a-little", t0, []uint64{1, 2}},
		{"forward-again", t0 + 49, []uint64{1, 2, 3}},
		{"exact", t0 + 50, []uint64{1, 2, 3, 5}},
		{"ties", t0 + 100, []uint64{1, 2, 3, 4, 5, 6}},
	}
	for _, tt := range tests { // sequential: each step builds on the last
		t.Run(tt.name, func(t *testing.T) {
			a.x.Promote(tt.now)
			a.check()
			var got []uint64
			ready, sched := 0, 0
			for _, q := range a.x.Queues() {
				ready += q.Ready()
				sched += q.Scheduled()
				got = append(got, readyIDs(a.x, q.Name)...)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("ready %v, want %v", got, tt.want)
			}
			if ready != len(tt.want) || sched != 6-len(tt.want) {
				t.Errorf("Ready %d Scheduled %d, want %d %d", ready, sched, len(tt.want), 6-len(tt.want))
			}
			for _, j := range a.x.Jobs() {
				if j.State != index.Pending {
					t.Errorf("Promote changed job %d's state to %s", j.ID, j.State)
				}
			}
		})
	}
	// A job due by the latest Promote goes straight to the ready heap.
	r := enqueued(7, "a")
	r.RunAt = t0 + 100
	a.apply(r)
	if !slices.Contains(readyIDs(a.x, "a"), 7) {
		t.Errorf("job due at the last Promote is not ready")
	}
}

// readyIDs lists q's ready jobs in Next order without changing them.
func readyIDs(x *index.Index, q string) []uint64 {
	ids := popReady(x, q)
	for _, id := range ids {
		x.Unreserve(x.Job(id))
	}
	return ids
}

// TestNextOrder checks Next's order: priority (highest first), then RunAt,
// then ID.
func TestNextOrder(t *testing.T) {
	t.Parallel()
	type spec struct {
		id    uint64
		prio  int64
		runAt int64
	}
	tests := []struct {
		name string
		jobs []spec
		want []uint64
	}{
		{
			name: "fixed",
			jobs: []spec{{1, 0, t0}, {2, 5, t0 - 10}, {3, 5, t0 - 20}, {4, 0, t0 - 5}, {5, 10, t0},
				{6, 5, t0 - 20}, {7, -1, t0 - 100}, {8, 0, t0}},
			want: []uint64{5, 3, 6, 2, 4, 1, 8, 7},
		},
		{
			name: "priority-beats-age",
			jobs: []spec{{1, 0, t0 - 1_000_000}, {2, 1, t0}},
			want: []uint64{2, 1},
		},
		{
			name: "runat-beats-id",
			jobs: []spec{{1, 0, t0}, {2, 0, t0 - 1}},
			want: []uint64{2, 1},
		},
		{
			name: "id-breaks-ties",
			jobs: []spec{{3, 2, t0}, {1, 2, t0}, {2, 2, t0}},
			want: []uint64{1, 2, 3},
		},
	}
	// A large random case, with its expected order from sorting.
	rng := rand.New(rand.NewPCG(1, 2))
	var big []spec
	for id := uint64(1); id <= 500; id++ {
		big = append(big, spec{id, int64(rng.IntN(5) - 2), t0 - int64(rng.IntN(20))})
	}
	sorted := slices.Clone(big)
	sort.Slice(sorted, func(i, k int) bool {
		a, b := sorted[i], sorted[k]
		if a.prio != b.prio {
			return a.prio > b.prio
		}
		if a.runAt != b.runAt {
			return a.runAt < b.runAt
		}
		return a.id < b.id
	})
	var bigWant []uint64
	for _, s := range sorted {
		bigWant = append(bigWant, s.id)
	}
	tests = append(tests, struct {
		name string
		jobs []spec
		want []uint64
	}{"random", big, bigWant})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			jobs := slices.Clone(tt.jobs)
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(jobs), func(i, k int) { jobs[i], jobs[k] = jobs[k], jobs[i] })
			for _, s := range jobs {
				r := enqueued(s.id, "q")
				r.Priority, r.RunAt = s.prio, s.runAt
				a.apply(r)
			}
			if got := popReady(a.x, "q"); !slices.Equal(got, tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
			a.check()
		})
	}
}

// TestReserve checks that Reserve takes a pending job out of scheduling and
// Unreserve puts it back where its state (and the clock) calls for.
func TestReserve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		from from
		// between runs between Reserve and Unreserve.
		between func(a *applier, j *index.Job)
		// ready and sched are queue q's heap sizes while reserved and after.
		readyIn, schedIn, readyOut, schedOut int
		leasedOut                            int
	}{
		{name: "ready", from: pending, readyOut: 1},
		{name: "scheduled", from: scheduled, schedOut: 1},
		{name: "scheduled-due-meanwhile", from: scheduled, readyOut: 1,
			between: func(a *applier, j *index.Job) { a.x.Promote(t0 + 1_000_000) }},
		{name: "then-leased", from: pending, leasedOut: 1,
			between: func(a *applier, j *index.Job) { a.apply(step(wlog.KindLeased, 1, 0)) }},
		{name: "then-cancelled", from: pending,
			between: func(a *applier, j *index.Job) { a.apply(step(wlog.KindCancelled, 1, 0)) }},
		{name: "then-requeued", from: dead, readyOut: 1,
			between: func(a *applier, j *index.Job) {
				r := step(wlog.KindRequeued, 1, 0)
				r.RunAt = t0
				a.apply(r)
			}},
		{name: "then-carried", from: pending, readyOut: 1,
			between: func(a *applier, j *index.Job) { a.apply(carryRecord(index.Pending, "q")) }},
		{name: "then-purged", from: dead,
			between: func(a *applier, j *index.Job) { a.apply(step(wlog.KindPurged, 1, 0)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			a.drive(1, tt.from)
			j := a.job(1)
			a.x.Reserve(j)
			a.check()
			q := a.x.Queue("q")
			if !j.Busy || q.Ready() != tt.readyIn || q.Scheduled() != tt.schedIn || q.Next() != nil {
				t.Errorf("reserved: busy %v Ready %d Scheduled %d", j.Busy, q.Ready(), q.Scheduled())
			}
			a.x.Promote(t0 + 1) // promoting does not schedule a reserved job
			if q.Ready()+q.Scheduled() != 0 {
				t.Errorf("Promote scheduled a reserved job")
			}
			if tt.between != nil {
				tt.between(a, j)
			}
			a.x.Unreserve(j)
			a.check()
			if j.Busy {
				t.Errorf("still busy after Unreserve")
			}
			if q.Ready() != tt.readyOut || q.Scheduled() != tt.schedOut {
				t.Errorf("after Unreserve: Ready %d Scheduled %d, want %d %d", q.Ready(), q.Scheduled(), tt.readyOut, tt.schedOut)
			}
			if got := len(expiredIDs(a.x, math.MaxInt64)); got != tt.leasedOut {
				t.Errorf("leased jobs %d, want %d", got, tt.leasedOut)
			}
			if tt.readyOut == 1 && q.Next() != a.job(1) {
				t.Errorf("Next is not the unreserved job")
			}
		})
	}
}

// TestReserveLeased reserves a leased job, as the queue does (holdLease)
// while it makes a completion, failure, extension or release durable: the
// index must stay consistent while the job is reserved, and the job must be
// back under lease once unreserved.
func TestReserveLeased(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	a.drive(1, leased)
	a.drive(2, leased)
	j := a.job(1)
	a.x.Reserve(j)
	// A reserved leased job leaves the leased heap (the operation in
	// flight decides its fate, not the reaper) and Check accepts that.
	if err := a.x.Check(); err != nil {
		t.Fatalf("Check while a leased job is reserved: %v", err)
	}
	if got := expiredIDs(a.x, math.MaxInt64); !slices.Equal(got, []uint64{2}) {
		t.Errorf("leased jobs while 1 is reserved %v, want [2]", got)
	}
	a.x.Unreserve(j)
	a.check()
	if got := expiredIDs(a.x, math.MaxInt64); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("leased jobs after Unreserve %v, want [1 2]", got)
	}
	a.x.Reserve(j)
	a.apply(step(wlog.KindExtended, 1, 1))
	a.x.Unreserve(j)
	a.check()
	a.x.Reserve(j)
	a.apply(step(wlog.KindCompleted, 1, 1))
	a.x.Unreserve(j)
	a.check()
	if got := expiredIDs(a.x, math.MaxInt64); !slices.Equal(got, []uint64{2}) {
		t.Errorf("leased jobs after completion %v, want [2]", got)
	}
}

// TestExpired checks that Expired yields the leased jobs whose deadline is
// at or before now, earliest deadline (then lowest ID) first, and stops when
// asked.
func TestExpired(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	deadlines := map[uint64]int64{1: t0 + 5, 2: t0 + 3, 3: t0 + 1, 4: t0 + 3, 5: t0 + 10, 6: t0 + 6}
	for id := uint64(1); id <= 6; id++ {
		a.drive(id, pending)
		r := step(wlog.KindLeased, id, 0)
		r.Deadline = deadlines[id]
		a.apply(r)
	}
	a.drive(7, pending) // not leased
	tests := []struct {
		name  string
		now   int64
		limit int // stop after this many; 0 for all
		want  []uint64
	}{
		{"none-due", t0, 0, nil},
		{"one", t0 + 1, 0, []uint64{3}},
		{"ties-by-id", t0 + 3, 0, []uint64{3, 2, 4}},
		{"inclusive", t0 + 5, 0, []uint64{3, 2, 4, 1}},
		{"all", t0 + 100, 0, []uint64{3, 2, 4, 1, 6, 5}},
		{"stop", t0 + 100, 2, []uint64{3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []uint64
			a.x.Expired(tt.now, func(j *index.Job) bool {
				got = append(got, j.ID)
				return tt.limit == 0 || len(got) < tt.limit
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("Expired(t0+%d) = %v, want %v", tt.now-t0, got, tt.want)
			}
		})
	}
	t.Run("after-extend-and-complete", func(t *testing.T) {
		// Sequential subtests run before the parallel ones above, which
		// share a; this one takes its own index.
		b := newApplier(t)
		for id := uint64(1); id <= 3; id++ {
			b.drive(id, pending)
			r := step(wlog.KindLeased, id, 0)
			r.Deadline = t0 + int64(id)
			b.apply(r)
		}
		ext := step(wlog.KindExtended, 1, 1)
		ext.Deadline = t0 + 10
		b.apply(ext, step(wlog.KindCompleted, 2, 1))
		if got := expiredIDs(b.x, t0+100); !slices.Equal(got, []uint64{3, 1}) {
			t.Errorf("Expired = %v, want [3 1]", got)
		}
		if d, _ := b.x.NextDeadline(); d != t0+3 {
			t.Errorf("NextDeadline = t0+%d, want t0+3", d-t0)
		}
	})
}

// TestFinished checks that Finished yields completed and cancelled jobs in
// the order they finished, skipping purged (and carried-away) ones.
func TestFinished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(a *applier)
		limit int
		want  []uint64
	}{
		{
			name: "order",
			build: func(a *applier) {
				for id := uint64(1); id <= 5; id++ {
					a.drive(id, leased)
				}
				a.drive(6, pending)
				a.apply(step(wlog.KindCompleted, 3, 1), step(wlog.KindCompleted, 1, 1),
					step(wlog.KindCancelled, 6, 0), step(wlog.KindDead, 4, 1), step(wlog.KindCompleted, 2, 1))
			},
			// By finish time (completions share one time here), then ID;
			// not by the order the records were applied.
			want: []uint64{1, 2, 3, 6},
		},
		{
			name: "stop",
			build: func(a *applier) {
				for id := uint64(1); id <= 3; id++ {
					a.drive(id, cancelled)
				}
			},
			limit: 2,
			want:  []uint64{1, 2},
		},
		{
			name: "skips-purged",
			build: func(a *applier) {
				for id := uint64(1); id <= 5; id++ {
					a.drive(id, cancelled)
				}
				a.apply(step(wlog.KindPurged, 1, 0), step(wlog.KindPurged, 3, 0), step(wlog.KindPurged, 5, 0))
			},
			want: []uint64{2, 4},
		},
		{
			name: "carry-keeps-finish-time-order",
			build: func(a *applier) {
				for id := uint64(2); id <= 3; id++ {
					a.drive(id, cancelled)
				}
				a.drive(1, completed)
				a.apply(carryRecord(index.Completed, "q")) // job 1 again
				a.drive(4, cancelled)
				c := carryRecord(index.Cancelled, "q")
				c.Job, c.Key = 2, "c2"
				a.apply(c)
			},
			// A carry restates the finish time, so a carried job keeps
			// its place (compaction must not delay retention).
			want: []uint64{1, 2, 3, 4},
		},
		{
			name: "many-purged-from-front",
			build: func(a *applier) {
				// Enough purges to make the index compact its list.
				for id := uint64(1); id <= 3000; id++ {
					a.fold(enqueued(id, "q"), step(wlog.KindCancelled, id, 0))
				}
				for id := uint64(1); id <= 2500; id++ {
					if id != 2000 {
						a.fold(step(wlog.KindPurged, id, 0))
					}
				}
				for id := uint64(2600); id <= 2700; id++ {
					a.fold(step(wlog.KindPurged, id, 0))
				}
				a.check()
			},
			want: func() []uint64 {
				ids := []uint64{2000}
				for id := uint64(2501); id <= 3000; id++ {
					if id < 2600 || id > 2700 {
						ids = append(ids, id)
					}
				}
				return ids
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			tt.build(a)
			var got []uint64
			a.x.Finished(func(j *index.Job) bool {
				got = append(got, j.ID)
				if j.State != index.Completed && j.State != index.Cancelled {
					t.Errorf("Finished yields job %d in state %s", j.ID, j.State)
				}
				return tt.limit == 0 || len(got) < tt.limit
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("Finished = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCreatedOrder checks the creation order that compaction walks.
func TestCreatedOrder(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	for id := uint64(1); id <= 4; id++ {
		a.drive(id, cancelled)
	}
	a.apply(step(wlog.KindPurged, 2, 0))
	c := carryRecord(index.Pending, "q")
	c.Job = 3
	a.apply(c)
	var got []uint64
	for i := 0; i < a.x.Created(); i++ {
		if j := a.x.CreatedAt(i); j != nil {
			got = append(got, j.ID)
		}
	}
	if want := []uint64{1, 4, 3}; !slices.Equal(got, want) {
		t.Errorf("live creation order %v, want %v", got, want)
	}
	a.x.TidyCreated()
	if a.x.Created() != 3 {
		t.Errorf("Created() = %d after tidying, want 3", a.x.Created())
	}
	for i := 0; i < a.x.Created(); i++ {
		if j := a.x.CreatedAt(i); j == nil || j.ID != []uint64{1, 4, 3}[i] {
			t.Errorf("CreatedAt(%d) = %v after tidying", i, j)
		}
	}
}

// TestLenient covers the replay of a log whose front was compacted away.
func TestLenient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		recs    []wlog.Record
		wantErr bool
	}{
		{"orphan-restated", []wlog.Record{step(wlog.KindCompleted, 1, 1), carryRecord(index.Pending, "q")}, false},
		{"orphan-purged", []wlog.Record{step(wlog.KindPurged, 1, 0)}, false},
		{"orphan-lost", []wlog.Record{step(wlog.KindCompleted, 1, 1)}, true},
		{"orphan-lost-after-carry-of-other", []wlog.Record{step(wlog.KindLeased, 7, 0), carryRecord(index.Pending, "q")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := newApplier(t)
			a.x.SetLenient()
			a.apply(tt.recs...)
			err := a.x.EndReplay()
			if tt.wantErr != (err != nil) {
				t.Fatalf("EndReplay = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, index.ErrInconsistent) {
				t.Errorf("EndReplay error %v does not match ErrInconsistent", err)
			}
			if a.x.NextID() <= 7 && tt.name == "orphan-lost-after-carry-of-other" {
				t.Errorf("NextID %d does not cover orphan job 7", a.x.NextID())
			}
			// After the replay, unknown jobs are refused again.
			wantRefused(t, a, step(wlog.KindCompleted, 99, 1))
		})
	}
}

// TestUnresolved follows Unresolved through a lenient replay: it counts the
// unknown jobs EndReplay would reject at that point, so a replay can tell
// after each entry whether the prefix so far would end cleanly. EndReplay
// names the earliest unresolved record.
func TestUnresolved(t *testing.T) {
	t.Parallel()
	a := newApplier(t)
	if a.x.Unresolved() != 0 {
		t.Fatalf("Unresolved before a lenient replay: %d", a.x.Unresolved())
	}
	a.x.SetLenient()
	other := carryRecord(index.Pending, "q")
	other.Job, other.Key = 2, ""
	steps := []struct {
		rec  wlog.Record
		want int
	}{
		{step(wlog.KindCompleted, 1, 1), 1}, // job 1's creation is not in the log
		{step(wlog.KindLeased, 7, 0), 2},
		{carryRecord(index.Pending, "q"), 1}, // restates job 1
		{step(wlog.KindPurged, 5, 0), 1},     // a purged unknown job is fine
		{step(wlog.KindCompleted, 8, 1), 2},
		{step(wlog.KindPurged, 8, 0), 1}, // ...even after other records
		{other, 1},                       // a carry of another job resolves nothing
	}
	for i, s := range steps {
		a.apply(s.rec)
		if got := a.x.Unresolved(); got != s.want {
			t.Fatalf("after record %d (%s job %d): Unresolved %d, want %d", i+1, s.rec.Kind, s.rec.Job, got, s.want)
		}
	}
	err := a.x.EndReplay()
	var ae *index.ApplyError
	if !errors.As(err, &ae) || ae.Job != 7 || ae.Pos.Index != 2 {
		t.Fatalf("EndReplay = %v, want the record of job 7 at index 2", err)
	}
	if a.x.Unresolved() != 0 {
		t.Errorf("Unresolved after EndReplay: %d", a.x.Unresolved())
	}
	// EndReplay names the earliest unresolved record whatever the map's
	// order.
	for range 20 {
		b := newApplier(t)
		b.x.SetLenient()
		for id := uint64(30); id > 10; id-- {
			b.apply(step(wlog.KindCompleted, id, 1))
		}
		if err := b.x.EndReplay(); !errors.As(err, &ae) || ae.Job != 30 {
			t.Fatalf("EndReplay = %v, want the first record (job 30)", err)
		}
	}
}

func deadIDs(q *index.Queue) []uint64 {
	var ids []uint64
	q.Dead(func(j *index.Job) bool { ids = append(ids, j.ID); return true })
	slices.Sort(ids)
	return ids
}

func wantJob(t *testing.T, j *index.Job, s index.State, attempt int32) {
	t.Helper()
	if j.State != s || j.Attempt != attempt {
		t.Errorf("job %d: %s attempt %d, want %s attempt %d", j.ID, j.State, j.Attempt, s, attempt)
	}
}

func wantHistory(t *testing.T, j *index.Job, want ...wlog.Attempt) {
	t.Helper()
	if got := j.History(); !reflect.DeepEqual(got, want) {
		t.Errorf("history %+v, want %+v", got, want)
	}
}

// wantCounts checks queue name's counts per state (missing states are 0).
func wantCounts(t *testing.T, x *index.Index, name string, want map[index.State]int) {
	t.Helper()
	q := x.Queue(name)
	if q == nil {
		t.Fatalf("queue %q unknown", name)
	}
	for _, s := range index.States() {
		if got := q.Count(s); got != want[s] {
			t.Errorf("queue %q: Count(%s) = %d, want %d", name, s, got, want[s])
		}
	}
}

// wantRecount checks every queue's counts against a recount of the jobs.
func wantRecount(t testing.TB, x *index.Index) {
	t.Helper()
	recount := map[string]map[index.State]int{}
	for _, j := range x.Jobs() {
		if recount[j.Queue.Name] == nil {
			recount[j.Queue.Name] = map[index.State]int{}
		}
		recount[j.Queue.Name][j.State]++
	}
	for _, q := range x.Queues() {
		for _, s := range index.States() {
			if got, want := q.Count(s), recount[q.Name][s]; got != want {
				t.Fatalf("queue %q: Count(%s) = %d, recount %d", q.Name, s, got, want)
			}
		}
	}
}

// walkJob is the random walk's model of one job, kept independently of the
// index.
type walkJob struct {
	state    index.State
	queue    string
	key      string
	attempt  int32
	deadline int64
}

// walk drives an index through a seeded random sequence of valid records
// and compares it with its own model after every step.
type walk struct {
	a      *applier
	rng    *rand.Rand
	now    int64
	nextID uint64
	jobs   map[uint64]*walkJob
	ids    []uint64 // the keys of jobs, for picking at random
	keys   map[string]uint64
}

var walkQueues = []string{"a", "b", "c"}

// TestRandomWalk applies 10,000 random valid records (with Promote, Reserve
// and Unreserve in between, as the queue calls them) and checks the
// index's invariants and its agreement with a model after every step.
func TestRandomWalk(t *testing.T) {
	t.Parallel()
	steps := 10_000
	if testing.Short() {
		steps = 2_000
	}
	w := &walk{a: newApplier(t), rng: rand.New(rand.NewPCG(2024, 1)), now: t0, nextID: 1,
		jobs: map[uint64]*walkJob{}, keys: map[string]uint64{}}
	kinds := map[wlog.Kind]int{}
	for i := 0; i < steps; i++ {
		k := w.step()
		kinds[k]++
		if err := w.a.x.Check(); err != nil {
			t.Fatalf("step %d (%s): Check: %v", i, k, err)
		}
		if err := w.compare(); err != nil {
			t.Fatalf("step %d (%s): %v", i, k, err)
		}
	}
	// Make sure the walk covered every kind.
	for _, k := range wlog.Kinds() {
		if kinds[k] == 0 {
			t.Errorf("the walk never applied a %s record", k)
		}
	}
	t.Logf("%d steps, %d jobs at the end, kinds %v", steps, len(w.jobs), kinds)
}

// step applies one random record (or promotes) and returns its kind (0 for
// a promotion).
func (w *walk) step() wlog.Kind {
	p := w.rng.Float64()
	switch {
	case len(w.ids) == 0 || (p < 0.35 && len(w.ids) < 150):
		return w.enqueue()
	case p < 0.40:
		w.now += int64(w.rng.IntN(30))
		w.a.x.Promote(w.now)
		return 0
	case p < 0.42:
		k := wlog.KindPaused
		if w.rng.IntN(2) == 0 {
			k = wlog.KindResumed
		}
		w.apply(wlog.Record{Kind: k, Queue: walkQueues[w.rng.IntN(len(walkQueues))]}, nil)
		return k
	case p < 0.43:
		r := wlog.Record{Kind: wlog.KindCheckpoint, NextID: w.nextID + uint64(w.rng.IntN(3))}
		w.apply(r, nil)
		w.nextID = max(w.nextID, r.NextID)
		return r.Kind
	}
	id := w.ids[w.rng.IntN(len(w.ids))]
	m := w.jobs[id]
	r := w.transition(id, m)
	// The queue reserves a job while its record is made durable; it never
	// reserves a leased job here (see TestReserveLeased).
	var reserved *index.Job
	if m.state != index.Leased && w.rng.IntN(3) == 0 {
		reserved = w.a.x.Job(id)
		w.a.x.Reserve(reserved)
		if err := w.a.x.Check(); err != nil {
			w.a.t.Fatalf("Check with job %d reserved: %v", id, err)
		}
	}
	w.apply(r, reserved)
	w.model(r)
	return r.Kind
}

func (w *walk) apply(r wlog.Record, reserved *index.Job) {
	w.a.t.Helper()
	if err := w.a.x.Apply(&r, w.a.next()); err != nil {
		w.a.t.Fatalf("Apply(%s job %d): %v", r.Kind, r.Job, err)
	}
	if reserved != nil {
		w.a.x.Unreserve(reserved)
	}
}

// freeKey returns an unheld key from a small pool, or "".
func (w *walk) freeKey() string {
	k := fmt.Sprintf("key-%d", w.rng.IntN(60))
	if _, held := w.keys[k]; held || w.rng.IntN(3) != 0 {
		return ""
	}
	return k
}

func (w *walk) enqueue() wlog.Kind {
	id := w.nextID
	r := wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: w.now, Queue: walkQueues[w.rng.IntN(len(walkQueues))],
		Key: w.freeKey(), Payload: payload, PayloadAt: 9, Priority: int64(w.rng.IntN(3)),
		RunAt: w.now + int64(w.rng.IntN(100)-50), MaxAttempts: 5}
	w.apply(r, nil)
	w.model(r)
	return r.Kind
}

// transition picks a random valid record for job id in model state m.
func (w *walk) transition(id uint64, m *walkJob) wlog.Record {
	r := wlog.Record{Job: id, At: w.now, Attempt: int64(m.attempt)}
	var kinds []wlog.Kind
	switch m.state {
	case index.Pending:
		kinds = []wlog.Kind{wlog.KindLeased, wlog.KindLeased, wlog.KindCancelled}
	case index.Leased:
		kinds = []wlog.Kind{wlog.KindCompleted, wlog.KindFailed, wlog.KindDead, wlog.KindExpired,
			wlog.KindReleased, wlog.KindExtended}
	case index.Completed, index.Cancelled:
		kinds = []wlog.Kind{wlog.KindPurged}
	case index.Dead:
		kinds = []wlog.Kind{wlog.KindRequeued, wlog.KindPurged}
	}
	if w.rng.IntN(10) == 0 {
		return w.carry(id, m)
	}
	r.Kind = kinds[w.rng.IntN(len(kinds))]
	switch r.Kind {
	case wlog.KindLeased:
		r.Attempt++
		r.Deadline = w.now + int64(w.rng.IntN(100))
	case wlog.KindExtended:
		r.Deadline = w.now + int64(w.rng.IntN(100))
	case wlog.KindCompleted:
		if w.rng.IntN(2) == 0 {
			r.Result, r.ResultAt = []byte("ok"), 5
		}
	case wlog.KindFailed, wlog.KindExpired, wlog.KindReleased:
		r.RunAt = w.now + int64(w.rng.IntN(60)-10)
		r.Error = "walk"
	case wlog.KindRequeued:
		r.RunAt = w.now + int64(w.rng.IntN(60)-10)
		if w.rng.IntN(2) == 0 {
			r.Queue = walkQueues[w.rng.IntN(len(walkQueues))]
		}
	}
	return r
}

// carry restates job id with random state, queue, key and attempt.
func (w *walk) carry(id uint64, m *walkJob) wlog.Record {
	st := index.States()[w.rng.IntN(5)]
	r := wlog.Record{Kind: wlog.KindCarry, Job: id, At: w.now, Created: w.now - 100,
		Queue: walkQueues[w.rng.IntN(len(walkQueues))], Key: m.key, Payload: payload, PayloadAt: 3,
		RunAt: w.now + int64(w.rng.IntN(60)-30), MaxAttempts: 5, Attempt: int64(w.rng.IntN(4)),
		State: uint8(st), History: []wlog.Attempt{{Started: w.now - 50, Ended: w.now - 40, Outcome: wlog.KindFailed}}}
	if w.rng.IntN(3) == 0 {
		r.Key = w.freeKey()
	}
	if st == index.Leased {
		r.Attempt++
		r.Deadline = w.now + int64(w.rng.IntN(100))
	}
	if st == index.Completed {
		r.Result = []byte("carried")
	}
	return r
}

// model updates the model after r was applied.
func (w *walk) model(r wlog.Record) {
	m := w.jobs[r.Job]
	switch r.Kind {
	case wlog.KindEnqueued, wlog.KindCarry:
		if m == nil {
			m = &walkJob{}
			w.jobs[r.Job] = m
			w.ids = append(w.ids, r.Job)
		}
		if m.key != "" {
			delete(w.keys, m.key)
		}
		*m = walkJob{state: index.Pending, queue: r.Queue, key: r.Key, attempt: int32(r.Attempt), deadline: r.Deadline}
		if r.Kind == wlog.KindCarry {
			m.state = index.State(r.State)
		}
		if r.Key != "" {
			w.keys[r.Key] = r.Job
		}
		w.nextID = max(w.nextID, r.Job+1)
	case wlog.KindLeased:
		m.state, m.attempt, m.deadline = index.Leased, int32(r.Attempt), r.Deadline
	case wlog.KindExtended:
		m.deadline = r.Deadline
	case wlog.KindCompleted:
		m.state = index.Completed
	case wlog.KindDead:
		m.state = index.Dead
	case wlog.KindFailed, wlog.KindExpired:
		m.state = index.Pending
	case wlog.KindReleased:
		m.state = index.Pending
		m.attempt--
	case wlog.KindRequeued:
		m.state, m.attempt = index.Pending, 0
		if r.Queue != "" {
			m.queue = r.Queue
		}
	case wlog.KindCancelled:
		m.state = index.Cancelled
	case wlog.KindPurged:
		if m.key != "" {
			delete(w.keys, m.key)
		}
		delete(w.jobs, r.Job)
		i := slices.Index(w.ids, r.Job)
		w.ids[i] = w.ids[len(w.ids)-1]
		w.ids = w.ids[:len(w.ids)-1]
	}
}

// compare checks the index against the model: every job, every key, the
// counts per queue and state (against both the model and a recount of the
// index's jobs), the scheduling heaps and the lease deadlines.
func (w *walk) compare() error {
	x := w.a.x
	if x.Len() != len(w.jobs) {
		return fmt.Errorf("Len %d, model %d", x.Len(), len(w.jobs))
	}
	counts := map[string]*[6]int{}
	recount := map[string]*[6]int{}
	for _, q := range walkQueues {
		counts[q], recount[q] = new([6]int), new([6]int)
	}
	pendingJobs := 0
	var due []*walkJob
	for id, m := range w.jobs {
		j := x.Job(id)
		if j == nil {
			return fmt.Errorf("job %d missing", id)
		}
		if j.State != m.state || j.Queue.Name != m.queue || j.Key() != m.key || j.Attempt != m.attempt {
			return fmt.Errorf("job %d: %s in %q key %q attempt %d, model %s in %q key %q attempt %d",
				id, j.State, j.Queue.Name, j.Key(), j.Attempt, m.state, m.queue, m.key, m.attempt)
		}
		if m.state == index.Leased && j.Deadline() != m.deadline {
			return fmt.Errorf("job %d: deadline %d, model %d", id, j.Deadline(), m.deadline)
		}
		if j.Busy {
			return fmt.Errorf("job %d left busy", id)
		}
		counts[m.queue][m.state]++
		recount[j.Queue.Name][j.State]++ // Len matches, so these are all of the index's jobs
		if m.state == index.Pending {
			pendingJobs++
		}
		if m.state == index.Leased && m.deadline <= w.now {
			due = append(due, m)
		}
	}
	for k, id := range w.keys {
		if j := x.Key(k); j == nil || j.ID != id {
			return fmt.Errorf("key %q: index has %v, model job %d", k, j, id)
		}
	}
	heaped := 0
	for _, q := range x.Queues() {
		for _, s := range index.States() {
			if q.Count(s) != counts[q.Name][s] || q.Count(s) != recount[q.Name][s] {
				return fmt.Errorf("queue %q: Count(%s) = %d, model %d, recount %d",
					q.Name, s, q.Count(s), counts[q.Name][s], recount[q.Name][s])
			}
		}
		heaped += q.Ready() + q.Scheduled()
	}
	if heaped != pendingJobs {
		return fmt.Errorf("%d jobs in ready and scheduled heaps, %d pending", heaped, pendingJobs)
	}
	var got []*index.Job
	x.Expired(w.now, func(j *index.Job) bool { got = append(got, j); return true })
	if len(got) != len(due) {
		return fmt.Errorf("Expired yields %d jobs, model %d", len(got), len(due))
	}
	for i := 1; i < len(got); i++ {
		if a, b := got[i-1], got[i]; a.Deadline() > b.Deadline() || (a.Deadline() == b.Deadline() && a.ID >= b.ID) {
			return fmt.Errorf("Expired out of order: job %d (deadline %d) before job %d (%d)", a.ID, a.Deadline(), b.ID, b.Deadline())
		}
	}
	if x.NextID() < w.nextID {
		return fmt.Errorf("NextID %d below the model's %d", x.NextID(), w.nextID)
	}
	return nil
}
