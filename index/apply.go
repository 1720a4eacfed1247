package index

import (
	"fmt"

	wlog "github.com/walq/walq/log"
)

// Apply folds one record into the index. pos is where the record sits in the
// log; a payload or result in the record is located relative to it. A record
// that does not fit the state returns an *ApplyError and changes nothing.
func (x *Index) Apply(r *wlog.Record, pos Pos) error {
	if err := x.apply(r, pos); err != nil {
		return err
	}
	x.records++
	return nil
}

// bad returns an *ApplyError saying why r does not fit.
func (x *Index) bad(r *wlog.Record, pos Pos, format string, args ...any) error {
	return &ApplyError{Pos: pos, Kind: r.Kind, Job: r.Job, Reason: fmt.Sprintf(format, args...)}
}

// loc locates b, found at offset at of the entry at pos; the zero Loc for
// a nil b.
func loc(pos Pos, at int, b []byte) Loc {
	if b == nil {
		return Loc{}
	}
	return Loc{Index: pos.Index, Off: uint32(at), Len: uint32(len(b))}
}

// apply folds r into the index: a dispatch on its kind to the function
// that applies that kind. Records that create a job or change a queue come
// first; every other kind is about an existing job, which target finds.
func (x *Index) apply(r *wlog.Record, pos Pos) error {
	switch r.Kind {
	case wlog.KindEnqueued, wlog.KindCarry:
		return x.applyCreate(r, pos)
	case wlog.KindPaused, wlog.KindResumed:
		return x.applyPause(r, pos)
	case wlog.KindCheckpoint:
		return x.applyCheckpoint(r)
	case wlog.KindSchedule:
		return x.applySchedule(r, pos)
	case wlog.KindBatch:
		return x.applyBatch(r, pos)
	}
	j, err := x.target(r, pos)
	if j == nil {
		return err
	}
	switch r.Kind {
	case wlog.KindLeased:
		return x.applyLeased(j, r, pos)
	case wlog.KindExtended:
		return x.applyExtended(j, r, pos)
	case wlog.KindProgress:
		if err := x.checkAttempt(j, r, pos); err != nil {
			return err
		}
		f := j.features()
		f.Progress, f.Note = r.Progress, r.Note
		return nil
	case wlog.KindCompleted, wlog.KindFailed, wlog.KindDead, wlog.KindExpired, wlog.KindReleased:
		return x.applyEnd(j, r, pos)
	case wlog.KindRequeued:
		return x.applyRequeued(j, r, pos)
	case wlog.KindCancelled:
		return x.applyCancelled(j, r, pos)
	case wlog.KindPurged:
		return x.applyPurged(j, r, pos)
	}
	return x.bad(r, pos, "unexpected record kind")
}

// target returns the job r is about. When there is none it returns an
// error, except in a lenient replay, which notes r as an orphan and
// returns nil, nil.
func (x *Index) target(r *wlog.Record, pos Pos) (*Job, error) {
	if j := x.jobs.get(r.Job); j != nil {
		return j, nil
	}
	if !x.lenient {
		return nil, x.bad(r, pos, "unknown job")
	}
	x.setOrphan(r.Job, orphan{kind: r.Kind, pos: pos})
	x.nextID = max(x.nextID, r.Job+1)
	return nil, nil
}

// applyPause handles KindPaused and KindResumed.
func (x *Index) applyPause(r *wlog.Record, pos Pos) error {
	if r.Queue == "" {
		return x.bad(r, pos, "no queue name")
	}
	x.queue(r.Queue).Paused = r.Kind == wlog.KindPaused
	return nil
}

// applyCheckpoint restores the engine-wide counters a checkpoint records.
func (x *Index) applyCheckpoint(r *wlog.Record) error {
	x.nextID = max(x.nextID, r.NextID)
	return nil
}

// applyExtended moves the running attempt's lease deadline.
func (x *Index) applyExtended(j *Job, r *wlog.Record, pos Pos) error {
	if err := x.checkAttempt(j, r, pos); err != nil {
		return err
	}
	x.unschedule(j)
	j.setDeadline(r.Deadline)
	x.schedule(j)
	return nil
}

// applyRequeued moves a dead job back to a queue with its attempt count
// reset.
func (x *Index) applyRequeued(j *Job, r *wlog.Record, pos Pos) error {
	if j.State != Dead {
		return x.bad(r, pos, "job is %s, not dead", j.State)
	}
	x.unschedule(j)
	if r.Queue != "" && r.Queue != j.Queue.Name {
		j.Queue.counts[Dead]--
		delete(j.Queue.dead, j.ID)
		key := j.Key()
		delete(j.Queue.keyed, j)
		j.Queue = x.queue(r.Queue)
		j.Queue.setKey(j, key)
		j.Queue.counts[Dead]++
		j.Queue.dead[j.ID] = j
	}
	j.Attempt = 0
	j.RunAt = r.RunAt
	// The timeline keeps the old attempts; a marker says where the count
	// restarts.
	e := j.extra()
	e.addHistory(wlog.Attempt{Started: r.At, Ended: r.At, Outcome: wlog.KindRequeued})
	x.setState(j, Pending)
	return nil
}

// applyCancelled removes a pending job from scheduling.
func (x *Index) applyCancelled(j *Job, r *wlog.Record, pos Pos) error {
	if j.State != Pending {
		return x.bad(r, pos, "job is %s, not pending", j.State)
	}
	j.extra().Finished = r.At
	x.setState(j, Cancelled)
	return nil
}

// applyPurged forgets a finished job.
func (x *Index) applyPurged(j *Job, r *wlog.Record, pos Pos) error {
	if !j.State.Terminal() {
		return x.bad(r, pos, "job is %s, not finished", j.State)
	}
	x.remove(j)
	return nil
}

// checkAttempt reports whether r is about j's running attempt.
func (x *Index) checkAttempt(j *Job, r *wlog.Record, pos Pos) error {
	if j.State != Leased {
		return x.bad(r, pos, "job is %s, not leased", j.State)
	}
	if int64(j.Attempt) != r.Attempt {
		return x.bad(r, pos, "attempt %d, but attempt %d is running", r.Attempt, j.Attempt)
	}
	return nil
}

// applyLeased starts the next attempt of a pending job.
func (x *Index) applyLeased(j *Job, r *wlog.Record, pos Pos) error {
	if j.State != Pending {
		return x.bad(r, pos, "job is %s, not pending", j.State)
	}
	if r.Attempt != int64(j.Attempt)+1 {
		return x.bad(r, pos, "attempt %d follows attempt %d", r.Attempt, j.Attempt)
	}
	x.unschedule(j)
	j.Attempt = int32(r.Attempt)
	e := j.extra()
	e.Deadline = r.Deadline
	e.Leases++
	e.addHistory(wlog.Attempt{Started: r.At, Number: int32(r.Attempt), Lease: e.Leases})
	x.setState(j, Leased)
	return nil
}

// applyEnd ends the running attempt with the record's outcome.
func (x *Index) applyEnd(j *Job, r *wlog.Record, pos Pos) error {
	if err := x.checkAttempt(j, r, pos); err != nil {
		return err
	}
	e := j.extra()
	if n := len(e.History); n > 0 && e.History[n-1].Ended == 0 {
		e.History[n-1].Ended = r.At
		e.History[n-1].Outcome = r.Kind
		e.History[n-1].Error = r.Error
	}
	if r.Error != "" {
		e.Error = r.Error
	}
	e.Deadline = 0
	switch r.Kind {
	case wlog.KindCompleted:
		e.Finished = r.At
		e.Result, e.HasResult = loc(pos, r.ResultAt, r.Result), r.Result != nil
		x.liveBytes += int64(e.Result.Len)
		x.setState(j, Completed)
	case wlog.KindDead:
		e.Finished = r.At
		if j.Flags&FlagReleaseKeyOnDeath != 0 {
			x.releaseKey(j)
		}
		x.setState(j, Dead)
	case wlog.KindReleased:
		j.Attempt--
		j.RunAt = r.RunAt
		x.setState(j, Pending)
	default: // Failed, Expired: the attempt counts
		j.RunAt = r.RunAt
		x.setState(j, Pending)
	}
	return nil
}

// applyCreate handles KindEnqueued (a new job) and KindCarry (a job's whole
// state restated, replacing whatever the index had).
func (x *Index) applyCreate(r *wlog.Record, pos Pos) error {
	if r.Job == 0 {
		return x.bad(r, pos, "job ID 0")
	}
	if r.Queue == "" {
		return x.bad(r, pos, "no queue name")
	}
	state := Pending
	if r.Kind == wlog.KindCarry {
		state = State(r.State)
		if !state.Valid() {
			return x.bad(r, pos, "invalid state %d", r.State)
		}
	}
	if err := x.checkFlags(r, pos); err != nil {
		return err
	}
	old := x.jobs.get(r.Job)
	if old != nil && r.Kind == wlog.KindEnqueued {
		return x.bad(r, pos, "job already exists")
	}
	// A carry of a job that released its key names the key it had, which
	// another job may hold now.
	released := r.Flags&wlog.FlagKeyReleased != 0
	key := r.Key
	if released {
		key = ""
	}
	if key != "" {
		if k := x.keys[key]; k != nil && k != old {
			return x.bad(r, pos, "key %q already belongs to job %d", key, k.ID)
		}
	}
	if old != nil {
		x.remove(old)
	}
	j := &Job{
		ID:          r.Job,
		Queue:       x.queue(r.Queue),
		Payload:     Loc{Index: pos.Index, Off: uint32(r.PayloadAt), Len: uint32(len(r.Payload))},
		RunAt:       r.RunAt,
		Created:     r.At,
		Attempt:     int32(r.Attempt),
		MaxAttempts: int32(r.MaxAttempts),
		Priority:    int32(r.Priority),
		pos:         [2]int32{-1, -1},
		Flags:       uint8(r.Flags & wlog.FlagReleaseKeyOnDeath),
	}
	if r.Kind == wlog.KindCarry {
		j.Created = r.Created
		j.setDeadline(r.Deadline)
	}
	if r.BackoffBase != 0 || r.BackoffCap != 0 || r.Timeout != 0 || len(r.History) > 0 || r.Error != "" || r.Finished != 0 {
		e := j.extra()
		e.BackoffBase, e.BackoffCap, e.Timeout = r.BackoffBase, r.BackoffCap, r.Timeout
		e.restoreHistory(r.History)
		e.Error, e.Finished = r.Error, r.Finished
	}
	if r.Result != nil {
		e := j.extra()
		e.Result, e.HasResult = loc(pos, r.ResultAt, r.Result), true
	}
	if r.Group != "" || r.Progress != 0 || r.Note != "" || released {
		*j.features() = Features{Group: r.Group, Progress: r.Progress, Note: r.Note}
		if released {
			j.X.F.ReleasedKey = r.Key
		}
	}
	x.jobs.set(j)
	if key != "" {
		j.Queue.setKey(j, key)
		x.keys[key] = j
	}
	if x.lenient {
		x.dropOrphan(j.ID)
	}
	if x.hasCreated {
		x.created = append(x.created, j)
	}
	x.liveBytes += j.bytes()
	if j.ID >= x.nextID {
		x.nextID = j.ID + 1
	}
	x.setState(j, state)
	return nil
}
