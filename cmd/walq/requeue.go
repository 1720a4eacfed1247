package main

import (
	"errors"
	"fmt"

	"github.com/walq/walq/queue"
)

var requeueCmd = &command{
	name:    "requeue",
	args:    "DIR (ID... | --all)",
	group:   "Change (takes the write lock)",
	summary: "move dead jobs back to ready, attempts reset",
	help: `Move dead jobs back to ready (or scheduled, with --delay) with their
attempt count reset; their history keeps the old attempts. Name the jobs
by ID, or requeue the whole dead-letter queue with --all (of one named
queue with --queue). Requeueing several IDs is one atomic change: if one
of them is not dead, nothing is requeued.`,
	example: `walq requeue /var/lib/myapp/queue 17 42
walq requeue /var/lib/myapp/queue --all --queue emails --delay 5m`,
	run: runRequeue,
}

func runRequeue(a *app, c *command, args []string) error {
	fs := flagSet(c)
	all := fs.Bool("all", false, "requeue every dead job (of --queue, if given)")
	name := fs.String("queue", "", "with --all, only dead jobs of the named `queue`")
	to := fs.String("to", "", "move the jobs to the named `queue` (default: each job's own)")
	delay := durationFlag(fs, "delay", "make the jobs ready after this `duration`")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	var dir string
	var ids []uint64
	switch {
	case *all:
		if dir, err = oneDir(pos); err != nil {
			if len(pos) > 1 {
				return usagef("give job IDs or --all, not both")
			}
			return err
		}
	case *name != "":
		return usagef("--queue selects dead jobs for --all; with IDs, use --to to move them")
	default:
		if dir, ids, err = dirAndIDs(pos); err != nil {
			if len(pos) == 1 {
				return usagef("missing job IDs after DIR (or --all for every dead job)")
			}
			return err
		}
	}
	q, err := a.openWriter(dir)
	if err != nil {
		return err
	}
	defer q.Close()
	opts := queue.RequeueOptions{Queue: *to, Delay: delay.d}
	n := len(ids)
	if *all {
		n, err = q.RequeueDead(a.ctx, queue.DeadFilter{Queue: *name}, opts)
	} else {
		err = q.Requeue(a.ctx, ids, opts)
	}
	if err != nil {
		if errors.Is(err, queue.ErrState) {
			return fmt.Errorf("%s; only dead jobs can be requeued", oneLine(err))
		}
		if len(ids) == 1 {
			return jobError(dir, ids[0], err)
		}
		return changeError(dir, err)
	}
	if err := q.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "requeued %s\n", plural(n, "job"))
	return nil
}

// changeError explains an error from a change naming several jobs.
func changeError(dir string, err error) error {
	return jobError(dir, 0, err)
}

// plural renders a count with its noun: "1 job", "3 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
