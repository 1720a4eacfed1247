package queue

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/walq/walq/index"
	"github.com/walq/walq/internal/fault"
	wlog "github.com/walq/walq/log"
)

// maxKeyLen bounds a job's idempotency key.
const maxKeyLen = 1024

// Enqueue adds a job and returns its ID once the job is durable. If
// job.Key is already held by a job (in any state, until a finished job's
// retention ends), nothing is added: the existing job's ID is returned with
// Duplicate set.
func (q *Queue) Enqueue(ctx context.Context, job NewJob) (Enqueued, error) {
	res, err := q.EnqueueBatch(ctx, []NewJob{job})
	if err != nil {
		return Enqueued{}, err
	}
	return res[0], nil
}

// EnqueueBatch adds jobs atomically: after a crash either all of them exist
// or none does. It returns one result per job, in order. A key repeated
// within the batch yields one job; later occurrences are duplicates of it.
func (q *Queue) EnqueueBatch(ctx context.Context, jobs []NewJob) ([]Enqueued, error) {
	if q.enqueue != nil {
		// The middleware may change the jobs: give it a copy of the
		// caller's slice.
		return q.enqueue(ctx, slices.Clone(jobs))
	}
	return q.enqueueBatch(ctx, jobs)
}

// enqueueBatch is EnqueueBatch inside its middleware.
func (q *Queue) enqueueBatch(ctx context.Context, jobs []NewJob) ([]Enqueued, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	for i := range jobs {
		if err := q.validate(&jobs[i]); err != nil {
			if len(jobs) > 1 {
				err = fmt.Errorf("job %d: %w", i, err)
			}
			return nil, err
		}
	}
	if err := q.beginWrite(ctx); err != nil {
		return nil, err
	}
	defer q.end()
	if err := q.waitKeys(jobs); err != nil {
		return nil, err
	}
	e := entry{recs: getRecords()}
	defer func() { putRecords(e.recs) }()
	res := q.addJobs(&e, jobs, q.now())
	if len(e.recs) == 0 {
		q.unreserve(e.busy) // all duplicates: answered now, nothing to hold
		return res, nil
	}
	if err := q.commitEntry(&e); err != nil {
		return nil, err
	}
	return res, nil
}

// recordPool recycles the record slices of enqueue entries. A Record is
// about 300 bytes with pointers in it, so a batch of 1,000 jobs would
// otherwise allocate 300 KB for the garbage collector to scan, per batch.
// Nothing keeps a record past commit: the log encodes them in Submit, and
// the index, the events and the metrics copy what they keep.
var recordPool sync.Pool

// maxPooledRecords bounds the record slices recordPool keeps, so that one
// huge batch does not pin its slice for the life of the process.
const maxPooledRecords = 4096

// getRecords returns an empty record slice, recycled if one is free.
func getRecords() []wlog.Record {
	if p, ok := recordPool.Get().(*[]wlog.Record); ok {
		return (*p)[:0]
	}
	return nil
}

// putRecords clears recs (so that the pool holds no payload or key of the
// caller's) and gives its array back to recordPool.
func putRecords(recs []wlog.Record) {
	if cap(recs) == 0 || cap(recs) > maxPooledRecords {
		return
	}
	clear(recs)
	recs = recs[:0]
	recordPool.Put(&recs)
}

// entry collects the records of one log entry and what the call holds until
// the entry is committed: reserved jobs and idempotency keys.
type entry struct {
	recs []wlog.Record
	busy []*index.Job // reserved; commit unreserves them
	keys []string     // held in q.keys; commitEntry releases them
	// groups lists the ordered groups this entry enqueues into, each held
	// (index.ReserveGroup) until the entry is applied or fails.
	groups []string
	// inBatch maps the keys this entry creates to their jobs.
	inBatch map[string]uint64
}

// commitEntry commits e (see commit) and releases the keys it holds.
func (q *Queue) commitEntry(e *entry) error {
	defer q.releaseKeys(e.keys)
	defer q.releaseGroups(e.groups)
	return q.commit(e.recs, e.busy)
}

// addJobs adds to e the records that enqueue jobs, assigning IDs and
// resolving idempotency keys, and returns one result per job. A key whose
// old job is past its retention is reused: the old job is reserved and
// purged in the same entry. Callers hold q.mu and have waited for waitKeys
// (or keysBusy) to clear, with nothing reserved while they waited.
func (q *Queue) addJobs(e *entry, jobs []NewJob, now int64) []Enqueued {
	res := make([]Enqueued, len(jobs))
	e.recs = slices.Grow(e.recs, len(jobs))
	for i := range jobs {
		nj := &jobs[i]
		if nj.Key != "" {
			if id, ok := e.inBatch[nj.Key]; ok {
				res[i] = Enqueued{ID: id, Duplicate: true}
				continue
			}
			if j := q.idx.Key(nj.Key); j != nil {
				if j.Busy || !q.retentionOver(j, now) {
					// The answer reads j, and must still hold when
					// this entry becomes visible: reserve j (unless
					// this very call already has, as a job it
					// completes), so that no purge, sweep or key
					// reuse changes it in between.
					if !j.Busy {
						q.idx.Reserve(j)
						e.busy = append(e.busy, j)
					}
					res[i] = Enqueued{ID: j.ID, Duplicate: true}
					continue
				}
				// The key's old job is past retention: forget it in
				// the same entry that reuses the key, reserved so that
				// no purge, carry or sweep acts on it meanwhile.
				q.idx.Reserve(j)
				e.busy = append(e.busy, j)
				e.recs = append(e.recs, wlog.Record{Kind: wlog.KindPurged, Job: j.ID, At: now})
			}
		}
		id := q.nextID
		q.nextID++
		res[i] = Enqueued{ID: id}
		e.recs = append(e.recs, q.enqueueRecord(nj, id, now))
		if nj.Key != "" {
			if e.inBatch == nil {
				e.inBatch = map[string]uint64{}
			}
			e.inBatch[nj.Key] = id
			q.keys[nj.Key] = true
			e.keys = append(e.keys, nj.Key)
		}
		if nj.Group != "" {
			q.idx.ReserveGroup(nj.Group)
			e.groups = append(e.groups, nj.Group)
		}
	}
	return res
}

// releaseKeys ends the hold addJobs took on keys.
func (q *Queue) releaseKeys(keys []string) {
	if len(keys) == 0 {
		return
	}
	for _, k := range keys {
		delete(q.keys, k)
	}
	q.cond.Broadcast()
}

// waitKeys waits (releasing q.mu) until keysBusy clears. The caller holds
// q.mu and must hold no reservation.
func (q *Queue) waitKeys(jobs []NewJob) error {
	for q.keysBusy(jobs) {
		q.inject(fault.Op{Kind: fault.Wait})
		q.cond.Wait()
		if q.closed {
			return ErrClosed
		}
	}
	return nil
}

// keysBusy reports whether an enqueue of one of jobs' keys must wait: an
// enqueue of the key is in flight, or the job holding the key has an
// operation in flight, whose outcome (a purge, a completion past a short
// retention) decides whether the key may be reused. Answering "duplicate"
// from a busy job's state could silently drop a producer's job.
func (q *Queue) keysBusy(jobs []NewJob) bool {
	for i := range jobs {
		k := jobs[i].Key
		if k == "" {
			continue
		}
		if q.keys[k] {
			return true
		}
		if j := q.idx.Key(k); j != nil && j.Busy {
			return true
		}
	}
	return false
}

// retentionOver reports whether a finished job may be forgotten: completed
// and cancelled jobs are kept for KeyRetention after they finish; pending,
// leased and dead jobs are kept until they finish or are purged.
func (q *Queue) retentionOver(j *index.Job, now int64) bool {
	if j.State != index.Completed && j.State != index.Cancelled {
		return false
	}
	return j.Finished()+int64(q.opts.KeyRetention) <= now
}

// validate checks a NewJob. It does not change it: callers may share their
// slices between goroutines.
func (q *Queue) validate(nj *NewJob) error {
	switch {
	case len(nj.Payload) > q.opts.MaxPayload:
		return fmt.Errorf("%w: %d bytes, limit %d (Options.MaxPayload)", ErrTooLarge, len(nj.Payload), q.opts.MaxPayload)
	case len(nj.Key) > maxKeyLen:
		return fmt.Errorf("%w: NewJob.Key: longer than %d bytes", ErrInvalid, maxKeyLen)
	case nj.Delay < 0:
		return fmt.Errorf("%w: NewJob.Delay: %v is negative", ErrInvalid, nj.Delay)
	case nj.MaxAttempts < 0 || nj.MaxAttempts > math.MaxInt32:
		return fmt.Errorf("%w: NewJob.MaxAttempts: %d out of range", ErrInvalid, nj.MaxAttempts)
	case nj.Timeout < 0:
		return fmt.Errorf("%w: NewJob.Timeout: %v is negative", ErrInvalid, nj.Timeout)
	case len(nj.Group) > maxGroupLen:
		return fmt.Errorf("%w: NewJob.Group: longer than %d bytes", ErrInvalid, maxGroupLen)
	}
	if err := checkQueueName("NewJob.Queue", nj.Queue); err != nil {
		return err
	}
	if len(nj.Meta) > 0 {
		if err := checkMeta(nj.Meta); err != nil {
			return err
		}
	}
	if nj.Backoff != nil {
		if nj.Backoff.Base < 0 || nj.Backoff.Cap < 0 {
			return fmt.Errorf("%w: NewJob.Backoff: negative duration", ErrInvalid)
		}
	}
	return nil
}

// enqueueRecord builds the record that creates a job.
func (q *Queue) enqueueRecord(nj *NewJob, id uint64, now int64) wlog.Record {
	runAt := now
	if !nj.RunAt.IsZero() {
		runAt = nj.RunAt.UnixNano()
	} else if nj.Delay > 0 {
		runAt = addDuration(now, nj.Delay)
	}
	maxAttempts := nj.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = q.opts.MaxAttempts
	}
	name := nj.Queue
	if name == "" {
		name = DefaultQueue
	}
	r := wlog.Record{
		Kind:        wlog.KindEnqueued,
		Job:         id,
		At:          now,
		Queue:       name,
		Key:         nj.Key,
		Payload:     nj.Payload,
		Priority:    int64(nj.Priority),
		RunAt:       runAt,
		MaxAttempts: int64(maxAttempts),
		Timeout:     int64(nj.Timeout),
		Group:       nj.Group,
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	if len(nj.Meta) > 0 {
		r.Meta = wlog.EncodeMeta(nj.Meta)
	}
	if b := nj.Backoff; b != nil {
		r.BackoffBase, r.BackoffCap = int64(b.Base), int64(b.Cap)
	}
	if q.releasesKey(nj) {
		r.Flags = wlog.FlagReleaseKeyOnDeath
	}
	return r
}

// releasesKey reports whether nj, enqueued now, gives up its key when it
// dies.
func (q *Queue) releasesKey(nj *NewJob) bool {
	if nj.Key == "" {
		return false
	}
	return nj.ReleaseKeyOnDeath || q.opts.ReleaseKeysOnDeath && !strings.HasPrefix(nj.Key, reservedKeyPrefix)
}
