// Package index is walq's in-memory state: a pure fold of log records into
// jobs, named queues, scheduling heaps and idempotency keys. Apply is the
// only way state changes, and the live path and replay on open call the same
// Apply, so a reopened queue has exactly the state the running one had.
//
// index performs no I/O and never reads the clock: every time it uses comes
// from a record, or is passed in by the caller (Promote, Expired). It holds
// what scheduling needs, not payloads: a job's payload and result stay in the
// log and are located by Loc. It encodes and decodes its state as a
// checkpoint stream (checkpoint.go) for the caller to store, but never
// opens a file. It is not safe for concurrent use; the queue
// package serialises access. It is internal to walq and may change.
package index
