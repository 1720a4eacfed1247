package main

import (
	"fmt"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var schedulesCmd = &command{
	name:    "schedules",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "list periodic schedules: spec, next run, last run, last job",
	help: `List the periodic schedules registered in the queue (queue.Schedule):
each one's cron expression or interval, the named queue its jobs go to, what
it does with ticks missed while the app was down, when it runs next, the
tick that last enqueued a job and that job's ID (while the queue keeps it).
A next run in the past is a tick due now: the app enqueues it as soon as it
looks.`,
	example: `walq schedules /var/lib/myapp/queue
walq schedules /var/lib/myapp/queue --json | jq '.schedules[].next_run'`,
	run: runSchedules,
}

// schedulesJSON is the output of schedules --json.
type schedulesJSON struct {
	Schedules []scheduleJSON `json:"schedules"`
	// Partial is set when --partial read only the valid prefix of a
	// damaged log.
	Partial *partialJSON `json:"partial,omitempty"`
}

// scheduleJSON is one periodic schedule, in the dashboard's shape.
type scheduleJSON = web.ScheduleJSON

func toSchedulesJSON(ss []queue.ScheduleInfo) []scheduleJSON { return web.SchedulesOf(ss) }

func runSchedules(a *app, c *command, args []string) error {
	fs := flagSet(c)
	asJSON := fs.Bool("json", false, "print JSON")
	partial := partialFlag(fs)
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	v, err := a.openRead(dir, *partial)
	if err != nil {
		return err
	}
	defer v.close()
	ss, err := v.q.Schedules(a.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(a.stdout, schedulesJSON{Schedules: toSchedulesJSON(ss), Partial: v.partial})
	}
	a.markPartial(v.partial)
	if len(ss) == 0 {
		fmt.Fprintln(a.stdout, "no schedules")
		return nil
	}
	a.scheduleTable(ss)
	return nil
}

// scheduleTable prints one row per schedule.
func (a *app) scheduleTable(ss []queue.ScheduleInfo) {
	now := a.clock.Now()
	t := newTable(a.stdout, "SCHEDULE", "SPEC", "QUEUE", "MISSED", "NEXT RUN", "LAST RUN", "LAST JOB")
	for _, s := range ss {
		next := a.nextRun(s, now)
		last := "-"
		if s.LastJob != 0 {
			last = fmt.Sprint(s.LastJob)
		}
		t.row(s.Name, s.Spec, s.Queue, s.Missed.String(), next, a.runStamp(s.LastRun, now), last)
	}
	t.flush()
}

// nextRun renders a schedule's next run: "due" when it has come, the
// error when the schedule cannot run.
func (a *app) nextRun(s queue.ScheduleInfo, now time.Time) string {
	switch {
	case s.Error != "":
		return "never: " + truncate(s.Error, 40)
	case s.Next.IsZero():
		return "never"
	case !s.Next.After(now):
		return a.runStamp(s.Next, now) + " due"
	}
	return a.runStamp(s.Next, now)
}

// runStamp renders a tick to the second, with its distance from now.
func (a *app) runStamp(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(a.loc).Format("2006-01-02 15:04:05") + " (" + relative(t, now) + ")"
}
