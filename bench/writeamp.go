package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"

	"github.com/walq/walq/queue"
)

// writeAmp runs W8 and W8r on walq: a steady enqueue → lease → complete
// workload of 256-byte jobs (one in retry failing its first attempt), with
// retention purging finished jobs and the background compactor on, and
// reports compaction's write amplification: bytes written to the log
// (records, frames, carries, checkpoints) ÷ payload bytes enqueued. It
// runs on a mock clock, so that retention and maintenance pass in a run of
// seconds, and with 64 KiB segments, so that compaction runs many times in
// it: what the figure measures is how the log's costs grow with the work,
// which does not depend on the disk (queue's TestWriteAmplification bounds
// the same figure). Other backends have no log to measure.
func (tr *trial) writeAmp(ctx context.Context) (s sample, err error) {
	if tr.t.Name != "walq" {
		return s, fmt.Errorf("%w: walq's own log measure", errNotApplicable)
	}
	mode, ok := walqModes[tr.t.Durability]
	if !ok {
		return s, fmt.Errorf("bench: walq has no durability %q", tr.t.Durability)
	}
	mc := clock.NewMock()
	mc.Set(time.Unix(1_700_000_000, 0))
	q, err := queue.Open(tr.dir, &queue.Options{Durability: mode, Logger: quiet, Clock: mc,
		SegmentSize: 64 << 10, KeyRetention: 5 * time.Second, MaintenanceInterval: time.Second,
		Backoff: queue.Backoff{Base: 50 * time.Millisecond}})
	if err != nil {
		return s, fmt.Errorf("open: %w", err)
	}
	defer func() {
		if cerr := q.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
	}()
	const payload = 256
	jobs := tr.sz.WriteAmpJobs
	p := make([]byte, payload)
	for i := range jobs {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		if _, err := q.Enqueue(ctx, queue.NewJob{Payload: p}); err != nil {
			return s, fmt.Errorf("enqueue: %w", err)
		}
		if i%10 == 9 {
			mc.Add(200 * time.Millisecond)
		}
		l, err := q.TryLease(ctx, queue.DefaultQueue)
		if errors.Is(err, queue.ErrNoJob) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("lease: %w", err)
		}
		if tr.w.retry > 0 && i%tr.w.retry == 0 && l.Token.Attempt == 1 {
			err = q.Fail(ctx, l.Token, errors.New("retry"))
		} else {
			err = q.Complete(ctx, l.Token, nil)
		}
		if err != nil {
			return s, fmt.Errorf("finish: %w", err)
		}
	}
	st, err := q.Stats(ctx)
	if err != nil {
		return s, err
	}
	if st.LastCompaction.At.IsZero() {
		return s, errors.New("the compactor never ran: the run measured no compaction")
	}
	s.value = float64(st.Log.Appended) / float64(jobs*payload)
	s.pending = jobs
	return s, nil
}
