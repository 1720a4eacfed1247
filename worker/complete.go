package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/walq/walq/queue"
)

// maxBatch bounds the completions committed in one log entry.
const maxBatch = 512

// completer commits completions in groups: whatever has arrived while the
// previous group was being made durable goes into the next log entry.
type completer struct {
	commit func(context.Context, []queue.Completion) ([]error, error)
	log    *slog.Logger
	in     chan queue.Completion
	done   chan struct{}
	once   sync.Once
}

func newCompleter(commit func(context.Context, []queue.Completion) ([]error, error), log *slog.Logger) *completer {
	c := &completer{commit: commit, log: log, in: make(chan queue.Completion, maxBatch), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *completer) add(comp queue.Completion) { c.in <- comp }

// close commits what is pending and stops.
func (c *completer) close() {
	c.once.Do(func() { close(c.in) })
	<-c.done
}

func (c *completer) loop() {
	defer close(c.done)
	batch := make([]queue.Completion, 0, maxBatch)
	for comp := range c.in {
		batch = append(batch[:0], comp)
	drain:
		for len(batch) < maxBatch {
			select {
			case comp, ok := <-c.in:
				if !ok {
					break drain
				}
				batch = append(batch, comp)
			default:
				break drain
			}
		}
		errs, err := c.commit(context.Background(), batch)
		if err != nil {
			// The whole entry failed (a full disk, say): the leases stay
			// and will expire, so the jobs run again.
			c.log.Error("walq/worker: completing jobs failed; they will be retried", "jobs", len(batch), "err", err)
			continue
		}
		for i, e := range errs {
			if e != nil && !errors.Is(e, queue.ErrLeaseLost) {
				c.log.Error("walq/worker: completing job failed", "job", batch[i].Token.Job, "err", e)
			} else if e != nil {
				c.log.Warn("walq/worker: job finished after its lease was lost; it will run again", "job", batch[i].Token.Job)
			}
		}
	}
}
