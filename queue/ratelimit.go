package queue

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// RateLimit caps how many jobs of a named queue start: at most N leases in
// any window of length Per (a sliding window, not a token bucket: no burst
// beyond N, ever). Every lease counts, including one that is later
// released, snoozed or expires. Set it with Options.RateLimits.
type RateLimit struct {
	// N is the most leases in any window; at least 1.
	N int
	// Per is the window's length; positive.
	Per time.Duration
}

// copyRateLimits validates limits and returns a copy, so that Open never
// shares the caller's map.
func copyRateLimits(limits map[string]RateLimit) (map[string]RateLimit, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	for name, l := range limits {
		if err := checkQueueName("Options.RateLimits", name); err != nil {
			return nil, err
		}
		if l.N < 1 || l.Per <= 0 {
			return nil, fmt.Errorf("%w: Options.RateLimits[%q]: want N ≥ 1 and Per > 0, got %d per %v",
				ErrInvalid, name, l.N, l.Per)
		}
	}
	c := maps.Clone(limits)
	if l, ok := c[""]; ok {
		delete(c, "")
		c[DefaultQueue] = l
	}
	return c, nil
}

// limiter is one named queue's sliding window: the start times (Unix ns)
// of the leases in the current window, at most lim.N of them. Its state is
// what the log says: the lease records' times, which replay restores into
// the jobs' histories (see restoreLimiters). Guarded by q.mu.
type limiter struct {
	lim    RateLimit
	starts []int64
}

// prune forgets starts that left the window (at or before now − Per). A
// start after now (the clock stepped back) stays: it counts until the
// window passes it.
func (l *limiter) prune(now int64) {
	cut := now - int64(l.lim.Per)
	l.starts = slices.DeleteFunc(l.starts, func(t int64) bool { return t <= cut })
}

// allowed returns how many leases may start at now.
func (l *limiter) allowed(now int64) int {
	l.prune(now)
	return max(0, l.lim.N-len(l.starts))
}

// nextFree returns when the oldest start leaves the window.
func (l *limiter) nextFree() int64 {
	if len(l.starts) == 0 {
		return 0
	}
	return slices.Min(l.starts) + int64(l.lim.Per)
}

// take counts k leases starting at now, before their entry is durable: a
// reservation, so that concurrent leases see them (undo ends it if the
// entry fails).
func (l *limiter) take(now int64, k int) {
	for range k {
		l.starts = append(l.starts, now)
	}
}

// undo removes k starts at now that take added.
func (l *limiter) undo(now int64, k int) {
	for i := len(l.starts) - 1; i >= 0 && k > 0; i-- {
		if l.starts[i] == now {
			l.starts = slices.Delete(l.starts, i, i+1)
			k--
		}
	}
}

// restoreLimiters builds the limiters at Open from the jobs' histories:
// every attempt records when its lease was taken, so the starts within the
// window are known again after a restart or a crash (a lease is handed out
// only once its record is durable). It costs one pass over the jobs, and
// only when a limit is set.
func (q *Queue) restoreLimiters() {
	if len(q.opts.RateLimits) == 0 {
		return
	}
	q.limits = make(map[string]*limiter, len(q.opts.RateLimits))
	for name, l := range q.opts.RateLimits {
		q.limits[name] = &limiter{lim: l}
	}
	now := q.now()
	q.idx.JobsFrom(0, func(j *index.Job) bool {
		l := q.limits[j.Queue.Name]
		if l == nil {
			return true
		}
		for _, a := range j.History() {
			if a.Outcome != wlog.KindRequeued && a.Started > now-int64(l.lim.Per) {
				l.starts = append(l.starts, a.Started)
			}
		}
		return true
	})
	for _, l := range q.limits {
		// Keep the newest N: they decide when the next start is allowed.
		slices.Sort(l.starts)
		if len(l.starts) > l.lim.N {
			l.starts = slices.Clone(l.starts[len(l.starts)-l.lim.N:])
		}
	}
}
