package main

import (
	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var cancelCmd = &command{
	name:    "cancel",
	args:    "DIR ID...",
	group:   "Change (takes the write lock)",
	summary: "cancel ready or scheduled jobs",
	help: `Cancel jobs that have not started: ready or scheduled ones. A cancelled
job never runs; it is kept, with its idempotency key, for the queue's key
retention and then forgotten. A leased (running) or finished job cannot be
cancelled. Every ID is checked first: if one cannot be cancelled, nothing
is. --dry-run checks and says what would be cancelled, changing nothing.`,
	example: `walq cancel /var/lib/myapp/queue 42
walq cancel /var/lib/myapp/queue 42 43 44 --dry-run`,
	run: runCancel,
}

func runCancel(a *app, c *command, args []string) error {
	fs := flagSet(c)
	dryRun := fs.Bool("dry-run", false, "check the jobs and say what would be cancelled; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	dir, ids, err := dirAndIDs(pos)
	if err != nil {
		return err
	}
	q, err := a.openForChange(dir, *dryRun)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		return a.remoteChange(r, "cancel", web.ActionRequest{IDs: ids}, change{verb: "cancelled", noun: "job", asJSON: *asJSON})
	}
	defer q.Close()
	pending := func(s queue.JobState) bool { return s == queue.StateReady || s == queue.StateScheduled }
	if err := a.checkJobs(q, dir, ids, pending, "only ready or scheduled jobs can be cancelled"); err != nil {
		return err
	}
	if !*dryRun {
		// Cancel changes one job per log entry. The checks above hold
		// under the write lock, so only an I/O failure can stop it
		// midway, after the jobs before it.
		for i, id := range ids {
			if err := q.Cancel(a.ctx, id); err != nil {
				return partialError(dir, "cancelled", ids[:i], err)
			}
		}
		if err := q.Close(); err != nil {
			return err
		}
	}
	return a.report(change{verb: "cancelled", would: "would cancel", noun: "job", dryRun: *dryRun, asJSON: *asJSON}, ids)
}
