package web

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var epoch = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// The fixture's jobs, one in every state.
const (
	jobCompleted = 1
	jobDead      = 2 // permanent error with markup in its text
	jobScript    = 3 // ready, payload with a <script> tag
	jobScheduled = 4
	jobLeased    = 5
	jobCancelled = 6
	jobBinary    = 7 // ready, binary payload
)

const scriptPayload = `{"name":"<script>alert('x')</script>"}`
const deadError = `smtp 550 <b>no such user</b>`

// fixture opens a queue in a temporary directory holding one job in each
// state, on a mock clock; cleanup closes it.
func fixture(t *testing.T) (*queue.Queue, *clock.Mock) {
	t.Helper()
	mc := clock.NewMock()
	mc.Set(epoch)
	dir := filepath.Join(t.TempDir(), "q")
	q, err := queue.Open(dir, &queue.Options{Clock: mc, Logger: slog.New(slog.DiscardHandler), CompactRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	enq := func(nj queue.NewJob) {
		t.Helper()
		_, err := q.Enqueue(ctx, nj)
		must(err)
	}
	enq(queue.NewJob{Queue: "emails", Key: "welcome:1", Payload: []byte(`{"to":"ada@example.com"}`)})
	enq(queue.NewJob{Queue: "emails", Key: "welcome:2", Payload: []byte(`{"to":"bob@example.com"}`)})
	mc.Add(time.Second)
	l, err := q.TryLease(ctx, "emails")
	must(err)
	mc.Add(500 * time.Millisecond)
	must(q.Complete(ctx, l.Token, []byte("250 OK")))
	l, err = q.TryLease(ctx, "emails")
	must(err)
	mc.Add(200 * time.Millisecond)
	must(q.Fail(ctx, l.Token, queue.Permanent(errors.New(deadError))))
	mc.Add(time.Second)
	enq(queue.NewJob{Queue: "emails", Payload: []byte(scriptPayload)})
	enq(queue.NewJob{Queue: "reports", Key: "nightly", Payload: []byte("nightly"), Delay: time.Hour})
	enq(queue.NewJob{Queue: "reports", Payload: []byte("leased")})
	enq(queue.NewJob{Queue: "reports", Payload: []byte("cancel me"), Delay: time.Minute})
	l, err = q.TryLease(ctx, "reports")
	must(err)
	if l.Job.ID != jobLeased {
		t.Fatalf("leased %d, want %d", l.Job.ID, jobLeased)
	}
	must(q.Cancel(ctx, jobCancelled))
	enq(queue.NewJob{Queue: "reports", Payload: []byte{0, 1, 0xfe, 0xff}})
	mc.Add(10 * time.Second)
	return q, mc
}

// get serves one GET and returns the response's status and body.
func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// postForm serves one form POST from the same origin.
func postForm(t *testing.T, h http.Handler, path string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// postJSON serves one API POST, as a script (no browser headers) sends it.
func postJSON(t *testing.T, h http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// state returns a job's state.
func state(t *testing.T, q *queue.Queue, id uint64) queue.JobState {
	t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j.State
}

// golden compares got with testdata/name.golden; -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got:\n%s--- want:\n%s", path, got, want)
	}
}

var _ = io.Discard

func httptestGet(h http.Handler, path string) *httptest.ResponseRecorder {
	return serve(h, httptest.NewRequest(http.MethodGet, path, nil))
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func jsonRequest(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func postText(h http.Handler, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "text/plain")
	return serve(h, r)
}
