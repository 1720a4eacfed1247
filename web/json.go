package web

import (
	"encoding/base64"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/walq/walq/queue"
)

// The JSON API's shapes are those of "walq … --json" (cmd/walq): a test
// there compares the two byte for byte, so a script reads either.

// StatsJSON is GET api/stats: "walq stats --json".
type StatsJSON struct {
	// Queues are sorted by name.
	Queues []QueueStatsJSON `json:"queues"`
	Total  CountsJSON       `json:"total"`
	Log    LogStatsJSON     `json:"log"`
	// Compaction reports the writer's failing compactions; null while the
	// last one succeeded.
	Compaction *CompactionJSON `json:"compaction"`
	// Schedules are the periodic schedules, sorted by name; absent when
	// there are none.
	Schedules []ScheduleJSON `json:"schedules,omitempty"`
}

// ScheduleJSON is one periodic schedule: an entry of "walq schedules
// --json".
type ScheduleJSON struct {
	Name       string  `json:"name"`
	Spec       string  `json:"spec"`
	Queue      string  `json:"queue"`
	Missed     string  `json:"missed"`
	NextRun    *string `json:"next_run"`
	LastRun    *string `json:"last_run"`
	LastJob    uint64  `json:"last_job,omitempty"`
	Registered *string `json:"registered"`
	Error      string  `json:"error,omitempty"`
}

// RateLimitJSON is a named queue's rate limit: at most N leases in any
// window of PerSeconds; WindowStarts counts those of the current window.
type RateLimitJSON struct {
	N            int     `json:"n"`
	PerSeconds   float64 `json:"per_seconds"`
	WindowStarts int     `json:"window_starts"`
}

// CompactionJSON describes a failing compaction.
type CompactionJSON struct {
	Failures    int       `json:"failures"`
	LastError   string    `json:"last_error"`
	LastErrorAt time.Time `json:"last_error_at"`
}

// CountsJSON counts jobs by state.
type CountsJSON struct {
	Ready     int `json:"ready"`
	Scheduled int `json:"scheduled"`
	Leased    int `json:"leased"`
	Completed int `json:"completed"`
	Dead      int `json:"dead"`
	Cancelled int `json:"cancelled"`
}

// QueueStatsJSON is one named queue's counts.
type QueueStatsJSON struct {
	Name   string `json:"name"`
	Paused bool   `json:"paused"`
	CountsJSON
	// OldestReadySeconds is how long the oldest ready job has been ready;
	// null when no job is ready.
	OldestReadySeconds *float64 `json:"oldest_ready_seconds"`
	// Breaker is the queue's circuit breaker while it is open or
	// half-open; absent otherwise.
	Breaker *queue.BreakerStatus `json:"breaker,omitempty"`
	// RateLimit is the queue's rate limit; absent when it has none (and
	// always for a read-only open, which does not know the app's limits).
	RateLimit *RateLimitJSON `json:"rate_limit,omitempty"`
}

// LogStatsJSON describes the log on disk.
type LogStatsJSON struct {
	SizeBytes  int64  `json:"size_bytes"`
	Segments   int    `json:"segments"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	LiveBytes  int64  `json:"live_bytes"`
}

// JobJSON is a job in listings: "walq jobs --json" and "walq dead --json".
// Times are RFC 3339 in UTC, null when they do not apply.
type JobJSON struct {
	ID            uint64  `json:"id"`
	Queue         string  `json:"queue"`
	Key           string  `json:"key"`
	State         string  `json:"state"`
	Attempt       int     `json:"attempt"`
	MaxAttempts   int     `json:"max_attempts"`
	Priority      int32   `json:"priority"`
	EnqueuedAt    *string `json:"enqueued_at"`
	RunAt         *string `json:"run_at"`
	LeaseDeadline *string `json:"lease_deadline"`
	FinishedAt    *string `json:"finished_at"`
	LastError     string  `json:"last_error"`
	// Group is the job's ordered group; absent when it has none.
	Group string `json:"group,omitempty"`
	// Batch is the progress of the job's batch (a job's own answer only),
	// while the batch has not ended; absent otherwise.
	Batch *queue.BatchInfo `json:"batch,omitempty"`
	// Progress and ProgressNote are the job's latest progress report;
	// absent when it has made none.
	Progress     int64  `json:"progress,omitempty"`
	ProgressNote string `json:"progress_note,omitempty"`
	// KeyReleased reports that the job gave Key up when it died
	// (queue.NewJob.ReleaseKeyOnDeath); absent otherwise.
	KeyReleased bool `json:"key_released,omitempty"`
}

// JobListJSON is GET api/jobs and api/dead.
type JobListJSON struct {
	Jobs []JobJSON `json:"jobs"`
	// More reports that the page was cut; page on with after=Next.
	More bool `json:"more"`
	// Next is the ID to pass as after= for the next page (0 when !More).
	// "walq jobs --json" has no such field: it pages with --after.
	Next uint64 `json:"next,omitempty"`
}

// ShowJSON is GET api/jobs/{id}: "walq show --json" without "records"
// (the job's raw log records, which take a scan of the whole log).
type ShowJSON struct {
	JobJSON
	Payload  *BytesJSON    `json:"payload"`
	Result   *BytesJSON    `json:"result"`
	Attempts []AttemptJSON `json:"attempts"`
	// AttemptsDropped counts attempts the bounded history left out
	// between the first and the last ones kept.
	AttemptsDropped int `json:"attempts_dropped"`
	// Meta is the job's metadata, left out when it has none.
	Meta map[string]string `json:"meta,omitempty"`
}

// AttemptJSON is one attempt of a job. NextRunAt, which "walq show" reads
// from the job's log records, is always null here.
type AttemptJSON struct {
	Number          int      `json:"number"`
	Lease           int      `json:"lease"`
	StartedAt       *string  `json:"started_at"`
	EndedAt         *string  `json:"ended_at"`
	DurationSeconds *float64 `json:"duration_seconds"`
	Outcome         string   `json:"outcome"`
	Error           string   `json:"error"`
	NextRunAt       *string  `json:"next_run_at"`
}

// BytesJSON is a payload or result: text as is when it is printable
// UTF-8, base64 otherwise.
type BytesJSON struct {
	Size     int    `json:"size"`
	Encoding string `json:"encoding"` // "text" or "base64"
	Data     string `json:"data"`
}

// ChangeJSON is the answer to a change (requeue, cancel, purge): the
// output of those commands with --json.
type ChangeJSON struct {
	// DryRun reports that nothing was changed: Count and IDs are what
	// would have been.
	DryRun bool `json:"dry_run"`
	// Count is how many jobs changed; IDs lists them in ID order.
	Count int      `json:"count"`
	IDs   []uint64 `json:"ids"`
}

// CompactJSON is the answer to POST api/compact: "walq compact --json".
type CompactJSON struct {
	Purged          int     `json:"purged"`
	Carried         int     `json:"carried"`
	CarriedBytes    int64   `json:"carried_bytes"`
	SegmentsRemoved int     `json:"segments_removed"`
	SizeBefore      int64   `json:"size_before_bytes"`
	SizeAfter       int64   `json:"size_after_bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// EnqueueJSON is the answer to POST api/enqueue: "walq enqueue --json".
type EnqueueJSON struct {
	ID        uint64 `json:"id"`
	Queue     string `json:"queue"`
	Duplicate bool   `json:"duplicate"`
}

// ErrorJSON is the body of every error answer of the API.
type ErrorJSON struct {
	Error string `json:"error"`
	// Code names the kind of error: "not_found", "state", "invalid",
	// "read_only", "forbidden", "too_large", "internal".
	Code string `json:"code"`
}

// toStatsJSON converts the queue's stats.
// StatsOf returns st as "walq stats --json" and GET api/stats show it:
// queues sorted by name, totals, the log, failing compactions and the
// periodic schedules.
func StatsOf(st queue.Stats) StatsJSON {
	out := StatsJSON{Queues: []QueueStatsJSON{}}
	for _, name := range queueNames(st) {
		qs := st.Queues[name]
		c := CountsJSON{qs.Ready, qs.Scheduled, qs.Leased, qs.Completed, qs.Dead, qs.Cancelled}
		qj := QueueStatsJSON{Name: name, Paused: qs.Paused, CountsJSON: c}
		if b := qs.Breaker; b.State != "" && b.State != queue.BreakerClosed {
			qj.Breaker = &b
		}
		if l := qs.RateLimit; l.N > 0 {
			qj.RateLimit = &RateLimitJSON{N: l.N, PerSeconds: l.Per.Seconds(), WindowStarts: qs.WindowStarts}
		}
		if qs.Ready > 0 {
			s := qs.OldestReady.Seconds()
			qj.OldestReadySeconds = &s
		}
		out.Queues = append(out.Queues, qj)
		t := &out.Total
		t.Ready += c.Ready
		t.Scheduled += c.Scheduled
		t.Leased += c.Leased
		t.Completed += c.Completed
		t.Dead += c.Dead
		t.Cancelled += c.Cancelled
	}
	out.Log = LogStatsJSON{SizeBytes: st.Log.Size, Segments: st.Log.Segments, FirstIndex: st.Log.FirstIndex,
		LastIndex: st.Log.LastIndex, LiveBytes: st.Log.LiveBytes}
	if len(st.Schedules) > 0 {
		out.Schedules = SchedulesOf(st.Schedules)
	}
	if st.LastCompactError != "" {
		out.Compaction = &CompactionJSON{Failures: st.CompactFailures, LastError: st.LastCompactError, LastErrorAt: st.LastCompactErrorAt}
	}
	return out
}

// SchedulesOf returns periodic schedules as "walq schedules --json" lists
// them (an empty list, not null, when there are none).
func SchedulesOf(ss []queue.ScheduleInfo) []ScheduleJSON {
	out := []ScheduleJSON{}
	for _, sc := range ss {
		out = append(out, ScheduleJSON{Name: sc.Name, Spec: sc.Spec, Queue: sc.Queue,
			Missed: sc.Missed.String(), NextRun: jsonTime(sc.Next), LastRun: jsonTime(sc.LastRun),
			LastJob: sc.LastJob, Registered: jsonTime(sc.Registered), Error: sc.Error})
	}
	return out
}

// queueNames returns the stats' queue names, sorted.
func queueNames(st queue.Stats) []string {
	names := make([]string, 0, len(st.Queues))
	for name := range st.Queues {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// JobOf returns j as it appears in job listings ("walq jobs --json", "walq
// dead --json" and GET api/jobs): each time only where it applies to the
// job's state (a requeued job, for one, still carries the time it died).
func JobOf(j *queue.Job) JobJSON {
	out := JobJSON{
		ID: j.ID, Queue: j.Queue, Key: j.Key, State: string(j.State),
		Attempt: j.Attempt, MaxAttempts: j.MaxAttempts, Priority: j.Priority,
		EnqueuedAt: jsonTime(j.EnqueuedAt), LastError: j.LastError, Group: j.Group, Batch: j.Batch,
		Progress: j.Progress, ProgressNote: j.ProgressNote, KeyReleased: j.KeyReleased,
	}
	switch j.State {
	case queue.StateReady, queue.StateScheduled:
		out.RunAt = jsonTime(j.RunAt)
	case queue.StateLeased:
		out.LeaseDeadline = jsonTime(j.LeaseDeadline)
	default:
		out.FinishedAt = jsonTime(j.FinishedAt)
	}
	return out
}

func toJobListJSON(jobs []*queue.Job, more bool) JobListJSON {
	out := JobListJSON{Jobs: []JobJSON{}, More: more}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, JobOf(j))
	}
	if more && len(jobs) > 0 {
		out.Next = jobs[len(jobs)-1].ID
	}
	return out
}

func toShowJSON(j *queue.Job) ShowJSON {
	out := ShowJSON{JobJSON: JobOf(j), Payload: encodeBytes(j.Payload), Attempts: []AttemptJSON{}, Meta: j.Meta}
	if j.HasResult {
		out.Result = encodeBytes(j.Result)
	}
	for _, at := range j.History {
		aj := AttemptJSON{Number: at.Number, Lease: at.Lease, StartedAt: jsonTime(at.Started), EndedAt: jsonTime(at.Ended),
			Outcome: orRunning(at.Outcome), Error: at.Error}
		if !at.Ended.IsZero() && at.Outcome != "requeued" {
			s := at.Ended.Sub(at.Started).Seconds()
			aj.DurationSeconds = &s
		}
		out.Attempts = append(out.Attempts, aj)
	}
	out.AttemptsDropped = j.HistoryDropped
	return out
}

func orRunning(outcome string) string {
	if outcome == "" {
		return "running"
	}
	return outcome
}

func encodeBytes(b []byte) *BytesJSON {
	if isText(b) {
		return &BytesJSON{Size: len(b), Encoding: "text", Data: string(b)}
	}
	return &BytesJSON{Size: len(b), Encoding: "base64", Data: base64.StdEncoding.EncodeToString(b)}
}

// isText reports whether b is UTF-8 made of printable characters and
// ordinary whitespace.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// jsonTime renders a moment as RFC 3339 in UTC, nil (null) when zero.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
