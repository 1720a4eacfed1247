package web

import (
	"bytes"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walq/walq/queue"
)

//go:embed assets
var assetFS embed.FS

// assetServer serves the embedded stylesheet, script and icon.
func assetServer() http.Handler {
	sub, err := fs.Sub(assetFS, "assets/static")
	if err != nil {
		panic(err)
	}
	fsrv := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// pages renders the HTML pages: each page's template is parsed with the
// shared layout.
type pages struct {
	h    *handler
	tmpl map[string]*template.Template
}

func newPages(h *handler) *pages {
	p := &pages{h: h, tmpl: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"ago":   ago,
		"dur":   humanDuration,
		"secs":  func(s float64) string { return humanDuration(time.Duration(s * float64(time.Second))) },
		"size":  humanSize,
		"bytes": func(n int) string { return humanSize(int64(n)) },
		"view": func(name string, v any) any {
			return struct {
				Name string
				V    any
			}{name, v}
		},
		"stamp":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 UTC") },
		"path":     p.path,
		"query":    query,
		"plural":   plural,
		"add":      func(a, b int) int { return a + b },
		"hasState": func(s queue.JobState, names ...string) bool { return hasState(s, names...) },
	}
	for _, name := range []string{"overview", "jobs", "job", "dead", "preview", "error"} {
		t := template.New("layout.html").Funcs(funcs)
		t = template.Must(t.ParseFS(assetFS, "assets/templates/layout.html", "assets/templates/"+name+".html"))
		p.tmpl[name] = t
	}
	return p
}

// path prefixes a handler path with the mount point.
func (p *pages) path(s string) string { return p.h.opts.Prefix + s }

// query renders key, value pairs as a query string, skipping empty values.
func query(kv ...any) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		s := fmt.Sprint(kv[i+1])
		if s != "" && s != "0" {
			v.Set(fmt.Sprint(kv[i]), s)
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func hasState(s queue.JobState, names ...string) bool {
	for _, n := range names {
		if string(s) == n {
			return true
		}
	}
	return false
}

// page is what every page's template gets.
type page struct {
	Title   string
	Heading string
	Nav     string // which tab is current
	Write   bool
	Token   string
	Refresh int64 // live reload period in ms; 0 for none
	Flash   string
	Now     time.Time
	Data    any
}

func (p *pages) render(w http.ResponseWriter, r *http.Request, code int, name, heading, nav string, live bool, data any) {
	pg := page{Title: p.h.opts.Title, Heading: heading, Nav: nav, Write: p.h.opts.Write, Token: p.h.token,
		Flash: r.URL.Query().Get("done"), Data: data}
	if live && p.h.opts.Refresh > 0 {
		pg.Refresh = p.h.opts.Refresh.Milliseconds()
	}
	var b bytes.Buffer
	if err := p.tmpl[name].Execute(&b, pg); err != nil {
		http.Error(w, "walq: rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (p *pages) errorPage(w http.ResponseWriter, r *http.Request, code int, err error) {
	p.render(w, r, code, "error", http.StatusText(code), "", false, err.Error())
}

// overviewData is the overview page.
type overviewData struct {
	Queues     []queueRow
	Total      CountsJSON
	Log        queue.LogStats
	Compaction queue.CompactStats
	Failing    *CompactionJSON
	ReadOnly   bool // the queue is a read-only open (walq web)
	Dir        string
	Schedules  []queue.ScheduleInfo
	Now        time.Time
}

type queueRow struct {
	QueueStatsJSON
	OldestReady           time.Duration
	Throughput, Latency   template.HTML
	LastRate, LastLatency string
}

func (p *pages) overview(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	st, err := q.Stats(r.Context())
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	p.h.charts.observe(q, st)
	sj := StatsOf(st)
	d := overviewData{Total: sj.Total, Log: st.Log, Compaction: st.LastCompaction, Failing: sj.Compaction,
		ReadOnly: q.Info().ReadOnly, Dir: q.Info().Location, Schedules: st.Schedules,
		Now: q.Info().Clock.Now()}
	for _, qs := range sj.Queues {
		tp, lat := p.h.charts.series(qs.Name)
		row := queueRow{QueueStatsJSON: qs, OldestReady: st.Queues[qs.Name].OldestReady,
			Throughput: sparkline(tp, "jobs finished per second, last minutes of "+qs.Name),
			Latency:    sparkline(lat, "p95 queue latency, last minutes of "+qs.Name)}
		row.LastRate, row.LastLatency = "–", "–"
		if v, ok := last(tp); ok {
			row.LastRate = strconv.FormatFloat(v, 'f', 1, 64) + "/s"
		}
		if v, ok := last(lat); ok {
			row.LastLatency = humanDuration(time.Duration(v * float64(time.Second)))
		}
		d.Queues = append(d.Queues, row)
	}
	p.render(w, r, http.StatusOK, "overview", "Queues", "overview", true, d)
}

// jobsData is a page of jobs.
type jobsData struct {
	listing
	States []queue.JobState
	Queues []string
	Jobs   []*queue.Job
	More   bool
	Next   uint64
	Now    time.Time
}

func (p *pages) jobs(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	if id := r.URL.Query().Get("id"); id != "" {
		http.Redirect(w, r, p.path("/jobs/"+url.PathEscape(strings.TrimSpace(id))), http.StatusSeeOther)
		return
	}
	if key := r.URL.Query().Get("key"); key != "" {
		j, err := q.GetByKey(r.Context(), key)
		if err != nil {
			p.h.fail(w, r, fmt.Errorf("key %q: %w", key, err))
			return
		}
		http.Redirect(w, r, p.path(fmt.Sprintf("/jobs/%d", j.ID)), http.StatusSeeOther)
		return
	}
	l, err := parseListing(r)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	jobs, more, err := listJobs(r, q, l)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	d := jobsData{listing: l, States: queue.JobStates(), Jobs: jobs, More: more, Now: q.Info().Clock.Now()}
	if more {
		d.Next = jobs[len(jobs)-1].ID
	}
	if st, err := q.Stats(r.Context()); err == nil {
		d.Queues = queueNames(st)
	}
	heading := "Jobs"
	if l.Queue != "" {
		heading = "Jobs of " + l.Queue
	}
	p.render(w, r, http.StatusOK, "jobs", heading, "jobs", true, d)
}

// jobData is one job's page.
type jobData struct {
	Job      *queue.Job
	Now      time.Time
	Attempts []attemptRow
	Payload  bytesView
	Result   *bytesView
}

type attemptRow struct {
	queue.Attempt
	Duration time.Duration
	Running  bool
	Requeue  bool
	Width    int // share of the longest attempt, in percent, for the bar
}

// bytesView shows bytes three ways.
type bytesView struct {
	Size      int
	Text      string // "" unless printable
	IsText    bool
	JSON      string // pretty-printed, "" unless valid JSON
	Hex       string // a hex dump of the first previewLimit bytes
	Truncated bool
}

// previewLimit is how many bytes a page shows of a payload or result; the
// download has them all.
const previewLimit = 16 << 10

func viewBytes(b []byte) bytesView {
	v := bytesView{Size: len(b)}
	shown := b
	if len(shown) > previewLimit {
		shown, v.Truncated = shown[:previewLimit], true
	}
	if isText(b) || (v.Truncated && isText(validPrefix(shown))) {
		v.Text, v.IsText = string(validPrefix(shown)), true
	}
	if !v.Truncated && json.Valid(b) {
		var out bytes.Buffer
		if json.Indent(&out, b, "", "  ") == nil {
			v.JSON = out.String()
		}
	}
	v.Hex = hex.Dump(shown)
	return v
}

// validPrefix drops a rune cut in half at the end of b.
func validPrefix(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return b
}

func (p *pages) job(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	j, err := getJob(r, q)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	now := q.Info().Clock.Now()
	d := jobData{Job: j, Now: now, Payload: viewBytes(j.Payload)}
	if j.HasResult {
		v := viewBytes(j.Result)
		d.Result = &v
	}
	var longest time.Duration
	for _, at := range j.History {
		row := attemptRow{Attempt: at, Requeue: at.Outcome == "requeued", Running: at.Ended.IsZero()}
		end := at.Ended
		if row.Running {
			end = now
		}
		if !row.Requeue {
			row.Duration = end.Sub(at.Started)
			longest = max(longest, row.Duration)
		}
		d.Attempts = append(d.Attempts, row)
	}
	for i := range d.Attempts {
		if longest > 0 && !d.Attempts[i].Requeue {
			d.Attempts[i].Width = max(1, int(100*d.Attempts[i].Duration/longest))
		}
	}
	p.render(w, r, http.StatusOK, "job", fmt.Sprintf("Job %d", j.ID), "jobs", false, d)
}

// deadData is the dead-letter page.
type deadData struct {
	deadQuery
	Queues []string
	Jobs   []*queue.Job
	More   bool
	Next   uint64
	Now    time.Time
}

func (p *pages) dead(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	dq, err := parseDeadQuery(r, q)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	jobs, more, next, err := listDead(r, q, dq)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	d := deadData{deadQuery: dq, Jobs: jobs, More: more, Next: next, Now: q.Info().Clock.Now()}
	if st, err := q.Stats(r.Context()); err == nil {
		d.Queues = queueNames(st)
	}
	p.render(w, r, http.StatusOK, "dead", "Dead letters", "dead", true, d)
}

// previewData shows what a requeue or purge of a filter would change,
// before it is confirmed.
type previewData struct {
	deadQuery
	Action     string // "requeue" or "purge"
	Count      int
	Jobs       []*queue.Job // the first previewShow of them
	DiedBefore string       // RFC 3339: confirming acts on no job that died since
	DiedAfter  string       // RFC 3339, from newer_than; "" for none
	Rest       int          // Count minus the jobs shown
}

const previewShow = 20

// GET requeue?queue=&error=&older_than=&newer_than=[&purge=1]: what a
// requeue (or purge) of every dead job matching the filter would change.
func (p *pages) requeuePreview(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	dq, err := parseDeadQuery(r, q)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	now := q.Info().Clock.Now()
	f := dq.filter()
	if f.Before.IsZero() || now.Before(f.Before) {
		f.Before = now.Add(time.Nanosecond)
	}
	jobs, err := q.Dead(r.Context(), f)
	if err != nil {
		p.h.fail(w, r, err)
		return
	}
	d := previewData{deadQuery: dq, Action: "requeue", Count: len(jobs), Jobs: jobs[:min(len(jobs), previewShow)],
		DiedBefore: f.Before.UTC().Format(time.RFC3339Nano)}
	d.Rest = d.Count - len(d.Jobs)
	if !f.After.IsZero() {
		d.DiedAfter = f.After.UTC().Format(time.RFC3339Nano)
	}
	if r.URL.Query().Get("purge") != "" {
		d.Action = "purge"
	}
	p.render(w, r, http.StatusOK, "preview", "Confirm: "+d.Action+" "+plural(d.Count, "dead job"), "dead", false, d)
}

// Formatting.

// ago renders how long before now t was: "3m ago", "in 5s".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}

// humanDuration renders a duration with two units at most: "1h5m", "3.2s".
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + humanDuration(-d)
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// humanSize renders a byte count: "812 B", "3.4 MiB".
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// plural renders a count with its noun: "1 job", "3 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
