// Package worker runs handlers for walq jobs inside an application, the way
// River or Sidekiq workers do: register a handler per named queue, Start,
// and Stop gracefully.
//
// The runtime leases ahead in small batches (one durable step leases many
// jobs) and commits completions in groups (one durable entry completes
// many), so that a handful of workers are not bounded by two fsyncs per
// job. No guarantee is weakened: a job is handed to a handler only after its
// lease is durable, and a completion is acknowledged to nobody (Wait,
// events, metrics, Options.OnDurable) before it is durable; until then the
// heartbeat keeps the job's lease alive. Execution is at-least-once: a
// handler's side effects must be idempotent (use Job.ID, Job.Attempt and
// Job.Key).
//
// A completion group is bounded by count and by bytes, so that it fits one
// log entry. A completion the queue refuses (a result over queue
// Options.MaxPayload, or follow-ups it cannot take) fails only its own job,
// permanently, with the reason in the job's history: retrying a handler
// cannot shrink what it returns. If the log cannot write a group at all (a
// full disk), the group's leases are let go to expire and its jobs run
// again.
//
// Each attempt gets a context that carries the job's timeout and is
// cancelled when the lease is lost; the lease is extended by a heartbeat
// while the handler runs. A panic is recovered and recorded as a failed
// attempt. Errors steer what happens next: queue.Permanent dead-letters at
// once, queue.RetryAfter retries after the given delay, queue.Snooze puts
// the job back without counting the attempt, any other error retries with
// backoff. Every failed attempt is also logged through Options.Logger, with
// the job's id, queue and attempt: a failure at Warn, a panic at Error.
package worker
