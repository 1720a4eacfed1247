package main

import (
	"errors"
	"fmt"

	"github.com/walq/walq/queue"
)

var cancelCmd = &command{
	name:    "cancel",
	args:    "DIR ID...",
	group:   "Change (takes the write lock)",
	summary: "cancel ready or scheduled jobs",
	help: `Cancel jobs that have not started: ready or scheduled ones. A cancelled
job never runs; it is kept, with its idempotency key, for the queue's key
retention and then forgotten. A leased (running) or finished job cannot be
cancelled. Each ID is cancelled on its own, in order; walq stops at the
first that fails.`,
	example: `walq cancel /var/lib/myapp/queue 42
walq cancel /var/lib/myapp/queue 42 43 44`,
	run: runCancel,
}

func runCancel(a *app, c *command, args []string) error {
	fs := flagSet(c)
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	dir, ids, err := dirAndIDs(pos)
	if err != nil {
		return err
	}
	q, err := a.openWriter(dir)
	if err != nil {
		return err
	}
	defer q.Close()
	for _, id := range ids {
		if err := q.Cancel(a.ctx, id); err != nil {
			if errors.Is(err, queue.ErrState) {
				return fmt.Errorf("%s; only ready or scheduled jobs can be cancelled", oneLine(err))
			}
			return jobError(dir, id, err)
		}
		fmt.Fprintf(a.stdout, "cancelled job %d\n", id)
	}
	return q.Close()
}
