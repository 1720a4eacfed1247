// Package jetstream is a walq engine on NATS JetStream: the job API of
// queue.Engine kept in a replicated, file-backed JetStream stream and two
// key-value buckets on a nats-server (2.12 or later for message schedules
// and atomic batches), so that several processes on several machines share
// one queue and a server node can die.
//
// Open connects it to a server; everything else is the queue.Engine API.
// The mapping of each guarantee to a JetStream mechanism, and what differs
// from the embedded engine, are in README.md of this module.
//
// The module is separate from github.com/walq/walq so that the core library
// does not depend on NATS.
package jetstream
