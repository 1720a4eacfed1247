package main

import (
	"fmt"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var requeueCmd = &command{
	name:    "requeue",
	args:    "DIR (ID... | --all)",
	group:   "Change (takes the write lock)",
	summary: "move dead jobs back to ready, attempts reset",
	help: `Move dead jobs back to ready (or scheduled, with --delay) with their
attempt count reset; their history keeps the old attempts. Name the jobs
by ID, or requeue the whole dead-letter queue with --all (of one named
queue with --queue). Every ID is checked first: if one is not dead,
nothing is requeued; the IDs are then requeued in one atomic change
(--all: 10,000 jobs per change). --dry-run checks and says what would be
requeued, changing nothing.`,
	example: `walq requeue /var/lib/myapp/queue 17 42
walq requeue /var/lib/myapp/queue --all --queue emails --delay 5m --dry-run`,
	run: runRequeue,
}

func runRequeue(a *app, c *command, args []string) error {
	fs := flagSet(c)
	all := fs.Bool("all", false, "requeue every dead job (of --queue, if given)")
	name := fs.String("queue", "", "with --all, only dead jobs of the named `queue`")
	to := fs.String("to", "", "move the jobs to the named `queue` (default: each job's own)")
	delay := durationFlag(fs, "delay", "make the jobs ready after this `duration`")
	dryRun := fs.Bool("dry-run", false, "check the jobs and say what would be requeued; change nothing")
	asJSON := fs.Bool("json", false, "print JSON")
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
	q, err := a.openForChange(dir, *dryRun)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		return a.remoteChange(r, "requeue", web.ActionRequest{IDs: ids, All: *all, Queue: *name, To: *to,
			DelaySeconds: delay.d.Seconds()}, change{verb: "requeued", noun: "job", asJSON: *asJSON})
	}
	defer q.Close()
	if *all {
		a.noteUnknownQueue(q, dir, *name)
		if ids, err = a.deadIDs(q, queue.DeadFilter{Queue: *name}); err != nil {
			return err
		}
	} else if err := a.checkJobs(q, dir, ids, isDead, "only dead jobs can be requeued"); err != nil {
		return err
	}
	if !*dryRun {
		opts := queue.RequeueOptions{Queue: *to, Delay: delay.d}
		n, err := inChunks(ids, func(ids []uint64) error { return q.Requeue(a.ctx, ids, opts) })
		if err != nil {
			return partialError(dir, "requeued", ids[:n], err)
		}
		if err := q.Close(); err != nil {
			return err
		}
	}
	return a.report(change{verb: "requeued", would: "would requeue", noun: "job", dryRun: *dryRun, asJSON: *asJSON}, ids)
}

func isDead(s queue.JobState) bool { return s == queue.StateDead }

// partialError reports a change that failed after done were changed
// (only --all and --dead changes span several log entries).
func partialError(dir, verb string, done []uint64, err error) error {
	err = changeError(dir, err)
	if len(done) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s were %s before it)", err, plural(len(done), "job"), verb)
}

// plural renders a count with its noun: "1 job", "3 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
