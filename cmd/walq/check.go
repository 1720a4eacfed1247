package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/recovery"
)

var checkCmd = &command{
	name:    "check",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "verify every entry's checksum and replay the log; OK or the problems",
	help: `Verify the queue directory: read every entry of every segment, checking
its checksum and decoding its records, then replay the whole log as Open
does (without writing anything). Prints OK, or the first problem and exits
1: corruption with its segment file, byte offset and log index, or a
record that does not replay although every checksum is valid, with its
index and slot and how far the log replays. 'walq salvage' cuts a log
back to the prefix that opens.`,
	example: `walq check /var/lib/myapp/queue && echo healthy`,
	run:     runCheck,
}

// checkJSON is the output of check --json.
type checkJSON struct {
	OK         bool            `json:"ok"`
	Segments   int             `json:"segments"`
	Entries    int             `json:"entries"`
	Records    int             `json:"records"`
	SizeBytes  int64           `json:"size_bytes"`
	FirstIndex uint64          `json:"first_index"`
	LastIndex  uint64          `json:"last_index"`
	Corruption *corruptionJSON `json:"corruption"`
	// Jobs counts jobs by state after replay; null if replay failed or
	// was not reached.
	Jobs *countsJSON `json:"jobs"`
	// ReplayError says why the records, although intact, do not replay.
	ReplayError string `json:"replay_error"`
	// ReplayFailure locates the record that stops replay and says how far
	// the log replays; null if replay succeeds or is not reached.
	ReplayFailure *replayFailureJSON `json:"replay_failure"`
	// TornTail describes bytes after the last whole entry of the last
	// segment (not corruption); null if none.
	TornTail *tornJSON `json:"torn_tail"`
	// KeepLastIndex is the last entry 'walq salvage' would keep; null
	// when the log needs no salvage.
	KeepLastIndex *uint64 `json:"keep_last_index"`
	// Notes are observations that are not corruption.
	Notes []string `json:"notes"`
	// Checkpoint compares the index checkpoint with a full replay;
	// absent when the directory has none.
	Checkpoint *checkpointJSON `json:"checkpoint,omitempty"`
}

// checkpointJSON is what check found about the index checkpoint.
type checkpointJSON struct {
	// Usable is true when it matches the log, so that Open loads it;
	// Reason says why not otherwise (Open then replays the whole log).
	Usable bool   `json:"usable"`
	Reason string `json:"reason"`
	Index  uint64 `json:"index"`
	Jobs   int    `json:"jobs"`
	// Matches is true when the state it gives equals a full replay's; a
	// usable checkpoint that does not match is a problem.
	Matches bool `json:"matches"`
}

// replayFailureJSON locates a record that does not replay.
type replayFailureJSON struct {
	// Index and Slot locate the record; Index is 0 if unknown.
	Index uint64 `json:"index"`
	Slot  int    `json:"slot"`
	// Job and Kind are the record's.
	Job    uint64 `json:"job"`
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	// ReplayableTo is the last entry of the longest prefix of the log that
	// replays: what 'walq salvage' keeps.
	ReplayableTo uint64 `json:"replayable_to"`
}

// corruptionJSON locates corruption.
type corruptionJSON struct {
	Segment string `json:"segment"`
	Offset  int64  `json:"offset"`
	Index   uint64 `json:"index"`
	Record  int    `json:"record"`
	Reason  string `json:"reason"`
}

func runCheck(a *app, c *command, args []string) error {
	fs := flagSet(c)
	asJSON := fs.Bool("json", false, "print JSON")
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	res, err := a.check(dir)
	for attempt := 1; vanished(err) && attempt < 3; attempt++ {
		res, err = a.check(dir)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(a.stdout, res); err != nil {
			return err
		}
	} else {
		a.printCheck(dir, res)
	}
	if !res.OK {
		return &exitError{1}
	}
	return nil
}

// check verifies dir. Errors that are not about the log's bytes (a missing
// directory, not a queue) are returned; corruption is in the result.
//
// It reads the log through its valid prefix (wlog.OpenPrefix), the way
// salvage judges it, so that the two agree on where the damage is and what
// is intact, whichever segment holds it.
func (a *app) check(dir string) (*checkJSON, error) {
	res := &checkJSON{Notes: []string{}}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	l, pr, err := wlog.OpenPrefix(dir)
	if corruptInto(res, err) {
		return res, nil
	}
	if vanished(err) {
		return nil, err
	}
	if err != nil {
		return nil, openError(dir, err)
	}
	defer l.Close()
	res.FirstIndex, res.Segments, res.SizeBytes = l.FirstIndex(), pr.Segments, pr.Size
	err = l.Iterate(1, func(i uint64, data []byte) error {
		res.Entries++
		res.LastIndex = i
		return wlog.DecodeEntry(i, data, func(int, *wlog.Record) error {
			res.Records++
			return nil
		})
	})
	if err != nil && !corruptInto(res, err) {
		return nil, err
	}
	switch {
	case pr.Corruption == nil:
	case pr.TornTail:
		res.TornTail = tornInfo(pr)
		res.Notes = append(res.Notes, tornText(res.TornTail, pr.KeptLast))
	case res.Corruption == nil:
		corruptInto(res, pr.Corruption)
	}
	res.Notes = append(res.Notes, brokenNotes(dir)...)
	if res.Corruption != nil {
		a.prefixReplay(l, res)
		return res, nil
	}
	a.replayInto(dir, l, res)
	if res.OK {
		a.checkpointInto(dir, l, res)
	}
	return res, nil
}

// checkpointInto compares the directory's index checkpoint, if any, with
// a full replay of the log. One that Open would load but that gives
// another state is a problem; one that Open would not load is a note.
func (a *app) checkpointInto(dir string, l *wlog.Log, res *checkJSON) {
	c, err := recovery.VerifyCheckpoint(l, a.clock.Now())
	if err != nil {
		res.OK, res.ReplayError = false, oneLine(err)
		return
	}
	if !c.Present {
		return
	}
	res.Checkpoint = &checkpointJSON{Usable: c.Used, Reason: c.Reason, Index: c.Index, Jobs: c.Jobs, Matches: c.Matches}
	switch {
	case !c.Used:
		res.Notes = append(res.Notes, fmt.Sprintf("the checkpoint is not used (%s): open replays the whole log, and the writer writes a new one", c.Reason))
	case !c.Matches:
		res.OK = false
	}
}

// tornJSON describes a torn tail: bytes after the last whole entry of the
// last segment, which the next writer's open cuts.
type tornJSON struct {
	Segment string `json:"segment"`
	Offset  int64  `json:"offset"`
	Bytes   int64  `json:"bytes"`
}

func tornInfo(pr *wlog.PrefixReport) *tornJSON {
	return &tornJSON{Segment: pr.Segment, Offset: pr.Offset, Bytes: pr.DroppedBytes}
}

// tornText is what check and salvage both say about a torn tail.
func tornText(t *tornJSON, last uint64) string {
	return fmt.Sprintf("segment %s has %s after its last whole entry (index %d, offset %d): a torn write, or a write in progress; "+
		"not corruption: the next writer's open cuts it (keeping a broken-* copy), so there is nothing to salvage",
		filepath.Base(t.Segment), plural(int(t.Bytes), "byte"), last, t.Offset)
}

// corruptInto records err in res if it is corruption.
func corruptInto(res *checkJSON, err error) bool {
	var ce *wlog.CorruptError
	if !errors.As(err, &ce) {
		return false
	}
	reason := ce.Reason
	if ce.Err != nil {
		reason += ": " + oneLine(ce.Err)
	}
	res.Corruption = &corruptionJSON{Segment: ce.Segment, Offset: ce.Offset, Index: ce.Index, Record: ce.Record, Reason: reason}
	return true
}

// prefixReplay finds, for a corrupt log, how much of its valid prefix
// (l) replays: what salvage keeps.
func (a *app) prefixReplay(l *wlog.Log, res *checkJSON) {
	keep, problem, err := recovery.ReplayablePrefix(l)
	if err != nil {
		res.ReplayError = oneLine(err)
		return
	}
	res.KeepLastIndex = &keep
	if problem != nil && keep < res.LastIndex {
		res.ReplayFailure = replayFailureOf(problem, keep)
	}
}

// replayInto replays the whole log as Open does, read-only, and counts
// the jobs; if it does not replay, it finds how far it does (l is the
// log, open read-only).
func (a *app) replayInto(dir string, l *wlog.Log, res *checkJSON) {
	q, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: a.clock, Logger: a.logger()})
	if err == nil {
		var st queue.Stats
		st, err = q.Stats(a.ctx)
		q.Close()
		if err == nil {
			t := toStatsJSON(st).Total
			res.Jobs = &t
			res.OK = true
			return
		}
	}
	if corruptInto(res, err) {
		return
	}
	res.ReplayError = oneLine(err)
	if errors.Is(err, index.ErrInconsistent) {
		res.ReplayFailure = replayFailureOf(err, 0)
		if keep, _, err := recovery.ReplayablePrefix(l); err == nil {
			res.ReplayFailure.ReplayableTo = keep
			res.KeepLastIndex = &keep
		}
	}
}

// replayFailureOf locates the record that err says does not replay; keep
// is how far the log replays.
func replayFailureOf(err error, keep uint64) *replayFailureJSON {
	f := &replayFailureJSON{Reason: oneLine(err), ReplayableTo: keep}
	var ae *index.ApplyError
	if errors.As(err, &ae) {
		f.Index, f.Slot, f.Job, f.Kind, f.Reason = ae.Pos.Index, ae.Pos.Slot, ae.Job, ae.Kind.String(), ae.Reason
	}
	return f
}

// brokenNotes lists files kept by earlier repairs.
func brokenNotes(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "broken-*"))
	if len(m) == 0 {
		return nil
	}
	names := make([]string, len(m))
	for i, p := range m {
		names[i] = filepath.Base(p)
	}
	return []string{fmt.Sprintf("%s kept by earlier repairs (for forensics; safe to delete): %s",
		plural(len(m), "broken-* file"), strings.Join(names, ", "))}
}

func (a *app) printCheck(dir string, res *checkJSON) {
	w := a.stdout
	span := "no entries"
	if res.Entries > 0 {
		span = fmt.Sprintf("entries %d to %d", res.FirstIndex, res.LastIndex)
	}
	verdict := "checksums and records verified"
	if res.Corruption != nil {
		verdict = "intact up to the corruption"
	}
	fmt.Fprintf(w, "log: %s in %s, %s, %s: %s\n", humanSize(res.SizeBytes), plural(res.Segments, "segment"), span,
		plural(res.Records, "record"), verdict)
	if j := res.Jobs; j != nil {
		fmt.Fprintf(w, "replay: %s (ready %d, scheduled %d, leased %d, completed %d, dead %d, cancelled %d)\n",
			plural(j.Ready+j.Scheduled+j.Leased+j.Completed+j.Dead+j.Cancelled, "job"),
			j.Ready, j.Scheduled, j.Leased, j.Completed, j.Dead, j.Cancelled)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if res.OK {
		fmt.Fprintln(w, paint(w, green, "OK"))
		return
	}
	if c := res.Corruption; c != nil {
		fmt.Fprintf(w, "%s %s: %s\n", paint(w, red, "CORRUPT:"), corruptLocation(c), c.Reason)
	}
	if f := res.ReplayFailure; f != nil {
		what := "every checksum is valid, but the"
		if res.Corruption != nil {
			what = "before it, the"
		}
		fmt.Fprintf(w, "%s %s %s record at index %d slot %d for job %d does not replay: %s\n",
			paint(w, red, "PROBLEM:"), what, f.Kind, f.Index, f.Slot, f.Job, f.Reason)
	}
	if c := res.Checkpoint; c != nil && c.Usable && !c.Matches && res.ReplayError == "" {
		fmt.Fprintf(w, "%s the checkpoint (covering index %d) matches the log but gives another state than a full replay; "+
			"remove %s so that open replays the log (the writer writes a new one)\n",
			paint(w, red, "PROBLEM:"), c.Index, filepath.Join(dir, recovery.CheckpointName))
		return
	}
	if res.Corruption == nil && res.ReplayFailure == nil {
		fmt.Fprintf(w, "%s every checksum is valid, but replay failed: %s\n", paint(w, red, "PROBLEM:"), res.ReplayError)
		return
	}
	if k := res.KeepLastIndex; k != nil {
		if *k < res.FirstIndex {
			fmt.Fprintf(w, "no prefix of the log replays; 'walq salvage %s' shows what cutting it would drop; nothing changes without --yes\n", dir)
			return
		}
		replays := ""
		if res.ReplayFailure != nil {
			replays = fmt.Sprintf("the log replays up to index %d; ", *k)
		}
		fmt.Fprintf(w, "%s'walq salvage %s' would keep entries up to index %d and move the rest aside; nothing changes without --yes\n",
			replays, dir, *k)
		fmt.Fprintf(w, "to look at the jobs as of index %d first: walq stats %s --partial (also jobs, show, dead, log)\n", *k, dir)
		return
	}
	fmt.Fprintf(w, "'walq salvage %s' shows what keeping the valid prefix would drop; nothing changes without --yes\n", dir)
}

// corruptLocation renders where corruption is: segment (base name),
// offset, index and record, those known.
func corruptLocation(c *corruptionJSON) string {
	loc := "segment " + filepath.Base(c.Segment)
	if c.Offset >= 0 {
		loc += fmt.Sprintf(" offset %d", c.Offset)
	}
	if c.Index != 0 {
		loc += fmt.Sprintf(" index %d", c.Index)
	}
	if c.Record >= 0 {
		loc += fmt.Sprintf(" record %d", c.Record)
	}
	return loc
}
