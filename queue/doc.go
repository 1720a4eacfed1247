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
// queue owns policy: the clock, backoff, lease deadlines, validation. It
// builds on recovery (open and replay), index (the in-memory fold) and log
// (the bytes on disk).
package queue
