package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/walq/walq/queue"
)

// Queue is a walq engine on NATS JetStream. It is safe for concurrent use by
// any number of goroutines, and any number of Queues in any number of
// processes may open the same Options.Name on the same servers.
type Queue struct {
	opts   Options
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	jobs   jetstream.KeyValue // job state records, "j.<id>"
	keys   jetstream.KeyValue // idempotency keys, "k.<base64 key>"
	sched  bool               // delayed jobs through message schedules
	clock  clock.Clock

	mu        sync.Mutex
	consumers map[consumerKey]jetstream.Consumer
	prios     map[string]*prioCache
	held      map[uint64]*held // leases taken through this Queue
	// unresolved counts, by stream sequence, deliveries this Queue could
	// not resolve (a failover): they did not run and must not count.
	unresolved map[uint64]int
	closed     bool
	done       chan struct{}
	bc         queue.Broadcaster
	watching   bool
	bgCtx      context.Context // background work: watches, retention
	cancelBG   context.CancelFunc
	wg         sync.WaitGroup
}

// held is a lease this Queue handed out: the delivery it acks.
type held struct {
	msg      jetstream.Msg
	tok      queue.Token
	deadline time.Time
	started  time.Time
	queue    string
	rev      uint64 // revision of the job's record when leased; 0: none
	rec      record
	meta     meta
}

var _ queue.Engine = (*Queue)(nil)

// Open sets up (or joins) the engine's stream and buckets on the servers nc
// is connected to and returns the Queue. nc stays the caller's: Close does
// not close it. nil opts gives the defaults.
func Open(ctx context.Context, nc *nats.Conn, opts *Options) (*Queue, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: %w", err)
	}
	q := &Queue{opts: o, nc: nc, js: js, clock: clock.New(),
		consumers: map[consumerKey]jetstream.Consumer{}, prios: map[string]*prioCache{}, held: map[uint64]*held{}, unresolved: map[uint64]int{}, done: make(chan struct{})}
	q.sched = !o.NoSchedules && serverAtLeast(nc.ConnectedServerVersion(), 2, 12)
	cfg := jetstream.StreamConfig{
		Name:               o.Name,
		Subjects:           []string{o.Name + ".q.>", o.Name + ".h.>", o.Name + ".s.>"},
		Storage:            jetstream.FileStorage,
		Replicas:           o.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Duplicates:         o.Duplicates,
		AllowMsgSchedules:  q.sched,
		AllowAtomicPublish: serverAtLeast(nc.ConnectedServerVersion(), 2, 12),
		// Reads go to the stream leader: a follower's direct get can miss
		// a message it has not caught up with, and "not found" decides
		// whether a key's holder is gone.
		AllowDirect: false,
	}
	if q.stream, err = js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return nil, fmt.Errorf("walq: jetstream: stream %s: %w", o.Name, err)
	}
	for _, b := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{{&q.jobs, o.Name + "_jobs"}, {&q.keys, o.Name + "_keys"}} {
		if *b.kv, err = q.bucket(ctx, b.name); err != nil {
			return nil, fmt.Errorf("walq: jetstream: bucket %s: %w", b.name, err)
		}
	}
	q.bgCtx, q.cancelBG = context.WithCancel(context.Background())
	if o.MaintenanceInterval > 0 {
		q.wg.Add(1)
		go q.maintain()
	}
	return q, nil
}

// bucket binds a key-value bucket, creating it first if needed. Its stream
// serves reads from its leader only (AllowDirect off): a conditional write
// is decided by the leader, and so must be a read that says a key is free.
func (q *Queue) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	kv, err := q.js.KeyValue(ctx, name)
	if err == nil && !kvDirect(ctx, q.js, name) {
		return kv, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	if err != nil {
		_, err = q.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, Storage: jetstream.FileStorage, Replicas: q.opts.Replicas, History: 1})
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, err
		}
	}
	s, err := q.js.Stream(ctx, "KV_"+name)
	if err != nil {
		return nil, err
	}
	cfg := s.CachedInfo().Config
	if cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := q.js.UpdateStream(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return q.js.KeyValue(ctx, name)
}

func kvDirect(ctx context.Context, js jetstream.JetStream, name string) bool {
	s, err := js.Stream(ctx, "KV_"+name)
	return err != nil || s.CachedInfo().Config.AllowDirect
}

// serverAtLeast reports whether version (such as "2.12.1") is at least
// major.minor.
func serverAtLeast(version string, major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(strings.TrimPrefix(version, "v"), "%d.%d", &a, &b); err != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// Info describes the engine: "jetstream", the server URL and stream, the
// real clock, the lease duration and payload limit.
func (q *Queue) Info() queue.EngineInfo {
	return queue.EngineInfo{Engine: "jetstream", Location: q.nc.ConnectedUrlRedacted() + " stream " + q.opts.Name,
		Clock: q.clock, LeaseDuration: q.opts.LeaseDuration, MaxPayload: q.opts.MaxPayload}
}

// Options returns the options in force, defaults applied.
func (q *Queue) Options() Options { return q.opts }

// Close stops the Queue: blocked Lease and Wait calls return ErrClosed and
// subscriptions end. Leases held through it are left to expire on the
// server (each counts as an attempt, as a crash would). The connection
// stays open. Calling Close again returns nil.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.done)
	q.cancelBG()
	q.mu.Unlock()
	q.wg.Wait()
	q.bc.Close()
	return nil
}

func (q *Queue) check() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return queue.ErrClosed
	}
	return nil
}

// consumer returns the durable pull consumer of a named queue's priority,
// creating it on first use: AckWait is the lease, deliveries are counted
// by the server, attempts by the engine (MaxDeliver unlimited: a released
// delivery does not count). A consumer created for a new priority of a
// paused queue starts paused.
func (q *Queue) consumer(ctx context.Context, name string, prio int32) (jetstream.Consumer, error) {
	ck := consumerKey{name, prio}
	q.mu.Lock()
	c := q.consumers[ck]
	q.mu.Unlock()
	if c != nil {
		return c, nil
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       q.consumerName(name, prio),
		FilterSubject: q.readySubject(name, prio),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.opts.LeaseDuration,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      q.opts.Replicas,
	}
	var err error
	for try := 0; try < 3; try++ { // a cluster may be electing the consumer's leader
		if c, err = q.createConsumer(ctx, name, prio, cfg); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: consumer for queue %q: %w", name, err)
	}
	q.mu.Lock()
	q.consumers[ck] = c
	if prio != 0 {
		q.prioSeen(name, prio)
	}
	q.mu.Unlock()
	return c, nil
}

// createConsumer looks the consumer up and creates it if it is missing
// (not CreateOrUpdate: that would undo a pause).
func (q *Queue) createConsumer(ctx context.Context, name string, prio int32, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := q.js.Consumer(q.rc(ctx), q.opts.Name, cfg.Durable)
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return c, err
	}
	if prio != 0 {
		base, err := q.consumer(ctx, name, 0)
		if err != nil {
			return nil, err
		}
		if info, err := base.Info(q.rc(ctx)); err == nil && info.Paused {
			cfg.PauseUntil = &pauseForever
		}
	}
	c, err = q.js.CreateConsumer(q.rc(ctx), q.opts.Name, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = q.js.Consumer(q.rc(ctx), q.opts.Name, cfg.Durable)
	}
	return c, err
}

type consumerKey struct {
	name string
	prio int32
}

// prioCache is what this Queue knows of a named queue's priorities other
// than 0: those it used, and those the stream had subjects for when last
// asked (at most once a second by Lease).
type prioCache struct {
	prios []int32 // descending
	at    time.Time
}

// prioSeen records a priority; q.mu is held.
func (q *Queue) prioSeen(name string, prio int32) {
	pc := q.prios[name]
	if pc == nil {
		pc = &prioCache{}
		q.prios[name] = pc
	}
	if !slices.Contains(pc.prios, prio) {
		pc.prios = append(pc.prios, prio)
		slices.SortFunc(pc.prios, func(a, b int32) int { return cmp.Compare(b, a) })
	}
}

// priorities returns the named queue's priorities other than 0, highest
// first, asking the stream for the subjects in use when fresh is set or
// the answer is over a second old.
func (q *Queue) priorities(ctx context.Context, name string, fresh bool) ([]int32, error) {
	q.mu.Lock()
	pc := q.prios[name]
	if pc != nil && !fresh && time.Since(pc.at) < time.Second {
		out := slices.Clone(pc.prios)
		q.mu.Unlock()
		return out, nil
	}
	q.mu.Unlock()
	prefix := q.readySubject(name, 0) + "."
	info, err := q.stream.Info(q.rc(ctx), jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("walq: jetstream: priorities of queue %q: %w", name, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for subj := range info.State.Subjects {
		if p, ok := parsePrio(strings.TrimPrefix(subj, prefix)); ok {
			q.prioSeen(name, p)
		}
	}
	if q.prios[name] == nil {
		q.prios[name] = &prioCache{}
	}
	q.prios[name].at = time.Now()
	return slices.Clone(q.prios[name].prios), nil
}

// getRecord reads a job's state record: (nil, 0) when it has none.
func (q *Queue) getRecord(ctx context.Context, id uint64) (*record, uint64, error) {
	e, err := q.jobs.Get(q.rc(ctx), jobKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("walq: jetstream: job %d: %w", id, err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("%w: job %d: state record: %v", queue.ErrCorrupt, id, err)
	}
	return &r, e.Revision(), nil
}

// errConflict means a conditional write lost to another writer.
var errConflict = errors.New("walq: jetstream: conflicting write")

// putRecord writes a job's record conditionally: Create when rev is 0,
// Update on rev otherwise. It returns errConflict if another writer got
// there first.
func (q *Queue) putRecord(ctx context.Context, id uint64, rev uint64, r *record) (uint64, error) {
	var err error
	var n uint64
	if rev == 0 {
		n, err = q.jobs.Create(q.rc(ctx), jobKey(id), encodeRecord(r))
	} else {
		n, err = q.jobs.Update(q.rc(ctx), jobKey(id), encodeRecord(r), rev)
	}
	if isConflict(err) {
		return 0, errConflict
	}
	if err != nil {
		return 0, fmt.Errorf("walq: jetstream: job %d: write state: %w", id, err)
	}
	return n, nil
}

func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// loadMeta reads job id's record message.
func (q *Queue) loadMeta(ctx context.Context, id uint64) (meta, error) {
	m, err := q.stream.GetMsg(q.rc(ctx), id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return meta{}, queue.ErrNotFound
	}
	if err != nil {
		return meta{}, fmt.Errorf("walq: jetstream: job %d: %w", id, err)
	}
	md, ok := parseMeta(m.Header, m.Data)
	if !ok {
		return meta{}, queue.ErrNotFound
	}
	return md, nil
}

func (q *Queue) now() time.Time { return q.clock.Now() }

// rc bounds one request to the servers by Options.RequestTimeout. The
// context is released when the timeout passes.
func (q *Queue) rc(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, q.opts.RequestTimeout)
	time.AfterFunc(q.opts.RequestTimeout, cancel)
	return ctx
}
