package main

import (
	"fmt"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var statsCmd = &command{
	name:    "stats",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "count jobs per queue and state; oldest ready job; log size",
	help: `Count the jobs of every named queue by state (ready, scheduled, leased,
completed and cancelled within their retention, dead), say how long the
oldest ready job has waited, and describe the log on disk: its size, its
segment files, its entries and the live data compaction keeps.`,
	example: `walq stats /var/lib/myapp/queue
walq stats /var/lib/myapp/queue --json | jq .total.dead`,
	run: runStats,
}

// statsJSON is the output of stats --json.
type statsJSON struct {
	// Queues are sorted by name.
	Queues []queueStatsJSON `json:"queues"`
	Total  countsJSON       `json:"total"`
	Log    logStatsJSON     `json:"log"`
	// Compaction reports the writer's failing compactions; null while the
	// last one succeeded.
	Compaction *compactionJSON `json:"compaction"`
	// Partial is set when --partial read only the valid prefix of a
	// damaged log.
	Partial *partialJSON `json:"partial,omitempty"`
	// Schedules are the periodic schedules, sorted by name; absent when
	// there are none.
	Schedules []scheduleJSON `json:"schedules,omitempty"`
}

// The parts of stats --json are the dashboard's types (package web), one
// definition for both.
type (
	compactionJSON = web.CompactionJSON
	countsJSON     = web.CountsJSON
	queueStatsJSON = web.QueueStatsJSON
	logStatsJSON   = web.LogStatsJSON
)

func runStats(a *app, c *command, args []string) error {
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
	st, err := v.q.Stats(a.ctx)
	if err != nil {
		return err
	}
	out := toStatsJSON(st)
	out.Partial = v.partial
	if *asJSON {
		return writeJSON(a.stdout, out)
	}
	a.markPartial(v.partial)
	a.printStats(st, out)
	return nil
}

func toStatsJSON(st queue.Stats) statsJSON {
	w := web.StatsOf(st)
	return statsJSON{Queues: w.Queues, Total: w.Total, Log: w.Log, Compaction: w.Compaction, Schedules: w.Schedules}
}

// oldest renders the age of the oldest ready job, "-" if no job is ready.
func oldest(ready int, d time.Duration) string {
	if ready == 0 {
		return "-"
	}
	return humanDuration(d)
}

func (a *app) printStats(st queue.Stats, out statsJSON) {
	w := a.stdout
	if len(out.Queues) == 0 {
		fmt.Fprintln(w, "no jobs")
	} else {
		t := newTable(w, "QUEUE", "READY", "SCHEDULED", "LEASED", "COMPLETED", "DEAD", "CANCELLED", "OLDEST READY")
		row := func(name string, c countsJSON, oldest string) {
			t.row(name, fmt.Sprint(c.Ready), fmt.Sprint(c.Scheduled), fmt.Sprint(c.Leased),
				fmt.Sprint(c.Completed), fmt.Sprint(c.Dead), fmt.Sprint(c.Cancelled), oldest)
		}
		var oldestAll time.Duration
		for _, qs := range out.Queues {
			name := qs.Name
			if qs.Paused {
				name += " (paused)"
			}
			if b := qs.Breaker; b != nil {
				name += " (breaker " + string(b.State) + ")"
			}
			d := st.Queues[qs.Name].OldestReady
			oldestAll = max(oldestAll, d)
			row(name, qs.CountsJSON, oldest(qs.Ready, d))
		}
		if len(out.Queues) > 1 {
			row("total", out.Total, oldest(out.Total.Ready, oldestAll))
		}
		t.flush()
	}
	l := out.Log
	segs := "segments"
	if l.Segments == 1 {
		segs = "segment"
	}
	entries := "no entries"
	if l.LastIndex >= l.FirstIndex {
		entries = fmt.Sprintf("entries %d to %d", l.FirstIndex, l.LastIndex)
	}
	fmt.Fprintf(w, "\nlog: %s in %d %s, %s; live data %s\n", humanSize(l.SizeBytes), l.Segments, segs,
		entries, humanSize(l.LiveBytes))
	if c := out.Compaction; c != nil {
		fmt.Fprintf(w, "compaction: FAILING (%d failures; last %s): %s\n", c.Failures,
			relative(c.LastErrorAt, a.clock.Now()), c.LastError)
	}
	for _, qs := range out.Queues {
		if b := qs.Breaker; b != nil && b.State == queue.BreakerOpen {
			fmt.Fprintf(w, "breaker: %s open since %s; probe %s\n", qs.Name, a.stampAgo(b.OpenedAt),
				relative(b.ProbeAt, a.clock.Now()))
		}
	}
	if len(st.Schedules) > 0 {
		fmt.Fprintln(w)
		a.scheduleTable(st.Schedules)
	}
}
