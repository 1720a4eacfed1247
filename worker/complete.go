package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/walq/walq/queue"
)

// maxBatch bounds the completions committed in one CompleteBatch call.
const maxBatch = 512

// maxBatchBytes is the size (results plus follow-up payloads) at which the
// completer stops adding completions to a batch, so a batch holds less
// than maxBatchBytes plus one completion. The log's entry limit is
// max(64 MiB, 2×MaxPayload+1 MiB), so such a batch fits one entry
// whatever Options.MaxPayload is (unless its follow-ups are large: the
// queue then splits the call, or refuses the one completion). It is not
// derived from MaxPayload: beyond a few MiB, writing an entry costs more
// than the fsync it shares, so bigger batches gain no throughput; they only
// keep their jobs reserved longer (delaying heartbeats) and make the first
// completion in them wait.
const maxBatchBytes = 8 << 20

// pending is a completion on its way to the log. Its lease stays held by
// its pool (extended by the heartbeat) until the completion is settled.
type pending struct {
	pool  *pool
	lease *queue.Lease
	c     queue.Completion
}

// size is what the completion adds to a log entry, roughly: its result and
// its follow-ups' payloads.
func (p *pending) size() int {
	n := len(p.c.Result)
	for i := range p.c.Then {
		n += len(p.c.Then[i].Payload)
	}
	return n
}

// completer commits completions in groups: whatever has arrived while the
// previous group was being made durable goes into the next CompleteBatch
// call, up to maxBatch completions and maxBatchBytes. It runs in one
// goroutine; add is safe for concurrent use.
type completer struct {
	r    *Runtime
	in   chan pending
	done chan struct{}
	once sync.Once
}

func newCompleter(r *Runtime) *completer {
	c := &completer{r: r, in: make(chan pending, maxBatch), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *completer) add(p pending) { c.in <- p }

// close commits what is pending and stops.
func (c *completer) close() {
	c.once.Do(func() { close(c.in) })
	<-c.done
}

func (c *completer) loop() {
	defer close(c.done)
	batch := make([]pending, 0, maxBatch)
	for p := range c.in {
		batch = append(batch[:0], p)
		size := p.size()
	drain:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case p, ok := <-c.in:
				if !ok {
					break drain
				}
				batch = append(batch, p)
				size += p.size()
			default:
				break drain
			}
		}
		c.commit(batch)
	}
}

// commit makes a batch of completions durable and settles each.
func (c *completer) commit(batch []pending) {
	cs := make([]queue.Completion, len(batch))
	for i := range batch {
		cs[i] = batch[i].c
	}
	errs, err := c.r.completeBatch(context.Background(), cs)
	switch {
	case err == nil:
	case refused(err) && len(batch) > 1:
		// CompleteBatch checks what it is given before it writes (the
		// whole call failed: nothing changed), and one completion's
		// content failed it. Halve the batch until that completion is
		// alone, so that it fails alone.
		c.commit(batch[:len(batch)/2])
		c.commit(batch[len(batch)/2:])
		return
	case refused(err):
		errs = []error{err}
	default:
		// The entry could not be written (a full disk, a closed queue).
		// Nothing changed; the leases are let go and expire, and the jobs
		// run again. Retrying here could only fail the same way.
		c.r.opts.Logger.Error("walq/worker: completing jobs failed; they will run again once their leases expire",
			"jobs", len(batch), "err", err)
		for i := range batch {
			batch[i].pool.unhold(batch[i].lease.Token)
		}
		return
	}
	for i := range batch {
		c.settle(&batch[i], errs[i])
	}
}

// refused reports whether err is the queue refusing what it was given,
// rather than failing to write it.
func refused(err error) bool {
	return errors.Is(err, queue.ErrTooLarge) || errors.Is(err, queue.ErrInvalid)
}

// settle acts on one completion's outcome and lets its lease go.
func (c *completer) settle(p *pending, err error) {
	defer p.pool.unhold(p.lease.Token)
	switch {
	case err == nil:
		c.r.durable(p.lease.Job, p.c.Result, nil)
	case refused(err):
		// The handler succeeded but its result (or its follow-ups) can
		// never be stored. Permanent: a deterministic handler would
		// return the same bytes on every retry.
		p.pool.fail(p.lease, queue.Permanent(c.refusal(p, err)))
	case errors.Is(err, queue.ErrLeaseLost):
		c.r.opts.Logger.Warn("walq/worker: job finished after its lease was lost; it will run again",
			"job", p.lease.Token.Job, "err", err)
	default:
		c.r.opts.Logger.Error("walq/worker: completing job failed", "job", p.lease.Token.Job, "err", err)
	}
}

// refusal is the error recorded for a completion the queue refused.
func (c *completer) refusal(p *pending, err error) error {
	// err is queue's, and says "walq:" already: add only what the runtime
	// knows.
	if limit := c.r.maxPayload; len(p.c.Result) > limit {
		return fmt.Errorf("%w (the handler's result of %d bytes exceeds Options.MaxPayload, %d)", err, len(p.c.Result), limit)
	}
	return fmt.Errorf("%w (completion refused: the handler's result of %d bytes, %d follow-up jobs from OnComplete)",
		err, len(p.c.Result), len(p.c.Then))
}
