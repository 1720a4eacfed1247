package queue

import (
	"context"
	"time"

	"github.com/benbjohnson/clock"
)

// Engine is the job API that every walq engine implements: *Queue, the
// embedded engine on a write-ahead log in one directory, and engines that
// keep jobs elsewhere (the JetStream engine of the nested module
// github.com/walq/walq/jetstream, on a replicated NATS server cluster).
// Producers, hand-written consumers and the worker runtime (worker.New)
// take an Engine, so that an application moves from one engine to another
// by changing how it opens the queue and nothing else.
//
// Every method means what the *Queue method of the same name documents,
// with the same errors; an engine documents where a guarantee differs
// (durability modes, the detail of Job.History, ordering among ready
// jobs). Calls that only one engine has (Compact, Recovery, Dir, Options
// of *Queue) are not part of it. The conformance suite in package
// github.com/walq/walq/queue/queuetest checks an Engine against this
// contract.
//
// An Engine is safe for concurrent use by any number of goroutines.
type Engine interface {
	// Enqueue adds a job; see Queue.Enqueue.
	Enqueue(ctx context.Context, job NewJob) (Enqueued, error)
	// EnqueueBatch adds jobs atomically; see Queue.EnqueueBatch.
	EnqueueBatch(ctx context.Context, jobs []NewJob) ([]Enqueued, error)

	// Lease waits for a ready job and leases it; see Queue.Lease.
	Lease(ctx context.Context, queue string) (*Lease, error)
	// TryLease leases a ready job or returns ErrNoJob; see Queue.TryLease.
	TryLease(ctx context.Context, queue string) (*Lease, error)
	// LeaseN waits for a ready job and leases up to n; see Queue.LeaseN.
	LeaseN(ctx context.Context, queue string, n int) ([]*Lease, error)
	// TryLeaseN leases up to n ready jobs without waiting; see
	// Queue.TryLeaseN.
	TryLeaseN(ctx context.Context, queue string, n int) ([]*Lease, error)
	// Extend moves a lease's deadline; see Queue.Extend.
	Extend(ctx context.Context, tok Token, d time.Duration) (time.Time, error)
	// ExtendBatch extends many leases; see Queue.ExtendBatch.
	ExtendBatch(ctx context.Context, toks []Token, d time.Duration) ([]error, error)
	// Release gives a lease back uncounted; see Queue.Release.
	Release(ctx context.Context, tok Token) error

	// Complete ends an attempt successfully; see Queue.Complete.
	Complete(ctx context.Context, tok Token, result []byte) error
	// CompleteBatch completes many leases; see Queue.CompleteBatch.
	CompleteBatch(ctx context.Context, cs []Completion) ([]error, error)
	// CompleteAndEnqueue completes an attempt and enqueues follow-up jobs
	// atomically; see Queue.CompleteAndEnqueue.
	CompleteAndEnqueue(ctx context.Context, tok Token, result []byte, then []NewJob) ([]Enqueued, error)
	// Fail ends an attempt with an error (Permanent, RetryAfter, Snooze
	// steer what follows); see Queue.Fail.
	Fail(ctx context.Context, tok Token, err error) error

	// Wait waits for a job's final outcome; see Queue.Wait.
	Wait(ctx context.Context, id uint64) ([]byte, error)
	// Get returns a job; see Queue.Get.
	Get(ctx context.Context, id uint64) (*Job, error)
	// GetByKey returns the job holding an idempotency key; see
	// Queue.GetByKey.
	GetByKey(ctx context.Context, key string) (*Job, error)
	// Jobs lists jobs; see Queue.Jobs.
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	// Stats returns per-queue counts; see Queue.Stats. Fields that
	// describe one engine's storage (Stats.Log, the compaction fields)
	// are zero for engines without it.
	Stats(ctx context.Context) (Stats, error)

	// Dead lists the dead-letter queue; see Queue.Dead.
	Dead(ctx context.Context, f DeadFilter) ([]*Job, error)
	// Requeue moves dead jobs back to pending; see Queue.Requeue.
	Requeue(ctx context.Context, ids []uint64, opts RequeueOptions) error
	// RequeueDead requeues the dead jobs f selects; see Queue.RequeueDead.
	RequeueDead(ctx context.Context, f DeadFilter, opts RequeueOptions) (int, error)
	// Purge forgets finished jobs; see Queue.Purge.
	Purge(ctx context.Context, ids []uint64) error
	// PurgeDead purges the dead jobs f selects; see Queue.PurgeDead.
	PurgeDead(ctx context.Context, f DeadFilter) (int, error)
	// Cancel removes a pending job from scheduling; see Queue.Cancel.
	Cancel(ctx context.Context, id uint64) error
	// Pause stops leasing from a named queue; see Queue.Pause.
	Pause(ctx context.Context, queue string) error
	// Resume undoes Pause; see Queue.Resume.
	Resume(ctx context.Context, queue string) error

	// Subscribe streams job transitions; see Queue.Subscribe. An engine
	// other than *Queue builds its subscriptions with a Broadcaster.
	Subscribe(buffer int) *Subscription

	// Info describes the engine: what the worker runtime and tools need
	// to know about it (its clock, lease duration, payload limit).
	Info() EngineInfo

	// Close stops the engine; see Queue.Close. Calling it again returns
	// nil; every other call returns ErrClosed afterwards.
	Close() error
}

// EngineInfo describes an Engine: its kind, where it keeps its jobs, and
// the settings in force that callers built on any engine (the worker
// runtime) need.
type EngineInfo struct {
	// Engine names the kind of engine: "wal" for *Queue, "jetstream" for
	// the JetStream engine.
	Engine string
	// Location says where the jobs are, for messages: a directory, or a
	// server URL and stream.
	Location string
	// Clock is the engine's source of time for run-at, backoff and lease
	// deadlines: the mock clock in tests of *Queue, the real clock for an
	// engine that runs on a server's time.
	Clock clock.Clock
	// LeaseDuration is how long a lease lasts unless extended.
	LeaseDuration time.Duration
	// MaxPayload is the largest payload (and result) accepted, in bytes.
	MaxPayload int
	// ReadOnly reports that the engine only inspects: changing calls
	// return ErrReadOnly.
	ReadOnly bool
}

// Info describes the queue: engine "wal", its directory, and its clock,
// lease duration, payload limit and read-only mode from Options.
func (q *Queue) Info() EngineInfo {
	return EngineInfo{Engine: "wal", Location: q.dir, Clock: q.opts.Clock,
		LeaseDuration: q.opts.LeaseDuration, MaxPayload: q.opts.MaxPayload, ReadOnly: q.opts.ReadOnly}
}

// *Queue is an Engine.
var _ Engine = (*Queue)(nil)
