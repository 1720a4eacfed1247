package queue

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// EventKind names a job transition an Event reports.
type EventKind string

// The event kinds, one per transition.
const (
	EventEnqueued  EventKind = "enqueued"
	EventLeased    EventKind = "leased"
	EventCompleted EventKind = "completed"
	// EventRetrying reports a failed attempt with attempts left; NextRunAt
	// says when the job runs again.
	EventRetrying EventKind = "retrying"
	EventDead     EventKind = "dead"
	// EventExpired reports a lease that ran out (or was voided); the job is
	// ready again.
	EventExpired EventKind = "expired"
	// EventReleased reports an attempt given back without counting it
	// (Release, Snooze).
	EventReleased  EventKind = "released"
	EventRequeued  EventKind = "requeued"
	EventCancelled EventKind = "cancelled"
	EventPurged    EventKind = "purged"
)

// Event is one durable job transition.
type Event struct {
	Kind  EventKind
	Job   uint64
	Queue string
	// Attempt is the attempt the transition belongs to.
	Attempt int
	// At is when it happened, on the queue's clock.
	At time.Time
	// NextRunAt is when a retrying or released job runs again.
	NextRunAt time.Time
	// Duration is how long the attempt ran (for completed, retrying, dead,
	// expired and released events).
	Duration time.Duration
	// Error is the failure's text.
	Error string
	// Progress and Note are a progress report's (EventProgress).
	Progress int64
	Note     string
}

// Subscription receives events on C. Events are sent only after the
// transition is durable. A subscriber that falls behind never blocks the
// queue: when its buffer is full, events are dropped and counted.
type Subscription struct {
	// C delivers the events; it is closed by Close and when the queue
	// closes.
	C <-chan Event
	c chan Event
	// mu guards subs, the set of subscriptions this one belongs to (its
	// Queue's or its Broadcaster's).
	mu      *sync.Mutex
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
	once    sync.Once
}

// newSubscription adds a subscription with the given buffer to subs,
// guarded by mu, which the caller holds; closed makes it closed at once.
func newSubscription(mu *sync.Mutex, subs map[*Subscription]struct{}, buffer int, closed bool) *Subscription {
	c := make(chan Event, max(buffer, 1))
	s := &Subscription{C: c, c: c, mu: mu, subs: subs}
	subs[s] = struct{}{}
	if closed {
		s.closeLocked()
	}
	return s
}

// Dropped returns how many events were dropped because the buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	s.once.Do(func() {
		delete(s.subs, s)
		close(s.c)
	})
}

// send delivers ev, or counts it dropped if the buffer is full. The caller
// holds s.mu.
func (s *Subscription) send(ev Event) {
	select {
	case s.c <- ev:
	default:
		s.dropped.Add(1)
	}
}

// Subscribe returns a subscription to every job transition from now on,
// buffering up to buffer events (at least 1).
func (q *Queue) Subscribe(buffer int) *Subscription {
	q.mu.Lock()
	defer q.mu.Unlock()
	return newSubscription(&q.mu, q.subs, buffer, q.closed)
}

// Broadcaster fans events out to subscriptions the way *Queue does: every
// subscription has a buffer of its own, and one that falls behind loses
// events (counted by Subscription.Dropped) without ever blocking Publish.
// It is how an Engine other than *Queue implements Subscribe. The zero
// value is ready to use; it is safe for concurrent use.
type Broadcaster struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscribe returns a subscription to every event published from now on,
// buffering up to buffer events (at least 1). After Close it returns a
// subscription whose C is already closed.
func (b *Broadcaster) Subscribe(buffer int) *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = make(map[*Subscription]struct{})
	}
	return newSubscription(&b.mu, b.subs, buffer, b.closed)
}

// Publish sends ev to every subscription. An engine publishes a transition
// only once it is durable, in the order its transitions happened. After
// Close it does nothing.
func (b *Broadcaster) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.send(ev)
	}
}

// Close closes every subscription's C; later subscriptions are closed at
// once. An engine calls it from its own Close. Calling it again does
// nothing.
func (b *Broadcaster) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		s.closeLocked()
	}
}

var eventKinds = map[wlog.Kind]EventKind{
	wlog.KindEnqueued:  EventEnqueued,
	wlog.KindLeased:    EventLeased,
	wlog.KindCompleted: EventCompleted,
	wlog.KindFailed:    EventRetrying,
	wlog.KindDead:      EventDead,
	wlog.KindExpired:   EventExpired,
	wlog.KindReleased:  EventReleased,
	wlog.KindRequeued:  EventRequeued,
	wlog.KindCancelled: EventCancelled,
	wlog.KindPurged:    EventPurged,
	wlog.KindProgress:  EventProgress,
}

// observe records metrics and publishes events for records just applied.
// The caller holds q.mu. Purged jobs are gone from the index, so their
// queue is looked up before apply (in queueOf).
func (q *Queue) observe(recs []wlog.Record, queues []string) {
	for i := range recs {
		r := &recs[i]
		kind, ok := eventKinds[r.Kind]
		if !ok {
			continue
		}
		ev := Event{Kind: kind, Job: r.Job, Queue: queues[i], Attempt: int(r.Attempt), At: unixTime(r.At), Error: r.Error,
			Progress: r.Progress, Note: r.Note}
		j := q.idx.Job(r.Job)
		if j != nil {
			ev.Attempt = int(j.Attempt)
			if r.Kind == wlog.KindReleased {
				ev.Attempt++ // the released attempt no longer counts
			}
		}
		switch r.Kind {
		case wlog.KindFailed, wlog.KindReleased:
			ev.NextRunAt = unixTime(r.RunAt)
		}
		if j != nil && j.X != nil && len(j.X.History) > 0 {
			switch r.Kind {
			case wlog.KindCompleted, wlog.KindFailed, wlog.KindDead, wlog.KindExpired, wlog.KindReleased:
				a := j.X.History[len(j.X.History)-1]
				ev.Duration = time.Duration(a.Ended - a.Started)
			}
		}
		if j != nil {
			q.metrics.observe(&ev, j, r)
		}
		for s := range q.subs {
			s.send(ev)
		}
	}
}

// queueOf returns the queue name each record concerns, before it is applied.
// The slice is q.queueNames, valid until dropQueueNames; the caller holds
// q.mu.
func (q *Queue) queueOf(recs []wlog.Record) []string {
	names := q.queueNames[:0]
	if cap(names) < len(recs) {
		names = make([]string, len(recs))
	}
	names = names[:len(recs)]
	for i := range recs {
		r := &recs[i]
		if r.Queue != "" && r.Kind != wlog.KindRequeued {
			names[i] = r.Queue
		} else if j := q.idx.Job(r.Job); j != nil {
			names[i] = j.Queue.Name
			if r.Kind == wlog.KindRequeued && r.Queue != "" {
				names[i] = r.Queue
			}
		}
	}
	return names
}

// dropQueueNames keeps names, which queueOf returned, as the scratch of
// the next queueOf, cleared and only if it is not large. The caller holds
// q.mu.
func (q *Queue) dropQueueNames(names []string) {
	if cap(names) > maxPooledRecords {
		return
	}
	clear(names)
	q.queueNames = names[:0]
}

// readyTime is when a pending job became (or becomes) ready.
func readyTime(j *index.Job) int64 { return max(j.RunAt, j.Created) }
