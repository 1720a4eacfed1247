package main

import (
	"fmt"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var pauseCmd = &command{
	name:    "pause",
	args:    "DIR QUEUE",
	group:   "Change (takes the write lock)",
	summary: "stop leasing from a named queue (survives restarts)",
	help: `Pause a named queue: workers lease nothing from it until 'walq resume'.
Enqueueing into it still works, and the pause survives restarts. While an
app holds the directory, this works through the app's admin socket.`,
	example: `walq pause /var/lib/myapp/queue emails`,
	run:     func(a *app, c *command, args []string) error { return runSetPaused(a, c, args, true) },
}

var resumeCmd = &command{
	name:    "resume",
	args:    "DIR QUEUE",
	group:   "Change (takes the write lock)",
	summary: "undo pause: lease from a named queue again",
	help:    `Resume a paused named queue: workers lease from it again.`,
	example: `walq resume /var/lib/myapp/queue emails`,
	run:     func(a *app, c *command, args []string) error { return runSetPaused(a, c, args, false) },
}

// pauseJSON is the output of pause and resume with --json.
type pauseJSON struct {
	Queue  string `json:"queue"`
	Paused bool   `json:"paused"`
}

func runSetPaused(a *app, c *command, args []string, pause bool) error {
	fs := flagSet(c)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("missing DIR, the queue directory")
	case len(pos) == 1:
		return usagef("missing QUEUE, the named queue to %s", c.name)
	case len(pos) > 2:
		return usagef("unexpected argument %q after QUEUE", pos[2])
	}
	dir, name := pos[0], pos[1]
	if err := queue.CheckQueueName(name); err != nil || name == "" {
		return usagef("invalid queue name %q: want 1 to 255 ASCII letters, digits and - _ . : /", name)
	}
	q, err := a.openWriter(dir)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		var st web.StatsJSON
		if err := r.call(a.ctx, c.name, web.ActionRequest{Queue: name}, &st); err != nil {
			return err
		}
	} else {
		defer q.Close()
		set := q.Resume
		if pause {
			set = q.Pause
		}
		if err := set(a.ctx, name); err != nil {
			return changeError(dir, err)
		}
		if err := q.Close(); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(a.stdout, pauseJSON{Queue: name, Paused: pause})
	}
	verb := "resumed"
	if pause {
		verb = "paused"
	}
	_, err = fmt.Fprintf(a.stdout, "%s queue %s\n", verb, name)
	return err
}
