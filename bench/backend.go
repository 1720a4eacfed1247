package bench

import (
	"context"
	"errors"
)

// Durability classes shared by every backend, so that rows compare like
// with like. A backend that has no mode of a class is not run in it.
const (
	// Sync: a call returns only once its change is fsynced (walq Sync,
	// SQLite synchronous=FULL, bbolt's default).
	Sync = "sync"
	// Relaxed: a change survives a process crash at once and a power loss
	// after a short delay (walq Interval, SQLite WAL synchronous=NORMAL).
	Relaxed = "relaxed"
	// None: flushing is left to the OS (walq None, bbolt NoSync).
	None = "none"
)

// ErrUnsupported is returned by a Backend method the backend has no
// equivalent for (River has no public lease call, for instance). Workloads
// that need the method are reported as not applicable for that backend.
var ErrUnsupported = errors.New("bench: not supported by this backend")

// ErrEmpty is returned by Backend.Lease with wait false when no job is
// ready.
var ErrEmpty = errors.New("bench: no job ready")

// Job is a leased job as a workload sees it.
type Job struct {
	// Payload is the job's payload, as enqueued.
	Payload []byte
	// Ref is whatever the backend needs to complete the job (a lease
	// token, a row ID).
	Ref any
}

// Backend is one queue under test, opened on one directory. Its methods
// must be safe for concurrent use: workloads call them from many
// goroutines.
type Backend interface {
	// Enqueue adds one job and returns once it is as durable as the
	// backend's durability class promises.
	Enqueue(ctx context.Context, payload []byte) error
	// EnqueueBatch adds jobs atomically in one durable step.
	EnqueueBatch(ctx context.Context, payloads [][]byte) error
	// Lease takes the next ready job. With wait false it returns ErrEmpty
	// if none is ready; with wait true it blocks until one is or ctx ends.
	Lease(ctx context.Context, wait bool) (Job, error)
	// Complete finishes a leased job durably.
	Complete(ctx context.Context, j Job) error
	// Pending counts the jobs not completed yet (ready, scheduled or
	// leased).
	Pending(ctx context.Context) (int, error)
	// Close releases the backend; the directory stays.
	Close() error
}

// Runtime is implemented by backends that ship a worker runtime (walq's
// worker package, River's client). Work starts it with concurrency
// handlers that call handle for every job, and returns a function that
// stops it gracefully: stop returns once every completion of a job whose
// handle call returned is durable.
type Runtime interface {
	Work(ctx context.Context, concurrency int, handle func(payload []byte)) (stop func(context.Context) error, err error)
}

// Params are what a Target needs to open a backend.
type Params struct {
	// Dir is an empty directory the backend owns.
	Dir string
	// Producers is how many goroutines will enqueue at once, for backends
	// whose recommended configuration depends on it (bbolt's db.Batch
	// only pays off with concurrent callers).
	Producers int
}

// Target is one row of the comparison: a backend in one durability class.
type Target struct {
	// Name is the backend's name ("walq", "goqite").
	Name string
	// Durability is the class it is configured for: Sync, Relaxed or None.
	Durability string
	// Config says, in a few words, how it is configured
	// ("synchronous=FULL, WAL").
	Config string
	// MaxPending caps the pending jobs W5 and W6 open for this target,
	// for a backend whose API fills a million jobs too slowly for a run of
	// a few minutes; 0 means no cap. Rows say how many jobs were opened.
	MaxPending int
	// Open opens the backend on p.Dir, creating what it needs.
	Open func(ctx context.Context, p Params) (Backend, error)
}

// Label is the target's row label, "name/durability".
func (t Target) Label() string { return t.Name + "/" + t.Durability }
