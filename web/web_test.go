package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
)

// TestPages loads every page against a queue with a job in every state
// and checks what a person would see.
func TestPages(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, &Options{Prefix: "/walq"})
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/walq/", []string{"<td data-label=\"Queue\"><a href=\"/walq/jobs?queue=emails\">emails</a>", "Dead letters", ">1</a></td>", "Last compaction", "read-only"}},
		{"/walq/jobs?queue=reports&state=ready", []string{"/walq/jobs/7", "badge-ready"}},
		{"/walq/jobs?state=dead", []string{"/walq/jobs/2", "smtp 550 &lt;b&gt;no such user&lt;/b&gt;"}},
		{"/walq/jobs/2", []string{"Job 2", "badge-dead", "Attempt 1", "smtp 550 &lt;b&gt;no such user&lt;/b&gt;", "welcome:2", "/walq/jobs/2/payload"}},
		{"/walq/jobs/1", []string{"Result", "250 OK", "completed", "500ms"}},
		{"/walq/jobs/7", []string{"Hex", "00000000  00 01 fe ff"}},
		{"/walq/dead", []string{"/walq/jobs/2", "smtp 550 &lt;b&gt;no such user&lt;/b&gt;"}},
		{"/walq/dead?error=nothing+like+it", []string{"No dead jobs match these filters"}},
		{"/walq/requeue?queue=emails", []string{"1 dead job", "This dashboard is read-only"}},
		{"/walq/assets/style.css", []string{"prefers-color-scheme"}},
	} {
		code, body := get(t, h, tc.path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", tc.path, code, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q in\n%s", tc.path, w, body)
			}
		}
	}
	for path, want := range map[string]int{
		"/walq/jobs/99":              http.StatusNotFound,
		"/walq/jobs/x":               http.StatusBadRequest,
		"/walq/jobs?state=nope":      http.StatusBadRequest,
		"/walq/dead?older_than=":     http.StatusOK,
		"/walq/dead?older_than=soon": http.StatusBadRequest,
		"/walq/api/jobs/99":          http.StatusNotFound,
		"/elsewhere":                 http.StatusNotFound,
	} {
		if code, body := get(t, h, path); code != want {
			t.Errorf("GET %s: %d, want %d\n%s", path, code, want, body)
		}
	}
}

// TestPayloadEscaped checks that a payload holding a script tag shows as
// text on the job page and in the JSON, never as markup.
func TestPayloadEscaped(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, nil)
	code, body := get(t, h, "/jobs/3")
	if code != http.StatusOK {
		t.Fatalf("GET /jobs/3: %d", code)
	}
	if strings.Contains(body, "<script>alert") {
		t.Errorf("job page has the payload's <script> unescaped:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") {
		t.Errorf("job page does not show the payload as text:\n%s", body)
	}
	code, body = get(t, h, "/api/jobs/3")
	if code != http.StatusOK {
		t.Fatalf("GET /api/jobs/3: %d", code)
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("JSON has a raw <script>:\n%s", body)
	}
	var sj ShowJSON
	if err := json.Unmarshal([]byte(body), &sj); err != nil {
		t.Fatal(err)
	}
	if sj.Payload.Data != scriptPayload || sj.Payload.Encoding != "text" {
		t.Errorf("payload = %+v, want the text %q", sj.Payload, scriptPayload)
	}
	rec := httptestGet(h, "/jobs/3/payload")
	if rec.Header().Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("download headers: %v", rec.Header())
	}
	if rec.Body.String() != scriptPayload {
		t.Errorf("download = %q", rec.Body.String())
	}
}

// TestAPIGolden pins the JSON API's shapes.
func TestAPIGolden(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, nil)
	for name, path := range map[string]string{
		"api_stats":     "/api/stats",
		"api_jobs":      "/api/jobs?limit=3",
		"api_jobs_dead": "/api/jobs?state=dead",
		"api_job":       "/api/jobs/1",
		"api_dead":      "/api/dead",
	} {
		code, body := get(t, h, path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", path, code, body)
			continue
		}
		golden(t, name, body)
	}
}

// TestReadOnlyRefusesChanges checks that a handler without Write answers
// every change with 403 and changes nothing.
func TestReadOnlyRefusesChanges(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, nil)
	before := snapshot(t, h)
	for _, action := range []string{"requeue", "cancel", "purge", "pause", "resume", "compact", "enqueue"} {
		if rec := postJSON(t, h, "/api/"+action, `{"ids":[2],"queue":"emails"}`); rec.Code != http.StatusForbidden {
			t.Errorf("POST api/%s on a read-only handler: %d, want 403\n%s", action, rec.Code, rec.Body)
		}
		form := url.Values{"id": {"2"}, "queue": {"emails"}}
		if rec := postForm(t, h, "/actions/"+action, form, nil); rec.Code != http.StatusForbidden {
			t.Errorf("POST actions/%s on a read-only handler: %d, want 403", action, rec.Code)
		}
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("a refused change changed the queue:\nbefore %s\nafter  %s", before, after)
	}
	if s := state(t, q, jobDead); s != queue.StateDead {
		t.Errorf("job %d is %s", jobDead, s)
	}
}

// TestCSRF checks that with writes enabled a form needs the token and a
// same-origin request, and the API a JSON body from no foreign origin.
func TestCSRF(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	hh := newHandler(fixed{q}, &Options{Write: true})
	form := url.Values{"id": {"2"}, "token": {hh.token}, "return": {"/jobs/2"}}
	noToken := url.Values{"id": {"2"}}
	badToken := url.Values{"id": {"2"}, "token": {"0000"}}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", noToken, nil},
		{"wrong token", badToken, nil},
		{"cross-site", form, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"foreign origin", form, map[string]string{"Sec-Fetch-Site": "", "Origin": "http://evil.example"}},
	} {
		if rec := postForm(t, hh, "/actions/requeue", tc.form, tc.hdr); rec.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403\n%s", tc.name, rec.Code, rec.Body)
		}
	}
	if rec := postText(hh, "/api/requeue", `{"ids":[2]}`); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("API POST as text/plain: %d, want 415", rec.Code)
	}
	r := jsonRequest("/api/requeue", `{"ids":[2]}`)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	if rec := serve(hh, r); rec.Code != http.StatusForbidden {
		t.Errorf("API POST cross-site: %d, want 403", rec.Code)
	}
	if s := state(t, q, jobDead); s != queue.StateDead {
		t.Fatalf("a refused request requeued job %d: %s", jobDead, s)
	}
	rec := postForm(t, hh, "/actions/requeue", form, nil)
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/jobs/2?done=requeued+1+job") {
		t.Fatalf("requeue from the job page: %d %v", rec.Code, rec.Header())
	}
	if s := state(t, q, jobDead); s != queue.StateReady {
		t.Errorf("after requeue job %d is %s, want ready", jobDead, s)
	}
	j, _ := q.Get(context.Background(), jobDead)
	if last := j.History[len(j.History)-1]; last.Outcome != "requeued" {
		t.Errorf("history does not show the requeue: %+v", j.History)
	}
}

// TestGetChangesNothing requests every page and API read, and the change
// routes with GET, and checks that the queue is as before.
func TestGetChangesNothing(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, &Options{Write: true})
	before := snapshot(t, h)
	for _, path := range []string{"/", "/jobs", "/jobs/2", "/jobs/2/payload", "/dead", "/requeue", "/requeue?purge=1",
		"/api/stats", "/api/jobs", "/api/jobs/2", "/api/dead",
		"/actions/requeue?id=2", "/api/requeue?ids=2", "/api/compact", "/actions/purge?id=2"} {
		get(t, h, path)
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("a GET changed the queue:\nbefore %s\nafter  %s", before, after)
	}
	if code, _ := get(t, h, "/api/compact"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET api/compact: %d, want 405", code)
	}
}

// snapshot describes the queue through the API: every job's state and
// the log's last index.
func snapshot(t *testing.T, h http.Handler) string {
	t.Helper()
	_, stats := get(t, h, "/api/stats")
	_, jobs := get(t, h, "/api/jobs?limit=1000")
	return stats + jobs
}
