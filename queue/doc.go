// Package queue is walq's public API: an embedded, durable job queue for Go
// programs, built on an append-only write-ahead log. It is the one walq
// package with a compatibility promise.
//
// A producer calls Enqueue and gets a job ID back once the job is durable.
// A worker leases a job, then completes it (with an optional result) or
// fails it. A failure retries with exponential backoff (1s, 2s, 4s, 8s … by
// default) driven by the injectable clock; when attempts run out, or the
// error is Permanent, the job moves to the dead-letter queue, where it can be
// listed, requeued or purged.
//
// Guarantees: a call that returns nil is durable (in the default Sync mode);
// nothing is visible to other callers before it is durable; execution is
// at-least-once (a worker can crash after its side effect and before
// Complete); completion is exactly-once per job and per idempotency key
// within the key's retention window. See README.md and DESIGN.md.
//
// # Everyday calls
//
// Open a directory with Open (nil options give the defaults) and Close it
// when done. Producers call Enqueue, or EnqueueBatch for several jobs at
// once (atomically), and Wait if they want the outcome. Most consumers use
// the worker package, which leases, runs handlers, heartbeats and completes
// for them; a consumer written by hand calls Lease (or TryLease, which does
// not wait), then Complete or Fail with the lease's Token, Extend during a
// long job and Release to give a job back uncounted. Get, GetByKey, Jobs and
// Stats inspect; Dead, Requeue, RequeueDead, PurgeDead and Cancel operate
// the dead-letter queue and pending jobs; Pause and Resume stop and start a
// named queue; Subscribe streams every transition.
//
// # Advanced calls
//
// The rest is for runtimes and tools built on a Queue, and for tuning;
// most programs never call them:
//
//   - LeaseN, TryLeaseN, CompleteBatch and ExtendBatch share one durable
//     log entry (one fsync) among many leases, completions or extensions.
//     The worker package is built on them; a hand-written runtime that
//     needs the same throughput can use them too.
//   - CompleteAndEnqueue completes a job and enqueues follow-up jobs in one
//     atomic entry (worker.Callback and worker's Options.OnComplete use it).
//   - Compact compacts the log now; the background compactor does it by
//     itself unless Options.CompactRatio is negative.
//   - Purge forgets finished jobs by ID, idempotency keys included.
//   - Recovery, Options and Dir report what Open found, the options in force
//     and the directory.
//
// # Engines
//
// Engine is the same API as an interface: every call above except Compact,
// Recovery, Options and Dir, which only the directory-backed Queue has, plus
// Info. *Queue is the embedded engine; the JetStream engine (the nested
// module github.com/walq/walq/jetstream) keeps jobs on a replicated NATS
// server cluster for applications that outgrow one machine. Code written
// against Engine, the worker runtime included, runs on either; package
// queuetest is the conformance suite both pass. Broadcaster gives another
// engine the event stream that Subscribe returns.
//
// # Names and errors
//
// A named queue is 1 to 255 bytes of ASCII letters, digits and - _ . : /
// (see NewJob.Queue); the empty name means DefaultQueue. Errors are values
// of this package: sentinels to test with errors.Is (ErrNotFound,
// ErrLeaseLost, ErrCorrupt …) and types to read with errors.As
// (*CorruptError, *LockedError, *DeadError). Their texts begin with "walq:"
// once, whichever layer the trouble came from.
//
// queue owns policy: the clock, backoff, lease deadlines, validation. It
// builds on recovery (open and replay), index (the in-memory fold) and log
// (the bytes on disk), packages with no compatibility promise whose types
// it never exposes.
package queue
