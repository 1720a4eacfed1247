package main

import (
	"fmt"

	"github.com/walq/walq/queue"
)

var deadCmd = &command{
	name:    "dead",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "list the dead-letter queue, oldest death first",
	help: `List the dead-letter queue: jobs that failed permanently or used up their
attempts, oldest death first, with the error that killed them. They stay
until requeued ('walq requeue') or purged ('walq purge').`,
	example: `walq dead /var/lib/myapp/queue --queue emails
walq dead /var/lib/myapp/queue --error timeout --json`,
	run: runDead,
}

func runDead(a *app, c *command, args []string) error {
	fs := flagSet(c)
	name := fs.String("queue", "", "only dead jobs of the named `queue`")
	match := fs.String("error", "", "only dead jobs whose last error contains `text`")
	limit := fs.Int("limit", 100, "print at most `n` jobs (0 for all)")
	asJSON := fs.Bool("json", false, "print JSON")
	partial := partialFlag(fs)
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("invalid value %d for --limit: want 0 or more", *limit)
	}
	v, err := a.openRead(dir, *partial)
	if err != nil {
		return err
	}
	defer v.close()
	q := v.q
	a.noteUnknownQueue(q, dir, *name)
	f := queue.DeadFilter{Queue: *name, ErrorContains: *match}
	if *limit > 0 {
		f.Limit = *limit + 1
	}
	jobs, err := q.Dead(a.ctx, f)
	if err != nil {
		return err
	}
	more := *limit > 0 && len(jobs) > *limit
	if more {
		jobs = jobs[:*limit]
	}
	if *asJSON {
		return writeJSON(a.stdout, listJSON(jobs, more, v.partial))
	}
	a.markPartial(v.partial)
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "no dead jobs")
		return nil
	}
	now := a.clock.Now()
	t := newTable(a.stdout, "ID", "QUEUE", "ATTEMPTS", "DIED", "KEY", "ERROR")
	for _, j := range jobs {
		t.row(fmt.Sprint(j.ID), j.Queue, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), relative(j.FinishedAt, now),
			orDash(truncate(j.Key, 32)), orDash(truncate(j.LastError, 60)))
	}
	t.flush()
	if more {
		fmt.Fprintf(a.stdout, "… more dead jobs: --limit 0 lists them all\n")
	}
	fmt.Fprintf(a.stdout, "\nnext: walq show %s ID | walq requeue %s ID... (or --all) | walq purge %s --dead\n", dir, dir, dir)
	return nil
}
