package queue

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/walq/walq/index"
)

// Get returns a snapshot of the job with its payload and result, or
// ErrNotFound.
func (q *Queue) Get(ctx context.Context, id uint64) (*Job, error) {
	if err := q.beginRead(ctx); err != nil {
		return nil, err
	}
	var out *Job
	var payload, result index.Loc
	for {
		j := q.idx.Job(id)
		if j == nil {
			q.end()
			return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
		}
		out = snapshot(j, q.now())
		if b := q.idx.Batch(id); b != nil {
			out.Batch = q.batchProgress(b)
		}
		payload, result = j.Payload, index.Loc{}
		if j.X != nil && j.X.HasResult {
			result = j.X.Result
		}
		if q.gateRead() {
			break
		}
	}
	var meta []byte
	var err error
	out.Payload, meta, out.Result, err = q.readJob(payload, result)
	q.end()
	if err != nil {
		return nil, err
	}
	if out.Meta, err = decodeMeta(id, meta); err != nil {
		return nil, err
	}
	if out.HasResult && out.Result == nil {
		out.Result = []byte{}
	}
	return out, nil
}

// Wait blocks until the job finishes and returns its result (nil if it has
// none) once it completes. For a dead job it returns a *DeadError (matching
// ErrDead); for a cancelled one, ErrCancelled; for an unknown or purged one,
// ErrNotFound. It returns early with ctx's error or ErrClosed. Its memory
// does not grow while it waits, however many leases of the job it outlives.
func (q *Queue) Wait(ctx context.Context, id uint64) ([]byte, error) {
	for {
		b, done, err := q.waitOnce(ctx, id)
		if done {
			return b, err
		}
	}
}

// waitOnce looks at the job once and, if it has not finished, sleeps until
// it may have: a change to the job, or its lease deadline. done reports
// that Wait has its answer in b and err.
func (q *Queue) waitOnce(ctx context.Context, id uint64) (b []byte, done bool, err error) {
	if err := q.beginRead(ctx); err != nil {
		return nil, true, err
	}
	j := q.idx.Job(id)
	if j == nil {
		q.end()
		return nil, true, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	switch j.State {
	case index.Completed:
		if !q.gateRead() {
			q.end() // look again: the job may have changed
			return nil, false, nil
		}
		b, err := q.readLocs(j.X.Result)
		q.end()
		if err != nil {
			return nil, true, err
		}
		return b[0], true, nil
	case index.Dead:
		err := &DeadError{ID: id, Attempts: int(j.Attempt), Reason: j.Error(), At: unixTime(j.Finished())}
		q.end()
		return nil, true, err
	case index.Cancelled:
		q.end()
		return nil, true, fmt.Errorf("%w: %d", ErrCancelled, id)
	}
	ch := make(chan struct{})
	q.waiters[id] = append(q.waiters[id], ch)
	var expiry <-chan time.Time
	if j.State == index.Leased && !q.opts.ReadOnly {
		// Wake at the lease deadline: the lease may expire with no one
		// else looking, and the job may die of it. The timer is stopped
		// when this look ends, so that a Wait outliving many leases
		// holds one timer at a time.
		t := q.opts.Clock.Timer(time.Duration(j.Deadline() - q.now()))
		defer t.Stop()
		expiry = t.C
	}
	q.end()
	select {
	case <-ch:
	case <-expiry:
		q.dropWaiter(id, ch)
	case <-ctx.Done():
		q.dropWaiter(id, ch)
		return nil, true, ctx.Err()
	case <-q.done:
		return nil, true, ErrClosed
	}
	return nil, false, nil
}

func (q *Queue) dropWaiter(id uint64, ch chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ws := q.waiters[id]
	for i, c := range ws {
		if c == ch {
			q.waiters[id] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(q.waiters[id]) == 0 {
		delete(q.waiters, id)
	}
}

// JobFilter selects jobs for Jobs. The zero value selects every job.
type JobFilter struct {
	// Queue keeps jobs of this named queue only; empty means all.
	Queue string
	// State keeps jobs in this state only; empty means all.
	State JobState
	// AfterID keeps jobs with larger IDs only, for paging.
	AfterID uint64
	// Limit caps how many jobs are returned; 0 means no cap.
	Limit int
}

// Jobs lists jobs in ID order, without payloads or results (Get has them).
// It walks the jobs from AfterID up and stops at Limit, so a page costs
// what it returns plus the jobs the filter passes over.
func (q *Queue) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	if err := q.beginRead(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	if f.AfterID == math.MaxUint64 {
		return nil, nil
	}
	now := q.now()
	var out []*Job
	q.idx.JobsFrom(f.AfterID+1, func(j *index.Job) bool {
		if f.Queue != "" && j.Queue.Name != f.Queue {
			return true
		}
		if f.State != "" && jobState(j, now) != f.State {
			return true
		}
		out = append(out, snapshot(j, now))
		return f.Limit <= 0 || len(out) < f.Limit
	})
	return out, nil
}

// QueueStats counts one named queue's jobs.
type QueueStats struct {
	// Ready and Scheduled split the pending jobs by the clock at the
	// call: ready ones have reached their run-at, scheduled ones have
	// not. A job with an operation in flight (a lease, a cancel) counts
	// where it was until that operation is durable.
	Ready     int
	Scheduled int
	// Leased, Completed, Dead and Cancelled count the jobs in those
	// states.
	Leased    int
	Completed int
	Dead      int
	Cancelled int
	// Paused reports that the queue hands out no leases.
	Paused bool
	// OldestReady is how long the oldest ready job has been ready; zero if
	// none is.
	OldestReady time.Duration
	// Metrics are the queue's counters, rates and latency distributions
	// since Open.
	Metrics Metrics
	// RateLimit is the queue's limit from Options.RateLimits (zero if
	// none) and WindowStarts the leases counted in its current window.
	RateLimit    RateLimit
	WindowStarts int
	// Breaker is the queue's circuit breaker (State empty if none; see
	// Options.Breakers). A read-only queue reports the writer's open
	// breakers from a status file the writer keeps.
	Breaker BreakerStatus
}

// LogStats describes the log on disk.
type LogStats struct {
	// Size is the segment files' total size in bytes.
	Size int64
	// Segments is the number of segment files.
	Segments int
	// FirstIndex and LastIndex bound the log's entries.
	FirstIndex uint64
	LastIndex  uint64
	// LiveBytes estimates the bytes needed to restate every job the queue
	// holds; compaction keeps Size within a small factor of it.
	LiveBytes int64
	// Appended is the bytes this process wrote to the log since Open,
	// compaction's carries included: divided by the payload bytes
	// enqueued, it is the write amplification.
	Appended int64
}

// Stats is a snapshot of the whole queue.
type Stats struct {
	// Queues maps each named queue to its counts.
	Queues map[string]QueueStats
	// Log describes the files.
	Log LogStats
	// LastCompaction describes the last compaction, zero if none ran since
	// Open.
	LastCompaction CompactStats
	// CompactFailures counts compactions (background or Compact) that
	// failed since Open; LastCompactError is the last failure's message
	// and LastCompactErrorAt when it began, on the queue's clock; both are
	// cleared when a compaction succeeds again. A read-only queue reports
	// those of the writer, from a status file the writer keeps in the
	// directory while its last compaction has failed.
	CompactFailures    int
	LastCompactError   string
	LastCompactErrorAt time.Time
	// Schedules describes the periodic schedules, sorted by name (see
	// Queue.Schedules).
	Schedules []ScheduleInfo
}

// Stats returns per-queue counts and log figures.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	if err := q.fireDue(ctx); err != nil {
		return Stats{}, err
	}
	if err := q.beginRead(ctx); err != nil {
		return Stats{}, err
	}
	now := q.now()
	q.idx.Promote(now)
	// A pending job with an operation in flight is in neither heap; it
	// is still ready or scheduled by its run-at until that operation is
	// durable.
	type split struct{ ready, scheduled int }
	busy := map[*index.Queue]split{}
	count := func(j *index.Job) {
		if j.State == index.Pending {
			s := busy[j.Queue]
			if j.RunAt <= now {
				s.ready++
			} else {
				s.scheduled++
			}
			busy[j.Queue] = s
		}
	}
	q.idx.Reserved(count)
	q.idx.Parked(count) // waiting for their group's turn: ready or scheduled all the same
	st := Stats{Queues: map[string]QueueStats{}}
	for _, iq := range q.idx.Queues() {
		qs := QueueStats{
			Ready:     iq.Ready() + busy[iq].ready,
			Scheduled: iq.Scheduled() + busy[iq].scheduled,
			Leased:    iq.Count(index.Leased),
			Completed: iq.Count(index.Completed),
			Dead:      iq.Count(index.Dead),
			Cancelled: iq.Count(index.Cancelled),
			Paused:    iq.Paused,
		}
		if t, ok := iq.OldestReady(); ok && t < now {
			qs.OldestReady = time.Duration(now - t)
		}
		qs.Metrics = q.metrics.get(iq.Name).snapshot(now)
		if l := q.limits[iq.Name]; l != nil {
			qs.RateLimit, qs.WindowStarts = l.lim, l.lim.N-l.allowed(now)
		}
		if b := q.breakers[iq.Name]; b != nil {
			qs.Breaker = breakerStatus(b)
		}
		st.Queues[iq.Name] = qs
	}
	st.Log = LogStats{Segments: q.log.Segments(), FirstIndex: q.log.FirstIndex(), LastIndex: q.log.LastIndex(),
		Size: q.log.Size(), LiveBytes: q.idx.LiveBytes(), Appended: q.log.Appended()}
	st.LastCompaction = q.lastCompact
	st.CompactFailures = q.compactFailures
	if q.compactErr != nil {
		st.LastCompactError, st.LastCompactErrorAt = q.compactErr.Error(), q.compactErrAt
	}
	if q.opts.ReadOnly {
		q.readCompactStatus(&st)
		q.readBreakerStatus(&st)
	}
	st.Schedules = q.scheduleInfosLocked(now)
	q.end()
	return st, nil
}

// sortedDead returns the dead jobs matching f, oldest death first.
func (q *Queue) sortedDead(f DeadFilter) []*index.Job {
	var js []*index.Job
	for _, iq := range q.idx.Queues() {
		if f.Queue != "" && iq.Name != f.Queue {
			continue
		}
		iq.Dead(func(j *index.Job) bool {
			if f.match(j) {
				js = append(js, j)
			}
			return true
		})
	}
	sort.Slice(js, func(a, b int) bool {
		if js[a].Finished() != js[b].Finished() {
			return js[a].Finished() < js[b].Finished()
		}
		return js[a].ID < js[b].ID
	})
	return js
}
