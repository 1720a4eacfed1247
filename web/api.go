package web

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/walq/walq/queue"
)

// writeJSON answers with v as indented JSON, as "walq … --json" prints it.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// GET api/stats.
func (h *handler) apiStats(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	st, err := q.Stats(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.charts.observe(q, st)
	writeJSON(w, http.StatusOK, StatsOf(st))
}

// GET api/jobs?queue=&state=&after=&limit=.
func (h *handler) apiJobs(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	l, err := parseListing(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	jobs, more, err := listJobs(r, q, l)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJobListJSON(jobs, more))
}

// GET api/jobs/{id}.
func (h *handler) apiJob(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	j, err := getJob(r, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toShowJSON(j))
}

// GET api/dead?queue=&error=&older_than=&newer_than=&after=&limit=.
func (h *handler) apiDead(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	d, err := parseDeadQuery(r, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	jobs, more, next, err := listDead(r, q, d)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := toJobListJSON(jobs, more)
	if more {
		out.Next = next
	}
	writeJSON(w, http.StatusOK, out)
}

// GET jobs/{id}/payload[?result=1]: the bytes, as a download.
func (h *handler) download(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	j, err := getJob(r, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, what := j.Payload, "payload"
	if r.URL.Query().Get("result") != "" {
		b, what = j.Result, "result"
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment",
		map[string]string{"filename": fmt.Sprintf("job-%d-%s.bin", j.ID, what)}))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// getJob returns the job the path's {id} names.
func getJob(r *http.Request, q queue.Engine) (*queue.Job, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		return nil, errBadRequest(fmt.Sprintf("invalid job ID %q: want a positive number", r.PathValue("id")))
	}
	j, err := q.Get(r.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	return j, nil
}

// listing is a page of jobs: the index's paging, by ID.
type listing struct {
	Queue string
	State queue.JobState
	After uint64
	Limit int
}

const (
	defaultLimit = 50
	maxLimit     = 1000
)

func parseListing(r *http.Request) (listing, error) {
	v := r.URL.Query()
	l := listing{Queue: v.Get("queue"), State: queue.JobState(v.Get("state"))}
	if l.State != "" && !validState(l.State) {
		return l, errBadRequest(fmt.Sprintf("invalid state %q: want one of %s", l.State, stateList()))
	}
	var err error
	if l.After, err = uintParam(v.Get("after"), "after"); err != nil {
		return l, err
	}
	limit, err := uintParam(v.Get("limit"), "limit")
	if err != nil {
		return l, err
	}
	l.Limit = int(min(limit, maxLimit))
	if l.Limit == 0 {
		l.Limit = defaultLimit
	}
	return l, nil
}

func uintParam(s, name string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("invalid %s %q: want a whole number", name, s))
	}
	return n, nil
}

func validState(s queue.JobState) bool {
	for _, st := range queue.JobStates() {
		if st == s {
			return true
		}
	}
	return false
}

func stateList() string {
	var s []string
	for _, st := range queue.JobStates() {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// listJobs returns one page: it asks the index for one job more than the
// page to learn whether there are more, so a page costs what it shows plus
// the jobs the filter passes over.
func listJobs(r *http.Request, q queue.Engine, l listing) ([]*queue.Job, bool, error) {
	jobs, err := q.Jobs(r.Context(), queue.JobFilter{Queue: l.Queue, State: l.State, AfterID: l.After, Limit: l.Limit + 1})
	if err != nil {
		return nil, false, err
	}
	more := len(jobs) > l.Limit
	if more {
		jobs = jobs[:l.Limit]
	}
	return jobs, more, nil
}

// deadQuery selects dead jobs: DeadFilter's fields, plus paging by ID.
type deadQuery struct {
	Queue, Error         string
	OlderThan, NewerThan string // as typed: "1h", "7d"
	Before, After        time.Time
	From                 uint64 // page after this job ID
	Limit                int
}

func parseDeadQuery(r *http.Request, q queue.Engine) (deadQuery, error) {
	v := r.URL.Query()
	d := deadQuery{Queue: v.Get("queue"), Error: v.Get("error"), OlderThan: v.Get("older_than"), NewerThan: v.Get("newer_than")}
	now := q.Info().Clock.Now()
	if d.OlderThan != "" {
		age, err := parseAge(d.OlderThan)
		if err != nil {
			return d, errBadRequest("older_than: " + err.Error())
		}
		d.Before = now.Add(-age)
	}
	if d.NewerThan != "" {
		age, err := parseAge(d.NewerThan)
		if err != nil {
			return d, errBadRequest("newer_than: " + err.Error())
		}
		d.After = now.Add(-age)
	}
	var err error
	if d.From, err = uintParam(v.Get("after"), "after"); err != nil {
		return d, err
	}
	limit, err := uintParam(v.Get("limit"), "limit")
	if err != nil {
		return d, err
	}
	d.Limit = int(min(limit, maxLimit))
	if d.Limit == 0 {
		d.Limit = defaultLimit
	}
	return d, nil
}

// filter is the DeadFilter that d's filters make (no paging).
func (d deadQuery) filter() queue.DeadFilter {
	return queue.DeadFilter{Queue: d.Queue, ErrorContains: d.Error, Before: d.Before, After: d.After}
}

// matches applies the filters that the index's paging does not.
func (d deadQuery) matches(j *queue.Job) bool {
	if d.Error != "" && !strings.Contains(j.LastError, d.Error) {
		return false
	}
	if !d.Before.IsZero() && !j.FinishedAt.Before(d.Before) {
		return false
	}
	if !d.After.IsZero() && !j.FinishedAt.After(d.After) {
		return false
	}
	return true
}

// deadScan bounds how many dead jobs one page request looks at when the
// error and age filters pass over most of them.
const deadScan = 20000

// listDead returns a page of dead jobs in ID order. It pages through the
// index (Jobs with State dead), applying the error and age filters here,
// and looks at no more than deadScan jobs: scanned is the last ID looked
// at, where the next page starts when the scan stopped short.
func listDead(r *http.Request, q queue.Engine, d deadQuery) (jobs []*queue.Job, more bool, scanned uint64, err error) {
	after := d.From
	for looked := 0; looked < deadScan; {
		batch, err := q.Jobs(r.Context(), queue.JobFilter{Queue: d.Queue, State: queue.StateDead, AfterID: after, Limit: 500})
		if err != nil {
			return nil, false, 0, err
		}
		for _, j := range batch {
			looked++
			after = j.ID
			if !d.matches(j) {
				continue
			}
			if len(jobs) == d.Limit {
				return jobs, true, jobs[len(jobs)-1].ID, nil
			}
			jobs = append(jobs, j)
		}
		if len(batch) < 500 {
			return jobs, false, after, nil
		}
	}
	// The scan stopped short: there may be more past after.
	return jobs, true, after, nil
}

// parseAge parses a duration as "walq purge --older-than" does: Go's
// syntax plus "d" for days ("7d", "36h", "1d12h").
func parseAge(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.Index(s, "d"); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 90s, 36h or 7d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 90s, 36h or 7d", s)
	}
	return days + d, nil
}
