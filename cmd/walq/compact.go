package main

import (
	"fmt"
	"time"

	"github.com/walq/walq/web"
)

var compactCmd = &command{
	name:    "compact",
	args:    "DIR",
	group:   "Change (takes the write lock)",
	summary: "enforce retention and drop old log segments now",
	help: `Compact the log now, as the queue's background compactor does: purge
finished jobs past their retention, restate every live job held in older
segments at the tail, and remove those segments. Every step is crash-safe.`,
	example: `walq compact /var/lib/myapp/queue`,
	run:     runCompact,
}

// compactJSON is the output of compact --json.
type compactJSON struct {
	Purged          int     `json:"purged"`
	Carried         int     `json:"carried"`
	CarriedBytes    int64   `json:"carried_bytes"`
	SegmentsRemoved int     `json:"segments_removed"`
	SizeBefore      int64   `json:"size_before_bytes"`
	SizeAfter       int64   `json:"size_after_bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

func runCompact(a *app, c *command, args []string) error {
	fs := flagSet(c)
	asJSON := fs.Bool("json", false, "print JSON")
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	q, err := a.openWriter(dir)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		var out web.CompactJSON
		if err := r.call(a.ctx, "compact", web.ActionRequest{}, &out); err != nil {
			return err
		}
		return a.printCompact(compactJSON(out), *asJSON)
	}
	defer q.Close()
	st, err := q.Compact(a.ctx)
	if err != nil {
		return err
	}
	if err := q.Close(); err != nil {
		return err
	}
	return a.printCompact(compactJSON{Purged: st.Purged, Carried: st.Carried, CarriedBytes: st.CarriedBytes,
		SegmentsRemoved: st.SegmentsRemoved, SizeBefore: st.SizeBefore, SizeAfter: st.SizeAfter,
		DurationSeconds: seconds(st.Duration)}, *asJSON)
}

// printCompact reports what a compaction did.
func (a *app) printCompact(st compactJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(a.stdout, st)
	}
	d := time.Duration(st.DurationSeconds * float64(time.Second))
	_, err := fmt.Fprintf(a.stdout, "compacted in %s: purged %s past retention, carried %s (%s), removed %s; log %s -> %s\n",
		humanDuration(d), plural(st.Purged, "job"), plural(st.Carried, "live job"), humanSize(st.CarriedBytes),
		plural(st.SegmentsRemoved, "segment"), humanSize(st.SizeBefore), humanSize(st.SizeAfter))
	return err
}
