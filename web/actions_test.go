package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestRequeueFilterPreview checks that "requeue all matching" shows how
// many and which jobs first, and that confirming requeues those and not a
// job that died after the preview.
func TestRequeueFilterPreview(t *testing.T) {
	t.Parallel()
	q, mc := fixture(t)
	ctx := context.Background()
	// Each job dies alone in a queue of its own making.
	kill := func(payload, msg string) uint64 {
		t.Helper()
		res, err := q.Enqueue(ctx, queue.NewJob{Queue: "outbox", Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		l, err := q.TryLease(ctx, "outbox")
		if err != nil || l.Job.ID != res.ID {
			t.Fatalf("lease: %v", err)
		}
		if err := q.Fail(ctx, l.Token, queue.Permanent(errors.New(msg))); err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	a := kill("a", "timeout talking to smtp")
	b := kill("b", "timeout talking to smtp")
	kill("c", "bad address")
	mc.Add(time.Minute)
	hh := newHandler(fixed{q}, &Options{Write: true})
	code, body := get(t, hh, "/requeue?error=timeout")
	if code != http.StatusOK || !strings.Contains(body, "Requeue 2 jobs") ||
		!strings.Contains(body, fmt.Sprintf("/jobs/%d\"", a)) || !strings.Contains(body, fmt.Sprintf("/jobs/%d\"", b)) {
		t.Fatalf("preview: %d\n%s", code, body)
	}
	diedBefore := between(body, `name="died_before" value="`, `"`)
	mc.Add(time.Second)
	late := kill("d", "timeout again")
	form := url.Values{"token": {hh.token}, "error": {"timeout"}, "died_before": {diedBefore}, "return": {"/dead"}}
	rec := postForm(t, hh, "/actions/requeue", form, nil)
	if rec.Code != http.StatusSeeOther || !strings.Contains(rec.Header().Get("Location"), "requeued+2+jobs") {
		t.Fatalf("confirm: %d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
	for id, want := range map[uint64]queue.JobState{a: queue.StateReady, b: queue.StateReady, late: queue.StateDead, jobDead: queue.StateDead} {
		if s := state(t, q, id); s != want {
			t.Errorf("job %d is %s, want %s", id, s, want)
		}
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	return s[:strings.Index(s, to)]
}

// TestAPIActions runs each change through the JSON API and checks the
// queue and the answers, including the refusals that change nothing.
func TestAPIActions(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	h := Handler(q, &Options{Write: true})
	call := func(action, body string, want int) string {
		t.Helper()
		rec := postJSON(t, h, "/api/"+action, body)
		if rec.Code != want {
			t.Fatalf("POST api/%s %s: %d, want %d\n%s", action, body, rec.Code, want, rec.Body)
		}
		return rec.Body.String()
	}
	// A refused change names the job and changes nothing.
	out := call("cancel", fmt.Sprintf(`{"ids":[%d,%d]}`, jobBinary, jobLeased), http.StatusConflict)
	if !strings.Contains(out, fmt.Sprintf("job %d is leased; only ready or scheduled jobs can be cancelled; nothing changed", jobLeased)) {
		t.Errorf("refusal: %s", out)
	}
	if s := state(t, q, jobBinary); s != queue.StateReady {
		t.Errorf("refused cancel changed job %d: %s", jobBinary, s)
	}
	call("cancel", fmt.Sprintf(`{"ids":[%d],"dry_run":true}`, jobBinary), http.StatusOK)
	if s := state(t, q, jobBinary); s != queue.StateReady {
		t.Errorf("dry run cancelled job %d", jobBinary)
	}
	var ch ChangeJSON
	json.Unmarshal([]byte(call("cancel", fmt.Sprintf(`{"ids":[%d]}`, jobBinary), http.StatusOK)), &ch)
	if ch.Count != 1 || state(t, q, jobBinary) != queue.StateCancelled {
		t.Errorf("cancel: %+v, job %s", ch, state(t, q, jobBinary))
	}
	call("pause", `{"queue":"reports"}`, http.StatusOK)
	if st, _ := q.Stats(context.Background()); !st.Queues["reports"].Paused {
		t.Error("pause did not pause")
	}
	call("resume", `{"queue":"reports"}`, http.StatusOK)
	if st, _ := q.Stats(context.Background()); st.Queues["reports"].Paused {
		t.Error("resume did not resume")
	}
	call("pause", `{"queue":"bad name!"}`, http.StatusBadRequest)
	call("purge", `{"dead":true,"queue":"emails"}`, http.StatusOK)
	if _, err := q.Get(context.Background(), jobDead); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("purge --dead left job %d: %v", jobDead, err)
	}
	var enq EnqueueJSON
	json.Unmarshal([]byte(call("enqueue", `{"queue":"emails","key":"k1","payload":"hi"}`, http.StatusOK)), &enq)
	json.Unmarshal([]byte(call("enqueue", `{"queue":"reports","key":"k1","payload":"hi"}`, http.StatusOK)), &enq)
	if !enq.Duplicate || enq.Queue != "emails" {
		t.Errorf("duplicate enqueue: %+v", enq)
	}
	call("compact", ``, http.StatusOK)
	call("frobnicate", `{}`, http.StatusNotFound)
	call("requeue", `{"ids":[1],"bogus":1}`, http.StatusBadRequest)
}

// TestPaging pages through many jobs with the index's paging and finds
// each once.
func TestPaging(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	ctx := context.Background()
	var batch []queue.NewJob
	for i := 0; i < 2500; i++ {
		batch = append(batch, queue.NewJob{Queue: "bulk", Payload: []byte("x")})
	}
	if _, err := q.EnqueueBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	h := Handler(q, nil)
	seen := map[uint64]bool{}
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("too many pages")
		}
		_, body := get(t, h, fmt.Sprintf("/api/jobs?queue=bulk&limit=1000&after=%d", after))
		var l JobListJSON
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		for _, j := range l.Jobs {
			if seen[j.ID] {
				t.Fatalf("job %d on two pages", j.ID)
			}
			seen[j.ID] = true
		}
		if !l.More {
			break
		}
		after = l.Next
	}
	if len(seen) != 2500 {
		t.Errorf("paged %d jobs, want 2500", len(seen))
	}
	code, body := get(t, h, "/jobs?queue=bulk")
	if code != http.StatusOK || !strings.Contains(body, `rel="next"`) || strings.Count(body, `class="badge badge-ready"`) != defaultLimit {
		t.Errorf("jobs page: %d, want %d rows and a next link", code, defaultLimit)
	}
}

// TestEvents reads a job transition from the event stream.
func TestEvents(t *testing.T) {
	t.Parallel()
	q, _ := fixture(t)
	srv := httptest.NewServer(Handler(q, nil))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	// The handler subscribed before it sent the headers, so this
	// enqueue is on the stream.
	res, err := q.Enqueue(context.Background(), queue.NewJob{Queue: "emails", Payload: []byte("e")})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev EventJSON
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != "enqueued" || ev.Job != res.ID || ev.Queue != "emails" {
			t.Fatalf("event %+v, want job %d enqueued", ev, res.ID)
		}
		return
	}
	t.Fatalf("stream ended: %v", sc.Err())
}
