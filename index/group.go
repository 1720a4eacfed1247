package index

import (
	"fmt"
	"slices"
)

// group is an ordered group: the jobs that named it run one at a time, in
// job ID (enqueue) order. Its members are its unfinished (pending or
// leased) jobs by ID; only its head is ever in a scheduling heap: the
// lowest-ID member, while no member is leased and no enqueue into the
// group is in flight. Every other pending member is parked (in no heap).
type group struct {
	name    string
	members []*Job
	leased  int  // members leased: 0 or 1 on the live path
	held    int  // enqueues into the group in flight (ReserveGroup)
	head    *Job // the member allowed in the heaps, nil if none
}

// Features are the rarely set parts of a job that the features of walq
// beyond the core add: its ordered group and its latest progress report.
// They live behind a pointer in Extra so that the jobs without them pay
// 8 bytes.
type Features struct {
	// Group is the job's ordered group, empty if none.
	Group string
	// Progress and Note are the job's latest progress report.
	Progress int64
	Note     string
	// ReleasedKey is the idempotency key the job gave up when it died
	// (see FlagReleaseKeyOnDeath); empty if it holds its key or never
	// had one. The job no longer holds it: Key returns "".
	ReleasedKey string
}

// features returns j's Features, allocating them if needed.
func (j *Job) features() *Features {
	e := j.extra()
	if e.F == nil {
		e.F = &Features{}
	}
	return e.F
}

// Feat returns j's Features; the zero value if it has none.
func (j *Job) Feat() Features {
	if j.X == nil || j.X.F == nil {
		return Features{}
	}
	return *j.X.F
}

// Group returns the ordered group the job belongs to, empty if none.
func (j *Job) Group() string {
	if !j.grouped() {
		return ""
	}
	return j.X.F.Group
}

// grouped reports whether j belongs to a group.
func (j *Job) grouped() bool { return j.X != nil && j.X.F != nil && j.X.F.Group != "" }

// groupOf returns j's group, creating it if needed.
func (x *Index) groupOf(j *Job) *group { return x.groupNamed(j.X.F.Group) }

func (x *Index) groupNamed(name string) *group {
	g := x.groups[name]
	if g == nil {
		if x.groups == nil {
			x.groups = make(map[string]*group)
		}
		g = &group{name: name}
		x.groups[name] = g
	}
	return g
}

// member reports whether a job in state s counts in its group.
func member(s State) bool { return s == Pending || s == Leased }

// groupMove keeps j's group in step with j's move from state old to j.State
// (old is not valid for a new job). Called by setState before it schedules
// j.
func (x *Index) groupMove(j *Job, old State) {
	g := x.groupOf(j)
	was := old.Valid() && member(old)
	is := member(j.State)
	switch {
	case !was && is:
		i, _ := slices.BinarySearchFunc(g.members, j.ID, func(m *Job, id uint64) int { return cmpID(m.ID, id) })
		g.members = slices.Insert(g.members, i, j)
	case was && !is:
		g.drop(j)
	}
	if old == Leased {
		g.leased--
	}
	if j.State == Leased {
		g.leased++
	}
	x.regroup(g)
}

// groupRemove takes a forgotten (or replaced) job out of its group.
func (x *Index) groupRemove(j *Job) {
	g := x.groupOf(j)
	if member(j.State) {
		g.drop(j)
		if j.State == Leased {
			g.leased--
		}
	}
	if g.head == j {
		g.head = nil
	}
	x.regroup(g)
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// drop removes j from the members.
func (g *group) drop(j *Job) {
	if i := slices.Index(g.members, j); i >= 0 {
		g.members = slices.Delete(g.members, i, i+1)
	}
}

// regroup chooses g's head again, parking the old one and scheduling the
// new one, and forgets g once it has no member and no enqueue in flight.
func (x *Index) regroup(g *group) {
	var head *Job
	if g.leased == 0 && g.held == 0 && len(g.members) > 0 {
		head = g.members[0]
	}
	if head != g.head {
		old := g.head
		g.head = head
		if old != nil && old.State == Pending && x.jobs.get(old.ID) == old {
			x.unschedule(old) // parked
		}
		if head != nil {
			x.schedule(head)
		}
	}
	if len(g.members) == 0 && g.held == 0 {
		delete(x.groups, g.name)
	}
}

// parked reports whether j, a pending job, must stay out of the heaps:
// it belongs to a group whose turn is not its own.
func (x *Index) parked(j *Job) bool {
	if !j.grouped() {
		return false
	}
	g := x.groups[j.X.F.Group]
	return g == nil || g.head != j
}

// ReserveGroup holds the named group while an enqueue into it is in
// flight: no job of the group is leased until UnreserveGroup, so that a
// job enqueued later can never run before one enqueued earlier whose entry
// is applied after it (entries in flight are applied in any order).
func (x *Index) ReserveGroup(name string) {
	g := x.groupNamed(name)
	g.held++
	x.regroup(g)
}

// UnreserveGroup ends a ReserveGroup.
func (x *Index) UnreserveGroup(name string) {
	g := x.groupNamed(name)
	g.held--
	x.regroup(g)
}

// Parked calls fn with every pending job waiting for its group's turn (in
// no heap and not reserved), in no particular order. It costs O(members
// of all groups).
func (x *Index) Parked(fn func(*Job)) {
	for _, g := range x.groups {
		for _, j := range g.members {
			if j.State == Pending && j.where == inNone && !j.Busy {
				fn(j)
			}
		}
	}
}

// GroupInfo describes one ordered group.
type GroupInfo struct {
	Name string
	// Members are the group's unfinished jobs, in the order they run.
	Members []uint64
	// Holder is the job holding the group's turn: the leased member, or
	// else the first one.
	Holder uint64
}

// Groups calls fn with each group that has unfinished jobs.
func (x *Index) Groups(fn func(GroupInfo)) {
	for _, g := range x.groups {
		gi := GroupInfo{Name: g.name}
		for _, j := range g.members {
			gi.Members = append(gi.Members, j.ID)
			if j.State == Leased || gi.Holder == 0 && g.leased == 0 {
				gi.Holder = j.ID
			}
		}
		fn(gi)
	}
}

// checkGroups verifies the groups: members are exactly the unfinished
// grouped jobs, in ID order; the leased count and the head follow from
// them. grouped counts the unfinished grouped jobs.
func (x *Index) checkGroups(grouped int) error {
	n := 0
	for name, g := range x.groups {
		if g.name != name {
			return fmt.Errorf("group %q filed under %q", g.name, name)
		}
		leased := 0
		for i, j := range g.members {
			if x.jobs.get(j.ID) != j || j.Group() != name || !member(j.State) {
				return fmt.Errorf("group %q: member job %d is %s in group %q (stale: %v)", name, j.ID, j.State, j.Group(), x.jobs.get(j.ID) != j)
			}
			if i > 0 && g.members[i-1].ID >= j.ID {
				return fmt.Errorf("group %q: members out of order at job %d", name, j.ID)
			}
			if j.State == Leased {
				leased++
			}
		}
		if leased != g.leased || g.held < 0 {
			return fmt.Errorf("group %q: %d leased members, counted %d; %d enqueues held", name, leased, g.leased, g.held)
		}
		var head *Job
		if g.leased == 0 && g.held == 0 && len(g.members) > 0 {
			head = g.members[0]
		}
		if g.head != head {
			return fmt.Errorf("group %q: head %v, want %v", name, g.head, head)
		}
		if len(g.members) == 0 && g.held == 0 {
			return fmt.Errorf("group %q: empty but kept", name)
		}
		n += len(g.members)
	}
	if grouped != n {
		return fmt.Errorf("%d unfinished grouped jobs, %d group members", grouped, n)
	}
	return nil
}
