package bench

import (
	"fmt"
	"strings"
	"time"
)

// kind is the procedure a workload runs; the workload's fields
// parameterise it.
type kind int

const (
	kindEnqueue  kind = iota // producers enqueue jobs, one or a batch per call
	kindDrain                // consumers lease and complete pre-enqueued jobs
	kindRecover              // open a directory of pending jobs, lease one
	kindMemory               // heap bytes per pending job after open
	kindLatency              // enqueue → handler start at a fixed offered load
	kindWriteAmp             // log bytes written per payload byte, steady enqueue → complete
)

// Workload is one measured scenario. The table Workloads lists them all;
// one runner function serves every row, steered by these fields.
type Workload struct {
	// ID names the workload as the issue does ("W1" … "W7"), plus
	// "W2-8" (the 8-producer point of the producer sweep), "W4rt" (W4
	// through the worker runtime), "W5L"/"W6L" (W5 and W6 on a larger
	// directory), "W7c" (W7 at a load the consumers can sustain) and
	// "W8r" (W8 with retries).
	ID string
	// Title says what it measures.
	Title string
	// Unit is the unit of the headline number.
	Unit string
	// LowerIsBetter is true for times and sizes.
	LowerIsBetter bool

	kind      kind
	producers int  // goroutines enqueueing (kindEnqueue, kindLatency)
	batch     int  // jobs per enqueue call (kindEnqueue)
	consumers int  // goroutines or handlers leasing (kindDrain, kindLatency)
	runtime   bool // consume through the backend's worker runtime
	capacity  bool // W7c: offer half the end-to-end capacity, not half of W2
	retry     int  // W8r: one job in retry fails its first attempt
	large     bool // W5L, W6L: open RecoverLargeJobs pending jobs, not RecoverJobs
}

// Workloads lists every workload, in the order they run.
var Workloads = []Workload{
	{ID: "W1", Title: "durable enqueue, 1 producer", Unit: "jobs/s", kind: kindEnqueue, producers: 1, batch: 1},
	{ID: "W2-8", Title: "durable enqueue, 8 producers", Unit: "jobs/s", kind: kindEnqueue, producers: 8, batch: 1},
	{ID: "W2", Title: "durable enqueue, 64 producers", Unit: "jobs/s", kind: kindEnqueue, producers: 64, batch: 1},
	{ID: "W3", Title: "batch enqueue, batches of 1,000", Unit: "jobs/s", kind: kindEnqueue, producers: 1, batch: 1000},
	{ID: "W4", Title: "lease + complete, 8 goroutines (plain loop)", Unit: "jobs/s", kind: kindDrain, consumers: 8},
	{ID: "W4rt", Title: "lease + complete, worker runtime (concurrency 8, no-op handler)", Unit: "jobs/s", kind: kindDrain, consumers: 8, runtime: true},
	{ID: "W5", Title: "recovery: open + first lease", Unit: "ms", LowerIsBetter: true, kind: kindRecover},
	{ID: "W6", Title: "Go heap bytes per pending job", Unit: "B/job", LowerIsBetter: true, kind: kindMemory},
	{ID: "W5L", Title: "recovery: open + first lease, large directory", Unit: "ms", LowerIsBetter: true, kind: kindRecover, large: true},
	{ID: "W6L", Title: "Go heap bytes per pending job, large directory", Unit: "B/job", LowerIsBetter: true, kind: kindMemory, large: true},
	{ID: "W7", Title: "enqueue → handler start latency, offered 50% of W2's rate", Unit: "ms p99", LowerIsBetter: true, kind: kindLatency, producers: 64, consumers: 8, runtime: true},
	{ID: "W7c", Title: "enqueue → handler start latency, offered 50% of end-to-end capacity 1/(1/W2 + 1/drain rate)", Unit: "ms p99", LowerIsBetter: true, kind: kindLatency, producers: 64, consumers: 8, runtime: true, capacity: true},
	{ID: "W8", Title: "compaction write amplification, steady enqueue → complete (log bytes ÷ payload bytes)", Unit: "× payload", LowerIsBetter: true, kind: kindWriteAmp},
	{ID: "W8r", Title: "compaction write amplification, 10% of jobs retrying once", Unit: "× payload", LowerIsBetter: true, kind: kindWriteAmp, retry: 10},
}

// stateful reports whether the workload measures stored state rather than
// the write path (its result does not depend on the durability class).
func (w Workload) stateful() bool { return w.kind == kindRecover || w.kind == kindMemory }

// workloadByID returns the workload with the given ID (case-insensitive).
func workloadByID(id string) (Workload, error) {
	for _, w := range Workloads {
		if strings.EqualFold(w.ID, id) {
			return w, nil
		}
	}
	var ids []string
	for _, w := range Workloads {
		ids = append(ids, w.ID)
	}
	return Workload{}, fmt.Errorf("bench: unknown workload %q (want one of %s)", id, strings.Join(ids, ", "))
}

// Sizes bound each workload. Zero fields take the defaults (or the quick
// defaults in quick mode).
type Sizes struct {
	// EnqueueJobs is the most jobs W1 and W2 enqueue per run. Defaults to
	// 30,000 (5,000 quick).
	EnqueueJobs int
	// BatchJobs is the most jobs W3 enqueues per run. Defaults to 300,000
	// (50,000 quick).
	BatchJobs int
	// DrainJobs is how many jobs W4 pre-enqueues. Defaults to 100,000
	// (20,000 quick).
	DrainJobs int
	// RecoverJobs is how many pending jobs W5 and W6 open. Defaults to
	// 200,000 (100,000 quick).
	RecoverJobs int
	// RecoverLargeJobs is how many pending jobs W5L and W6L open.
	// Defaults to 1,000,000 (300,000 quick).
	RecoverLargeJobs int
	// MaxDuration caps the timed part of one run of W1–W4: a backend too
	// slow to finish is measured over what it did by then (and verified
	// on that). Defaults to 2s (0.5s quick).
	MaxDuration time.Duration
	// WriteAmpJobs is how many jobs one run of W8 and W8r pushes
	// through. Defaults to 10,000 (3,000 quick).
	WriteAmpJobs int
	// LatencyDuration is how long W7 offers load per run. Defaults to 2s
	// (1s quick).
	LatencyDuration time.Duration
	// BaselineDuration is how long one run of the fsync baseline lasts.
	// Defaults to 1s (0.3s quick).
	BaselineDuration time.Duration
	// BaselineBytes is how much one run of the bandwidth baseline writes.
	// Defaults to 256 MiB (64 MiB quick).
	BaselineBytes int
}

func (s Sizes) withDefaults(quick bool) Sizes {
	pick := func(v *int, full, q int) {
		if *v <= 0 {
			*v = full
			if quick {
				*v = q
			}
		}
	}
	pickD := func(v *time.Duration, full, q time.Duration) {
		if *v <= 0 {
			*v = full
			if quick {
				*v = q
			}
		}
	}
	pick(&s.EnqueueJobs, 30_000, 5_000)
	pick(&s.BatchJobs, 300_000, 50_000)
	pick(&s.DrainJobs, 100_000, 20_000)
	pick(&s.RecoverJobs, 200_000, 100_000)
	pick(&s.RecoverLargeJobs, 1_000_000, 300_000)
	pick(&s.WriteAmpJobs, 10_000, 3_000)
	pick(&s.BaselineBytes, 256<<20, 64<<20)
	pickD(&s.MaxDuration, 2*time.Second, 500*time.Millisecond)
	pickD(&s.LatencyDuration, 2*time.Second, time.Second)
	pickD(&s.BaselineDuration, time.Second, 300*time.Millisecond)
	return s
}
