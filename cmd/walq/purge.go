package main

import (
	"errors"
	"fmt"

	"github.com/walq/walq/queue"
)

var purgeCmd = &command{
	name:    "purge",
	args:    "DIR (--dead | ID...)",
	group:   "Change (takes the write lock)",
	summary: "forget dead jobs (--dead) or finished jobs by ID",
	help: `Forget jobs for good, with their idempotency keys (a purged key can be
enqueued again). With --dead, purge the dead-letter queue, or the part of
it that --queue, --older-than and --error select; with IDs, purge those
jobs, which must be finished (dead, completed or cancelled). --dry-run
counts what would go and changes nothing.`,
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
	dryRun := fs.Bool("dry-run", false, "count what would be purged; change nothing")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if !*dead {
		if *name != "" || olderThan.set || *match != "" {
			return usagef("--queue, --older-than and --error select dead jobs: add --dead")
		}
		dir, ids, err := dirAndIDs(pos)
		if err != nil {
			if len(pos) == 1 {
				return usagef("say what to purge: --dead, or job IDs after DIR")
			}
			return err
		}
		return a.purgeIDs(dir, ids, *dryRun)
	}
	dir, err := oneDir(pos)
	if err != nil {
		if len(pos) > 1 {
			return usagef("give job IDs or --dead, not both")
		}
		return err
	}
	f := queue.DeadFilter{Queue: *name, ErrorContains: *match}
	if olderThan.set {
		f.Before = a.clock.Now().Add(-olderThan.d)
	}
	if *dryRun {
		q, err := a.openReadOnly(dir)
		if err != nil {
			return err
		}
		defer q.Close()
		jobs, err := q.Dead(a.ctx, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "would purge %s (dry run: nothing changed)\n", plural(len(jobs), "dead job"))
		return nil
	}
	q, err := a.openWriter(dir)
	if err != nil {
		return err
	}
	defer q.Close()
	n, err := q.PurgeDead(a.ctx, f)
	if err != nil {
		return changeError(dir, err)
	}
	if err := q.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "purged %s\n", plural(n, "dead job"))
	return nil
}

func (a *app) purgeIDs(dir string, ids []uint64, dryRun bool) error {
	if dryRun {
		q, err := a.openReadOnly(dir)
		if err != nil {
			return err
		}
		defer q.Close()
		for _, id := range ids {
			j, err := q.Get(a.ctx, id)
			if err != nil {
				return jobError(dir, id, err)
			}
			if j.State != queue.StateDead && j.State != queue.StateCompleted && j.State != queue.StateCancelled {
				return fmt.Errorf("job %d is %s; only finished jobs (dead, completed, cancelled) can be purged", id, j.State)
			}
		}
		fmt.Fprintf(a.stdout, "would purge %s (dry run: nothing changed)\n", plural(len(ids), "job"))
		return nil
	}
	q, err := a.openWriter(dir)
	if err != nil {
		return err
	}
	defer q.Close()
	if err := q.Purge(a.ctx, ids); err != nil {
		if errors.Is(err, queue.ErrState) {
			return fmt.Errorf("%s; only finished jobs (dead, completed, cancelled) can be purged", oneLine(err))
		}
		if len(ids) == 1 {
			return jobError(dir, ids[0], err)
		}
		return changeError(dir, err)
	}
	if err := q.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "purged %s\n", plural(len(ids), "job"))
	return nil
}
