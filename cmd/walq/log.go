package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
)

var logCmd = &command{
	name:    "log",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "print the raw log records, decoded, one per line (--follow tails it)",
	help: `Print the records of the log in order, one per line: the entry's log
index, the record's slot in the entry (an entry is one atomic operation),
its kind, its job and its non-zero fields. Every entry's checksum is
verified on the way. With --json each record is one JSON object per line
(JSON Lines). With --follow walq keeps printing records as the application
appends them, until interrupted (Ctrl-C).`,
	example: `walq log /var/lib/myapp/queue --from 4700
walq log /var/lib/myapp/queue --follow --json | jq 'select(.kind == "dead")'`,
	run: runLog,
}

// entryRecord is a decoded record and where it stands in the log.
type entryRecord struct {
	index uint64
	slot  int
	r     wlog.Record
}

// cloneRecord copies a record out of the log's buffers.
func cloneRecord(r *wlog.Record) wlog.Record {
	c := *r
	if r.Payload != nil {
		c.Payload = bytes.Clone(r.Payload)
	}
	if r.Result != nil {
		c.Result = bytes.Clone(r.Result)
	}
	c.History = append([]wlog.Attempt(nil), r.History...)
	c.Meta = bytes.Clone(r.Meta)
	return c
}

func runLog(a *app, c *command, args []string) error {
	fset := flagSet(c)
	from := fset.Uint64("from", 0, "start at log index `n` (default: the first entry)")
	follow := fset.Bool("follow", false, "keep printing new records as they are appended, until interrupted")
	job := fset.Uint64("job", 0, "only records of the job with this `id`")
	asJSON := fset.Bool("json", false, "print one JSON object per record (JSON Lines)")
	partial := partialFlag(fset)
	pos, err := a.parse(c, fset, args)
	if err != nil {
		return err
	}
	dir, err := oneDir(pos)
	if err != nil {
		return err
	}
	if *partial && *follow {
		return usagef("--partial reads a damaged log up to its damage; it cannot --follow")
	}
	var l *wlog.Log
	var p *partialJSON
	if *partial {
		l, p, err = a.openLogPrefix(dir)
	} else {
		l, err = a.openLog(dir)
	}
	if err != nil {
		if damaged(err) {
			err = fmt.Errorf("%w; --partial reads the entries before the damage", err)
		}
		return err
	}
	defer l.Close()
	if p != nil && *asJSON {
		if err := writeJSONLine(a.stdout, struct {
			Partial *partialJSON `json:"partial"`
		}{p}); err != nil {
			return err
		}
	} else {
		a.markPartial(p)
	}
	next := max(*from, 1)
	if *from > 1 && *from < l.FirstIndex() {
		fmt.Fprintf(a.stderr, "walq: entries before %d were compacted away; starting there\n", l.FirstIndex())
	}
	if !*asJSON {
		fmt.Fprintf(a.stdout, "%-8s %-5s %-10s %-6s %s\n", "INDEX", "SLOT", "KIND", "JOB", "FIELDS")
	}
	print := func(index uint64, slot int, r *wlog.Record) error {
		next = index + 1
		if *job != 0 && r.Job != *job {
			return nil
		}
		if *asJSON {
			e := entryRecord{index, slot, *r}
			return writeJSONLine(a.stdout, toRecordJSON(&e))
		}
		jobCol := "-"
		if r.Job != 0 {
			jobCol = strconv.FormatUint(r.Job, 10)
		}
		_, err := fmt.Fprintf(a.stdout, "%-8d %-5d %-10s %-6s %s\n", index, slot, r.Kind, jobCol, a.recordFields(r))
		return err
	}
	if err := l.Replay(next, print); err != nil {
		err = logError(dir, err)
		if damaged(err) {
			err = fmt.Errorf("%w; --partial reads the entries before the damage", err)
		}
		return err
	}
	if !*follow {
		return nil
	}
	return a.follow(dir, l, &next, print)
}

// follow polls the log for new entries every a.poll until the context ends.
func (a *app) follow(dir string, l *wlog.Log, next *uint64, print func(uint64, int, *wlog.Record) error) error {
	tick := time.NewTicker(a.poll)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := l.Refresh(); err != nil {
			return logError(dir, err)
		}
		if first := l.FirstIndex(); *next < first {
			fmt.Fprintf(a.stderr, "walq: entries %d to %d were compacted away while following; continuing at %d\n", *next, first-1, first)
			*next = first
		}
		err := l.Replay(*next, print)
		if errors.Is(err, fs.ErrNotExist) {
			continue // compaction removed a segment under us: look again
		}
		if err != nil {
			return logError(dir, err)
		}
	}
}

// openLogPrefix opens dir's log read-only up to its first corruption
// (wlog.OpenPrefix) and describes what it leaves out; the description is
// nil when the log is whole (or only its tail is torn, which reads stop
// at anyway).
func (a *app) openLogPrefix(dir string) (*wlog.Log, *partialJSON, error) {
	if err := checkDir(dir); err != nil {
		return nil, nil, err
	}
	l, pr, err := wlog.OpenPrefix(dir)
	if err != nil {
		return nil, nil, openError(dir, err)
	}
	if pr.Corruption == nil || pr.TornTail {
		return l, nil, nil
	}
	return l, &partialJSON{LastIndex: pr.KeptLast, Reason: corruptText(pr.Corruption)}, nil
}

// logError explains an error met while reading the log.
func logError(dir string, err error) error {
	var ce *wlog.CorruptError
	if errors.As(err, &ce) {
		return explain(err, "%s: %s; 'walq check %s' shows details", dir, corruptText(ce), dir)
	}
	return err
}

// jobRecords returns the records of one job, in log order.
func (a *app) jobRecords(dir string, id uint64) ([]entryRecord, error) {
	l, err := a.openLog(dir)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var out []entryRecord
	err = l.Replay(1, func(index uint64, slot int, r *wlog.Record) error {
		if r.Job == id {
			out = append(out, entryRecord{index, slot, cloneRecord(r)})
		}
		return nil
	})
	if err != nil {
		return nil, logError(dir, err)
	}
	return out, nil
}

// recordFields renders a record's non-zero fields (except its kind and
// job) as key=value pairs.
func (a *app) recordFields(r *wlog.Record) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	tm := func(k string, ns int64) {
		if ns != 0 {
			add(k, a.stamp(unixTime(ns)))
		}
	}
	num := func(k string, n int64) {
		if n != 0 {
			add(k, strconv.FormatInt(n, 10))
		}
	}
	dur := func(k string, ns int64) {
		if ns != 0 {
			add(k, time.Duration(ns).String())
		}
	}
	str := func(k, s string) {
		if s != "" {
			add(k, quoteIfNeeded(s))
		}
	}
	tm("at", r.At)
	str("queue", r.Queue)
	str("key", r.Key)
	if r.Payload != nil {
		add("payload", fmt.Sprintf("%dB:%s", len(r.Payload), preview(r.Payload, 40)))
	}
	num("priority", r.Priority)
	tm("run_at", r.RunAt)
	num("max_attempts", r.MaxAttempts)
	dur("backoff_base", r.BackoffBase)
	dur("backoff_cap", r.BackoffCap)
	dur("timeout", r.Timeout)
	if r.Kind == wlog.KindBatch {
		num("jobs", r.Attempt)
	} else {
		num("attempt", r.Attempt)
	}
	tm("deadline", r.Deadline)
	str("error", r.Error)
	str("spec", r.Spec)
	str("group", r.Group)
	num("progress", r.Progress)
	str("note", r.Note)
	if r.Result != nil {
		add("result", fmt.Sprintf("%dB:%s", len(r.Result), preview(r.Result, 40)))
	}
	switch {
	case r.State != 0 && r.Kind == wlog.KindSchedule:
		add("missed", queue.Missed(r.State).String())
	case r.State != 0 && r.Kind == wlog.KindBatch:
		add("ended", "true")
	case r.State != 0:
		add("state", recordState(r))
	}
	if len(r.History) > 0 {
		add("history", fmt.Sprintf("%d attempts", len(r.History)))
	}
	tm("created", r.Created)
	tm("finished", r.Finished)
	if r.NextID != 0 {
		add("next_id", strconv.FormatUint(r.NextID, 10))
	}
	return b.String()
}

// recordState names the state a carry record restates with the job states
// walq shows everywhere else: the log's one pending state is ready or
// scheduled, as the job stood when the record was written (its run-at
// reached or not).
func recordState(r *wlog.Record) string {
	st := index.State(r.State)
	if st != index.Pending {
		return st.String()
	}
	if r.RunAt > r.At {
		return string(queue.StateScheduled)
	}
	return string(queue.StateReady)
}

// quoteIfNeeded quotes s when it is empty, holds whitespace or
// unprintable characters, or starts with a quote, so that each field stays
// one space-free token.
func quoteIfNeeded(s string) string {
	if s == "" || strings.HasPrefix(s, `"`) || strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	}) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// recordJSON is one log record in JSON (log --json, show --json). Only the
// fields the record sets appear; times are RFC 3339 in UTC and durations
// are in seconds.
type recordJSON struct {
	Index          uint64        `json:"index"`
	Slot           int           `json:"slot"`
	Kind           string        `json:"kind"`
	Job            uint64        `json:"job,omitempty"`
	At             *string       `json:"at,omitempty"`
	Queue          string        `json:"queue,omitempty"`
	Key            string        `json:"key,omitempty"`
	Payload        *bytesJSON    `json:"payload,omitempty"`
	Priority       int64         `json:"priority,omitempty"`
	RunAt          *string       `json:"run_at,omitempty"`
	MaxAttempts    int64         `json:"max_attempts,omitempty"`
	BackoffBaseSec float64       `json:"backoff_base_seconds,omitempty"`
	BackoffCapSec  float64       `json:"backoff_cap_seconds,omitempty"`
	TimeoutSec     float64       `json:"timeout_seconds,omitempty"`
	Attempt        int64         `json:"attempt,omitempty"`
	Deadline       *string       `json:"deadline,omitempty"`
	Error          string        `json:"error,omitempty"`
	Result         *bytesJSON    `json:"result,omitempty"`
	State          string        `json:"state,omitempty"`
	History        []historyJSON `json:"history,omitempty"`
	Created        *string       `json:"created,omitempty"`
	Finished       *string       `json:"finished,omitempty"`
	NextID         uint64        `json:"next_id,omitempty"`
	// Meta is a job's metadata (enqueued and carry records).
	Meta     map[string]string `json:"meta,omitempty"`
	Spec     string            `json:"spec,omitempty"`
	Group    string            `json:"group,omitempty"`
	Progress int64             `json:"progress,omitempty"`
	Note     string            `json:"note,omitempty"`
	Missed   string            `json:"missed,omitempty"`
}

// historyJSON is one attempt restated by a carry record.
type historyJSON struct {
	StartedAt *string `json:"started_at"`
	EndedAt   *string `json:"ended_at"`
	Outcome   string  `json:"outcome"`
	Error     string  `json:"error"`
}

func toRecordJSON(e *entryRecord) recordJSON {
	r := &e.r
	out := recordJSON{
		Index: e.index, Slot: e.slot, Kind: r.Kind.String(), Job: r.Job,
		At: jsonTime(unixTime(r.At)), Queue: r.Queue, Key: r.Key, Priority: r.Priority,
		RunAt: jsonTime(unixTime(r.RunAt)), MaxAttempts: r.MaxAttempts,
		BackoffBaseSec: seconds(time.Duration(r.BackoffBase)), BackoffCapSec: seconds(time.Duration(r.BackoffCap)),
		TimeoutSec: seconds(time.Duration(r.Timeout)), Attempt: r.Attempt,
		Deadline: jsonTime(unixTime(r.Deadline)), Error: r.Error,
		Created: jsonTime(unixTime(r.Created)), Finished: jsonTime(unixTime(r.Finished)), NextID: r.NextID,
	}
	if r.Payload != nil {
		out.Payload = encodeBytes(r.Payload)
	}
	if r.Result != nil {
		out.Result = encodeBytes(r.Result)
	}
	out.Meta, _ = wlog.DecodeMeta(r.Meta) // the decoder checked its shape
	if r.State != 0 && r.Kind == wlog.KindSchedule {
		out.Missed = queue.Missed(r.State).String()
	} else if r.State != 0 {
		out.State = recordState(r)
	}
	out.Spec, out.Group, out.Progress, out.Note = r.Spec, r.Group, r.Progress, r.Note
	for _, h := range r.History {
		outcome := "running"
		if h.Outcome != 0 {
			outcome = h.Outcome.String()
		}
		out.History = append(out.History, historyJSON{StartedAt: jsonTime(unixTime(h.Started)),
			EndedAt: jsonTime(unixTime(h.Ended)), Outcome: outcome, Error: h.Error})
	}
	return out
}
