package index

import (
	"bytes"
	"sort"

	wlog "github.com/walq/walq/log"
)

// Batch is a batch not yet ended: jobs First to First+Count-1, created in
// one entry, and the callback job to enqueue when every one has finished.
// The callback's payload is kept in memory (batches are few). Fields are
// read by the queue package under its lock and changed only by Apply.
type Batch struct {
	First uint64
	Count int
	// The callback job's template.
	Queue       string
	Payload     []byte
	Priority    int64
	MaxAttempts int64
	BackoffBase int64
	BackoffCap  int64
	Timeout     int64
	Group       string
}

// Record returns the KindBatch record that creates (or restates) b.
func (b *Batch) Record(at int64) wlog.Record {
	p := b.Payload
	if p == nil {
		p = []byte{}
	}
	return wlog.Record{Kind: wlog.KindBatch, At: at, Job: b.First, Attempt: int64(b.Count), Queue: b.Queue,
		Payload: p, Priority: b.Priority, MaxAttempts: b.MaxAttempts, BackoffBase: b.BackoffBase,
		BackoffCap: b.BackoffCap, Timeout: b.Timeout, Group: b.Group}
}

// Contains reports whether job id is a member of b.
func (b *Batch) Contains(id uint64) bool { return id >= b.First && id-b.First < uint64(b.Count) }

// batchEnded is the State of a KindBatch record that ends a batch.
const batchEnded = 1

// applyBatch handles KindBatch: it creates a batch, or ends (forgets) one.
func (x *Index) applyBatch(r *wlog.Record, pos Pos) error {
	if r.Job == 0 {
		return x.bad(r, pos, "batch without a first job")
	}
	if r.State == batchEnded {
		if b := x.batches[r.Job]; b != nil {
			x.liveBytes -= int64(len(b.Payload)) + jobOverhead
			delete(x.batches, r.Job)
			x.batchFirsts = nil
		}
		return nil
	}
	if r.Attempt < 1 || r.Queue == "" {
		return x.bad(r, pos, "batch of %d jobs, callback queue %q", r.Attempt, r.Queue)
	}
	if old := x.batches[r.Job]; old != nil { // restated by a checkpoint
		x.liveBytes -= int64(len(old.Payload)) + jobOverhead
	}
	b := &Batch{First: r.Job, Count: int(r.Attempt), Queue: r.Queue, Payload: bytes.Clone(r.Payload),
		Priority: r.Priority, MaxAttempts: r.MaxAttempts, BackoffBase: r.BackoffBase, BackoffCap: r.BackoffCap,
		Timeout: r.Timeout, Group: r.Group}
	if b.Payload == nil {
		b.Payload = []byte{}
	}
	if x.batches == nil {
		x.batches = make(map[uint64]*Batch)
	}
	x.batches[b.First] = b
	x.batchFirsts = nil
	x.liveBytes += int64(len(b.Payload)) + jobOverhead
	return nil
}

// Batch returns the batch not yet ended that job id belongs to, or nil.
func (x *Index) Batch(id uint64) *Batch {
	if len(x.batches) == 0 {
		return nil
	}
	if x.batchFirsts == nil {
		for f := range x.batches {
			x.batchFirsts = append(x.batchFirsts, f)
		}
		sort.Slice(x.batchFirsts, func(i, j int) bool { return x.batchFirsts[i] < x.batchFirsts[j] })
	}
	i := sort.Search(len(x.batchFirsts), func(i int) bool { return x.batchFirsts[i] > id })
	if i == 0 {
		return nil
	}
	if b := x.batches[x.batchFirsts[i-1]]; b.Contains(id) {
		return b
	}
	return nil
}

// Batches returns the batches not yet ended, by first job.
func (x *Index) Batches() []*Batch {
	out := make([]*Batch, 0, len(x.batches))
	for _, b := range x.batches {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	return out
}
