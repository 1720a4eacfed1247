package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var jobsCmd = &command{
	name:    "jobs",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "list jobs with their state, attempts and last error",
	help: `List jobs in ID order (oldest first) without their payloads; 'walq show'
prints one job in full. Ready and scheduled are the same pending jobs seen
against the clock: scheduled ones wait for a delay or a retry's backoff.`,
	example: `walq jobs /var/lib/myapp/queue --state scheduled --limit 20
walq jobs /var/lib/myapp/queue --queue emails --json | jq '.jobs[].id'`,
	run: runJobs,
}

// jobJSON is a job in JSON output (jobs, dead, show): the dashboard's
// shape, one definition for both (web.JobOf).
type jobJSON = web.JobJSON

func toJobJSON(j *queue.Job) jobJSON { return web.JobOf(j) }

// jobListJSON is the output of jobs --json and dead --json.
type jobListJSON struct {
	Jobs []jobJSON `json:"jobs"`
	// More reports that --limit cut the list; page on with --after.
	More bool `json:"more"`
	// Partial is set when --partial read only the valid prefix of a
	// damaged log.
	Partial *partialJSON `json:"partial,omitempty"`
}

func runJobs(a *app, c *command, args []string) error {
	fs := flagSet(c)
	name := fs.String("queue", "", "only jobs of the named `queue`")
	state := fs.String("state", "", "only jobs in `state`: ready, scheduled, leased, completed, dead or cancelled")
	limit := fs.Int("limit", 100, "print at most `n` jobs (0 for all)")
	after := fs.Uint64("after", 0, "only jobs with IDs above `id` (paging)")
	key := fs.String("key", "", "only the job holding idempotency `key` (creates nothing)")
	asJSON := fs.Bool("json", false, "print JSON")
	partial := partialFlag(fs)
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	st, err := parseState(*state)
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
	if !*asJSON {
		a.markPartial(v.partial)
	}
	if *key != "" {
		return a.jobByKey(q, *key, *asJSON, v.partial)
	}
	a.noteUnknownQueue(q, dir, *name)
	f := queue.JobFilter{Queue: *name, State: st, AfterID: *after}
	if *limit > 0 {
		f.Limit = *limit + 1 // one more tells whether the list was cut
	}
	jobs, err := q.Jobs(a.ctx, f)
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
	a.jobTable(jobs)
	if more {
		fmt.Fprintf(a.stdout, "… more jobs: add --after %d for the next page, or --limit 0 for all\n", jobs[len(jobs)-1].ID)
	}
	return nil
}

// jobByKey prints the job holding key, or no jobs.
func (a *app) jobByKey(q *queue.Queue, key string, asJSON bool, partial *partialJSON) error {
	var jobs []*queue.Job
	j, err := q.GetByKey(a.ctx, key)
	switch {
	case err == nil:
		jobs = append(jobs, j)
	case !errors.Is(err, queue.ErrNotFound):
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, listJSON(jobs, false, partial))
	}
	a.jobTable(jobs)
	return nil
}

func listJSON(jobs []*queue.Job, more bool, partial *partialJSON) jobListJSON {
	out := jobListJSON{Jobs: []jobJSON{}, More: more, Partial: partial}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, toJobJSON(j))
	}
	return out
}

// jobTable prints jobs one per row.
func (a *app) jobTable(jobs []*queue.Job) {
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "no jobs")
		return
	}
	now := a.clock.Now()
	t := newTable(a.stdout, "ID", "QUEUE", "STATE", "ATTEMPT", "KEY", "ENQUEUED", "WHEN", "LAST ERROR")
	for _, j := range jobs {
		t.row(fmt.Sprint(j.ID), j.Queue, string(j.State), fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
			orDash(truncate(j.Key, 32)), relative(j.EnqueuedAt, now), when(j, now), orDash(truncate(j.LastError, 48)))
	}
	t.flush()
}

// when says what a job waits for, or when it finished.
func when(j *queue.Job, now time.Time) string {
	switch j.State {
	case queue.StateReady:
		return "runs now"
	case queue.StateScheduled:
		return "runs " + relative(j.RunAt, now)
	case queue.StateLeased:
		if j.LeaseDeadline.After(now) {
			return "lease ends " + relative(j.LeaseDeadline, now)
		}
		return "lease ended " + relative(j.LeaseDeadline, now)
	}
	return string(j.State) + " " + relative(j.FinishedAt, now)
}

var showCmd = &command{
	name:    "show",
	args:    "DIR ID",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "print one job: state, payload, every attempt, its records in the log",
	help: `Print one job in full: its state, its payload (as text when printable,
as a hex dump otherwise) and result, every attempt with its lease time,
duration, outcome, error and the next run time the failure scheduled, and
the job's records as they stand in the log. Records that compaction
restated are shown as one carry record; the attempts survive it.`,
	example: `walq show /var/lib/myapp/queue 42
walq show /var/lib/myapp/queue 42 --payload-out payload.bin`,
	run: runShow,
}

// showJSON is the output of show --json: the job, its payload and result,
// its attempts, and its records in the log.
type showJSON struct {
	jobJSON
	Payload  *bytesJSON    `json:"payload"`
	Result   *bytesJSON    `json:"result"`
	Attempts []attemptJSON `json:"attempts"`
	// AttemptsDropped counts attempts the bounded history left out
	// between the first and the last ones kept.
	AttemptsDropped int          `json:"attempts_dropped"`
	Records         []recordJSON `json:"records"`
	// Partial is set when --partial read only the valid prefix of a
	// damaged log.
	Partial *partialJSON `json:"partial,omitempty"`
	// Meta is the job's metadata, left out when it has none.
	Meta map[string]string `json:"meta,omitempty"`
}

// attemptJSON is one attempt of a job.
type attemptJSON struct {
	Number          int      `json:"number"`
	Lease           int      `json:"lease"`
	StartedAt       *string  `json:"started_at"`
	EndedAt         *string  `json:"ended_at"`
	DurationSeconds *float64 `json:"duration_seconds"`
	Outcome         string   `json:"outcome"`
	Error           string   `json:"error"`
	NextRunAt       *string  `json:"next_run_at"`
}

// historyFirst is how many of a job's first attempts the bounded history
// keeps before the gap (queue's HistoryFirst).
const historyFirst = queue.HistoryFirst

func runShow(a *app, c *command, args []string) error {
	fs := flagSet(c)
	out := fs.String("payload-out", "", "write the payload's bytes to `file` (- for standard output, alone); an existing file needs --force")
	force := fs.Bool("force", false, "with --payload-out, replace an existing file")
	asJSON := fs.Bool("json", false, "print JSON")
	partial := partialFlag(fs)
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	dir, ids, err := dirAndIDs(pos)
	if err != nil {
		return err
	}
	if len(ids) > 1 {
		return usagef("show takes one job ID; 'walq jobs' lists many")
	}
	id := ids[0]
	v, err := a.openRead(dir, *partial)
	if err != nil {
		return err
	}
	defer v.close()
	j, err := v.q.Get(a.ctx, id)
	if err != nil {
		return jobError(dir, id, err)
	}
	if *out == "-" {
		_, err := a.stdout.Write(j.Payload)
		return err
	}
	recs, err := a.jobRecords(v.dir, id)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writePayloadFile(*out, j.Payload, *force); err != nil {
			return err
		}
	}
	if *asJSON {
		sj := toShowJSON(j, recs)
		sj.Partial = v.partial
		err = writeJSON(a.stdout, sj)
	} else {
		a.markPartial(v.partial)
		a.showJob(j, recs)
	}
	if err == nil && *out != "" && !*asJSON {
		fmt.Fprintf(a.stdout, "\npayload (%d bytes) written to %s\n", len(j.Payload), *out)
	}
	return err
}

// writePayloadFile writes a payload to path, refusing to replace an
// existing file unless force.
func writePayloadFile(path string, b []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--payload-out: %s exists; add --force to replace it", path)
	}
	if err != nil {
		return fmt.Errorf("--payload-out: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--payload-out: %w", err)
	}
	return nil
}

func toShowJSON(j *queue.Job, recs []entryRecord) showJSON {
	out := showJSON{jobJSON: toJobJSON(j), Payload: encodeBytes(j.Payload), Attempts: []attemptJSON{}, Records: []recordJSON{}}
	out.Meta = j.Meta
	if j.HasResult {
		out.Result = encodeBytes(j.Result)
	}
	for _, at := range j.History {
		aj := attemptJSON{Number: at.Number, Lease: at.Lease, StartedAt: jsonTime(at.Started), EndedAt: jsonTime(at.Ended),
			Outcome: orRunning(at.Outcome), Error: at.Error, NextRunAt: jsonTime(nextRun(at, recs))}
		if !at.Ended.IsZero() && !isRequeueMark(at) {
			s := seconds(at.Ended.Sub(at.Started))
			aj.DurationSeconds = &s
		}
		out.Attempts = append(out.Attempts, aj)
	}
	out.AttemptsDropped = j.HistoryDropped
	for i := range recs {
		out.Records = append(out.Records, toRecordJSON(&recs[i]))
	}
	return out
}

// isRequeueMark reports whether a history entry marks a requeue rather
// than an attempt.
func isRequeueMark(at queue.Attempt) bool { return at.Outcome == "requeued" }

func orRunning(outcome string) string {
	if outcome == "" {
		return "running"
	}
	return outcome
}

// nextRun finds, among the job's records, the run-at that the failure
// ending an attempt scheduled; zero if the attempt did not schedule one or
// its record was compacted away.
func nextRun(at queue.Attempt, recs []entryRecord) time.Time {
	if at.Ended.IsZero() {
		return time.Time{}
	}
	for i := range recs {
		r := &recs[i].r
		if r.At == at.Ended.UnixNano() && r.Kind.String() == at.Outcome && r.RunAt != 0 {
			return unixTime(r.RunAt)
		}
	}
	return time.Time{}
}

// showJob prints a job for people.
func (a *app) showJob(j *queue.Job, recs []entryRecord) {
	w := a.stdout
	t := newTable(w)
	t.row("job", fmt.Sprint(j.ID))
	t.row("queue", j.Queue)
	if j.KeyReleased {
		t.row("key", j.Key+" (released when the job died)")
	} else {
		t.row("key", orDash(j.Key))
	}
	if j.Group != "" {
		t.row("group", j.Group)
	}
	if b := j.Batch; b != nil {
		t.row("batch", fmt.Sprintf("%d: %d of %d jobs finished (%d completed, %d dead, %d cancelled)",
			b.ID, b.Finished, b.Total, b.Completed, b.Dead, b.Cancelled))
	}
	t.row("state", string(j.State))
	t.row("attempts", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	t.row("priority", fmt.Sprint(j.Priority))
	t.row("enqueued", a.stampAgo(j.EnqueuedAt))
	switch j.State {
	case queue.StateReady, queue.StateScheduled:
		t.row("runs at", a.stampAgo(j.RunAt))
	case queue.StateLeased:
		t.row("lease until", a.stampAgo(j.LeaseDeadline))
	default:
		t.row("finished", a.stampAgo(j.FinishedAt))
	}
	if j.Timeout > 0 {
		t.row("timeout", humanDuration(j.Timeout))
	}
	if j.Progress != 0 || j.ProgressNote != "" {
		t.row("progress", fmt.Sprintf("%d %s", j.Progress, quoteIfNeeded(j.ProgressNote)))
	}
	t.row("last error", orDash(j.LastError))
	for _, k := range slices.Sorted(maps.Keys(j.Meta)) {
		t.row("meta "+k, j.Meta[k])
	}
	t.row("payload", describeBytes(j.Payload))
	t.flush()
	if len(j.Payload) > 0 {
		writePayload(w, j.Payload, "    ")
	}
	if j.HasResult {
		fmt.Fprintf(w, "result  %s\n", describeBytes(j.Result))
		writePayload(w, j.Result, "    ")
	}
	fmt.Fprintf(w, "\nattempts:\n")
	if len(j.History) == 0 {
		fmt.Fprintf(w, "  none yet\n")
	} else {
		t = newTable(w, "  #", "LEASE", "LEASED AT", "DURATION", "OUTCOME", "ERROR", "NEXT RUN")
		for i, at := range j.History {
			if i == historyFirst && j.HistoryDropped > 0 {
				t.row("  …", "", fmt.Sprintf("%d attempts not kept", j.HistoryDropped), "", "", "", "")
			}
			num, lease, dur, next := fmt.Sprintf("  %d", at.Number), fmt.Sprint(at.Lease), "-", "-"
			if isRequeueMark(at) {
				num, lease = "  -", "-"
			} else if !at.Ended.IsZero() {
				dur = humanDuration(at.Ended.Sub(at.Started))
			}
			if n := nextRun(at, recs); !n.IsZero() {
				next = a.stamp(n) + " (+" + humanDuration(n.Sub(at.Ended)) + ")"
			}
			t.row(num, lease, a.stamp(at.Started), dur, orRunning(at.Outcome), orDash(truncate(at.Error, 60)), next)
		}
		t.flush()
	}
	fmt.Fprintf(w, "\nrecords in the log:\n")
	if len(recs) == 0 {
		fmt.Fprintf(w, "  none (compacted away)\n")
		return
	}
	t = newTable(w, "  INDEX", "SLOT", "KIND", "FIELDS")
	for i := range recs {
		e := &recs[i]
		t.row(fmt.Sprintf("  %d", e.index), fmt.Sprint(e.slot), e.r.Kind.String(), a.recordFields(&e.r))
	}
	t.flush()
}
