package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

var salvageCmd = &command{
	name:    "salvage",
	args:    "DIR",
	group:   "Change (takes the write lock)",
	summary: "cut a damaged log back to the prefix that opens (asks for --yes)",
	help: `Keep the longest prefix of a damaged log that opens: the entries before the
first corrupt one and, of those, the longest run from the start whose
records replay (a log can pass every checksum and still not replay, for
example a record for a job whose creation is gone). Everything after it is
moved aside into broken-* files in DIR (nothing is deleted), so that the
queue opens again with the jobs as they stood at the cut. Without --yes,
walq only says what it would drop. Work recorded after the cut is lost to
the queue: look at 'walq check' and the dropped range before you agree. A
torn tail (the last write cut short by a crash) needs no salvage: opening
the queue repairs it.`,
	example: `walq salvage /var/lib/myapp/queue
walq salvage /var/lib/myapp/queue --yes`,
	run: runSalvage,
}

// salvageJSON is the output of salvage --json.
type salvageJSON struct {
	// Applied reports that the log was cut (--yes); false for a dry run.
	Applied    bool            `json:"applied"`
	Corruption *corruptionJSON `json:"corruption"`
	// ReplayFailure is set when the cut comes before entries that pass
	// their checksums but do not replay.
	ReplayFailure   *replayFailureJSON `json:"replay_failure"`
	KeptLastIndex   uint64             `json:"kept_last_index"`
	DroppedBytes    int64              `json:"dropped_bytes"`
	DroppedSegments []string           `json:"dropped_segments"`
	Saved           []string           `json:"saved"`
	// TornTail describes bytes after the last whole entry that the next
	// writer's open cuts: not corruption, nothing to salvage.
	TornTail *tornJSON `json:"torn_tail"`
}

func runSalvage(a *app, c *command, args []string) error {
	fs := flagSet(c)
	yes := fs.Bool("yes", false, "cut the log (without it, only report what would be dropped)")
	asJSON := fs.Bool("json", false, "print JSON")
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	if err := checkDir(dir); err != nil {
		return err
	}
	// Make sure dir is a queue before Salvage takes the lock, which would
	// create a LOCK file in any directory, and learn whether the damage is
	// a torn tail, which needs no salvage (check says the same).
	l, pr, err := wlog.OpenPrefix(dir)
	if err != nil {
		return openError(dir, err)
	}
	l.Close()
	rep, err := recovery.Salvage(dir, true)
	if err != nil {
		return openError(dir, err)
	}
	var torn *tornJSON
	if pr.TornTail && rep.Unreplayable == nil && rep.Segment == pr.Segment && rep.Offset == pr.Offset {
		torn = tornInfo(pr)
		rep = &wlog.SalvageReport{KeptLast: rep.KeptLast}
	}
	applied := false
	if rep.Segment != "" && *yes {
		if rep, err = recovery.Salvage(dir, false); err != nil {
			return fmt.Errorf("salvage %s: %s", dir, oneLine(err))
		}
		applied = true
	}
	if *asJSON {
		out := salvageJSON{Applied: applied, KeptLastIndex: rep.KeptLast, DroppedBytes: rep.DroppedBytes,
			DroppedSegments: baseNames(rep.DroppedSegments), Saved: baseNames(rep.Saved), TornTail: torn}
		if rep.Corruption != nil {
			res := &checkJSON{}
			corruptInto(res, rep.Corruption)
			out.Corruption = res.Corruption
		}
		if rep.Unreplayable != nil {
			out.ReplayFailure = unreplayable(rep)
		}
		return writeJSON(a.stdout, out)
	}
	a.printSalvage(dir, rep, torn, applied)
	return nil
}

func (a *app) printSalvage(dir string, rep *wlog.SalvageReport, torn *tornJSON, applied bool) {
	w := a.stdout
	if torn != nil {
		fmt.Fprintf(w, "nothing to salvage: every entry is valid and replays (last index %d)\n", rep.KeptLast)
		fmt.Fprintf(w, "note: %s\n", tornText(torn, rep.KeptLast))
		return
	}
	if rep.Segment == "" {
		fmt.Fprintf(w, "nothing to salvage: every entry is valid and replays (last index %d)\n", rep.KeptLast)
		return
	}
	if rep.Corruption != nil {
		fmt.Fprintf(w, "corruption: %s\n", corruptText(rep.Corruption))
	}
	if rep.Unreplayable != nil {
		f := unreplayable(rep)
		fmt.Fprintf(w, "replay:     the %s record at index %d slot %d for job %d does not replay: %s\n", f.Kind, f.Index, f.Slot, f.Job, f.Reason)
	}
	fmt.Fprintf(w, "keep:       entries up to index %d\n", rep.KeptLast)
	drop := fmt.Sprintf("%s: the rest of %s from offset %d", humanSize(rep.DroppedBytes), filepath.Base(rep.Segment), rep.Offset)
	if n := len(rep.DroppedSegments); n > 0 {
		drop += fmt.Sprintf(" and %s after it", plural(n, "whole segment"))
	}
	fmt.Fprintf(w, "drop:       %s\n", drop)
	if !applied {
		fmt.Fprintf(w, "\nNothing changed. The dropped bytes would be moved into broken-* files in %s, not deleted.\n", dir)
		fmt.Fprintf(w, "Jobs enqueued or changed after index %d would be lost to the queue. To proceed:\n", rep.KeptLast)
		fmt.Fprintf(w, "  walq salvage %s --yes\n", dir)
		return
	}
	fmt.Fprintf(w, "\nsalvaged: the log now ends at index %d; the dropped bytes are in:\n", rep.KeptLast)
	for _, s := range rep.Saved {
		fmt.Fprintf(w, "  %s\n", s)
	}
	fmt.Fprintf(w, "next: walq check %s\n", dir)
}

// unreplayable describes why salvage cuts before entries that pass their
// checksums.
func unreplayable(rep *wlog.SalvageReport) *replayFailureJSON {
	f := &replayFailureJSON{Reason: oneLine(rep.Unreplayable), ReplayableTo: rep.KeptLast}
	var ae *index.ApplyError
	if errors.As(rep.Unreplayable, &ae) {
		f.Index, f.Slot, f.Job, f.Kind, f.Reason = ae.Pos.Index, ae.Pos.Slot, ae.Job, ae.Kind.String(), ae.Reason
	}
	return f
}

func baseNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}
