// Package bench measures walq the way its users will judge it: durable
// enqueue throughput with one and with many producers, batch enqueue, end to
// end lease-and-complete throughput (plain loop and worker runtime),
// recovery time, heap bytes per pending job and enqueue-to-handler latency,
// next to the disk's own limits measured in the same directory in the same
// run.
//
// Every workload verifies its own result (counts match, every job completed
// exactly once, payloads intact), so a broken run reports an error, never a
// number. Workloads run against a Backend, a small interface that walq's
// adapter implements here and that the peers (goqite, bbolt, River) implement
// in the nested module bench/peers, so that all of them run the same code.
//
// Run is the entry point for `walq bench`; `cd bench/peers && go run .`
// runs the side-by-side comparison and writes BENCHMARKS.md. Go benchmarks
// for the hot paths are in bench_test.go.
//
// bench sits on top of walq: nothing imports it, and it may change at any
// time. It must never be imported by the library packages.
package bench
