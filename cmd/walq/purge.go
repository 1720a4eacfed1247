package main

import (
	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var purgeCmd = &command{
	name:    "purge",
	args:    "DIR (--dead | ID...)",
	group:   "Change (takes the write lock)",
	summary: "forget dead jobs (--dead) or finished jobs by ID",
	help: `Forget jobs for good, with their idempotency keys (a purged key can be
enqueued again). With --dead, purge the dead-letter queue, or the part of
it that --queue, --older-than and --error select; with IDs, purge those
jobs, which must be finished (dead, completed or cancelled). Every ID is
checked first: if one is not finished, nothing is purged; the IDs are
then purged in one atomic change (--dead: 10,000 jobs per change).
--dry-run checks and says what would be purged, changing nothing.`,
	example: `walq purge /var/lib/myapp/queue --dead --older-than 7d
walq purge /var/lib/myapp/queue --dead --queue emails --dry-run
walq purge /var/lib/myapp/queue 17 42`,
	run: runPurge,
}

func runPurge(a *app, c *command, args []string) error {
	fs := flagSet(c)
	dead := fs.Bool("dead", false, "purge dead jobs (all, or those the other flags select)")
	name := fs.String("queue", "", "with --dead, only dead jobs of the named `queue`")
	olderThan := durationFlag(fs, "older-than", "with --dead, only jobs that died more than this `duration` ago (e.g. 36h, 7d)")
	match := fs.String("error", "", "with --dead, only jobs whose last error contains `text`")
	dryRun := fs.Bool("dry-run", false, "check the jobs and say what would be purged; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	var dir string
	var ids []uint64
	if *dead {
		if dir, err = oneDir(pos); err != nil {
			if len(pos) > 1 {
				return usagef("give job IDs or --dead, not both")
			}
			return err
		}
	} else {
		if *name != "" || olderThan.set || *match != "" {
			return usagef("--queue, --older-than and --error select dead jobs: add --dead")
		}
		if dir, ids, err = dirAndIDs(pos); err != nil {
			if len(pos) == 1 {
				return usagef("say what to purge: --dead, or job IDs after DIR")
			}
			return err
		}
	}
	q, err := a.openForChange(dir, *dryRun)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		req := web.ActionRequest{IDs: ids, Dead: *dead, Queue: *name, Error: *match}
		noun := "job"
		if *dead {
			noun = "dead job"
			req.OlderThanSeconds = olderThan.d.Seconds()
		}
		return a.remoteChange(r, "purge", req, change{verb: "purged", noun: noun, asJSON: *asJSON})
	}
	defer q.Close()
	noun := "job"
	if *dead {
		noun = "dead job"
		a.noteUnknownQueue(q, dir, *name)
		f := queue.DeadFilter{Queue: *name, ErrorContains: *match}
		if olderThan.set {
			f.Before = a.clock.Now().Add(-olderThan.d)
		}
		if ids, err = a.deadIDs(q, f); err != nil {
			return err
		}
	} else if err := a.checkJobs(q, dir, ids, isFinished, "only finished jobs (dead, completed, cancelled) can be purged"); err != nil {
		return err
	}
	if !*dryRun {
		n, err := inChunks(ids, func(ids []uint64) error { return q.Purge(a.ctx, ids) })
		if err != nil {
			return partialError(dir, "purged", ids[:n], err)
		}
		if err := q.Close(); err != nil {
			return err
		}
	}
	return a.report(change{verb: "purged", would: "would purge", noun: noun, dryRun: *dryRun, asJSON: *asJSON}, ids)
}

func isFinished(s queue.JobState) bool {
	return s == queue.StateDead || s == queue.StateCompleted || s == queue.StateCancelled
}
