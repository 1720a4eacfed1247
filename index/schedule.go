package index

import (
	"bytes"
	"sort"

	wlog "github.com/walq/walq/log"
)

// Schedule is a periodic schedule as the log states it: a KindSchedule
// record restates all of it. The index keeps the template's payload in
// memory (schedules are few), so that a tick can enqueue it without reading
// the log. Fields are read by the queue package under its lock and changed
// only by Apply.
type Schedule struct {
	// Name identifies the schedule.
	Name string
	// Spec is a cron expression or "@every <duration>".
	Spec string
	// Missed is the missed-tick policy (the queue package gives it
	// meaning).
	Missed uint8
	// Anchor is when the schedule was registered (Unix ns): the first tick
	// is the first after it.
	Anchor int64
	// LastRun is the tick (Unix ns) that last enqueued a job, 0 if none.
	LastRun int64
	// The job template.
	Queue       string
	Payload     []byte
	Priority    int64
	MaxAttempts int64
	BackoffBase int64
	BackoffCap  int64
	Timeout     int64
	Group       string
}

// scheduleOverhead approximates the log bytes of a schedule record beyond
// its payload, name and spec.
const scheduleOverhead = 64

func (s *Schedule) bytes() int64 {
	return scheduleOverhead + int64(len(s.Payload)+len(s.Name)+len(s.Spec))
}

// Record returns the KindSchedule record that restates s at time at.
func (s *Schedule) Record(at int64) wlog.Record {
	p := s.Payload
	if p == nil {
		p = []byte{}
	}
	return wlog.Record{Kind: wlog.KindSchedule, At: at, Key: s.Name, Spec: s.Spec, State: s.Missed,
		Created: s.Anchor, RunAt: s.LastRun, Queue: s.Queue, Payload: p, Priority: s.Priority,
		MaxAttempts: s.MaxAttempts, BackoffBase: s.BackoffBase, BackoffCap: s.BackoffCap, Timeout: s.Timeout,
		Group: s.Group}
}

// SameDefinition reports whether s and o schedule the same job the same
// way, whatever their anchors and last runs.
func (s *Schedule) SameDefinition(o *Schedule) bool {
	return s.Name == o.Name && s.Spec == o.Spec && s.Missed == o.Missed && s.Queue == o.Queue &&
		bytes.Equal(s.Payload, o.Payload) && s.Priority == o.Priority && s.MaxAttempts == o.MaxAttempts &&
		s.BackoffBase == o.BackoffBase && s.BackoffCap == o.BackoffCap && s.Timeout == o.Timeout && s.Group == o.Group
}

// applySchedule handles KindSchedule: it replaces the named schedule's
// state with the record's, or removes the schedule when Spec is empty.
func (x *Index) applySchedule(r *wlog.Record, pos Pos) error {
	if r.Key == "" {
		return x.bad(r, pos, "schedule without a name")
	}
	if old := x.schedules[r.Key]; old != nil {
		x.liveBytes -= old.bytes()
		delete(x.schedules, r.Key)
	}
	if r.Spec == "" {
		return nil
	}
	if r.Queue == "" {
		return x.bad(r, pos, "schedule %q without a queue name", r.Key)
	}
	s := &Schedule{Name: r.Key, Spec: r.Spec, Missed: r.State, Anchor: r.Created, LastRun: r.RunAt,
		Queue: r.Queue, Payload: bytes.Clone(r.Payload), Priority: r.Priority, MaxAttempts: r.MaxAttempts,
		BackoffBase: r.BackoffBase, BackoffCap: r.BackoffCap, Timeout: r.Timeout, Group: r.Group}
	if s.Payload == nil {
		s.Payload = []byte{}
	}
	if x.schedules == nil {
		x.schedules = make(map[string]*Schedule)
	}
	x.schedules[s.Name] = s
	x.liveBytes += s.bytes()
	return nil
}

// Schedule returns the named schedule, or nil. The result must not be
// modified.
func (x *Index) Schedule(name string) *Schedule { return x.schedules[name] }

// Schedules returns every schedule, sorted by name. The results must not be
// modified.
func (x *Index) Schedules() []*Schedule {
	ss := make([]*Schedule, 0, len(x.schedules))
	for _, s := range x.schedules {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	return ss
}
