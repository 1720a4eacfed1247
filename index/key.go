package index

import wlog "github.com/walq/walq/log"

// FlagReleaseKeyOnDeath is the Job.Flags bit of a job that gives up its
// idempotency key when it dies: the key then names no job, and a new
// enqueue of it creates a new job. It is wlog.FlagReleaseKeyOnDeath.
const FlagReleaseKeyOnDeath = uint8(wlog.FlagReleaseKeyOnDeath)

// recordFlags are the Record.Flags bits the fold knows.
const recordFlags = wlog.FlagReleaseKeyOnDeath | wlog.FlagKeyReleased

// ReleasedKey returns the idempotency key the job gave up when it died, or
// "" if it did not give one up.
func (j *Job) ReleasedKey() string {
	if j.X == nil || j.X.F == nil {
		return ""
	}
	return j.X.F.ReleasedKey
}

// releaseKey makes j, which has just died, give up its key: the key names
// no job from now on, and j remembers it as its ReleasedKey. The job's
// restated size is unchanged (a carry writes the released key).
func (x *Index) releaseKey(j *Job) {
	k := j.Key()
	if k == "" {
		return
	}
	if x.keys[k] == j {
		delete(x.keys, k)
	}
	delete(j.Queue.keyed, j)
	j.features().ReleasedKey = k
}

// checkFlags reports whether r's flags fit its kind: only known bits, a
// released key only on a carry that names it.
func (x *Index) checkFlags(r *wlog.Record, pos Pos) error {
	switch {
	case r.Flags&^recordFlags != 0:
		return x.bad(r, pos, "unknown flags %#x", r.Flags&^recordFlags)
	case r.Flags&wlog.FlagKeyReleased != 0 && r.Kind != wlog.KindCarry:
		return x.bad(r, pos, "a released key outside a carry")
	case r.Flags&wlog.FlagKeyReleased != 0 && r.Key == "":
		return x.bad(r, pos, "a released key without a key")
	}
	return nil
}
