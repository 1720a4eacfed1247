package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqotel"
	"github.com/walq/walq/walqtest"
	"github.com/walq/walq/worker"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// app is the service under test: its queue on a mock clock (walqtest), its
// HTTP API (httptest) and the spans it recorded (tracetest).
type app struct {
	q     *walqtest.Queue
	api   *httptest.Server
	spans *tracetest.InMemoryExporter
}

// newApp wires the service as main does, with the test kit's queue in
// place of queue.Open and q.Run in place of the worker runtime.
func newApp(t *testing.T, m Mailer) *app {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	otw, err := walqotel.New(&walqotel.Options{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	q := walqtest.Open(t, &queue.Options{
		EnqueueMiddleware: []queue.EnqueueMiddleware{otw.EnqueueMiddleware()},
	})
	svc := &Service{Queue: q.Queue, Mailer: m, Tracer: tp.Tracer("signup")}
	q.Use(otw.Middleware())
	q.Handle(welcomeJobs.Queue, welcomeJobs.Handler(svc.SendWelcome))
	api := httptest.NewServer(svc.Routes())
	t.Cleanup(api.Close)
	return &app{q: q, api: api, spans: spans}
}

// fakeMailer fails its first failures calls, then sends.
type fakeMailer struct {
	failures int
	sent     []string
}

func (m *fakeMailer) Send(ctx context.Context, to, subject string) (string, error) {
	if m.failures > 0 {
		m.failures--
		return "", errors.New("421 try again later")
	}
	m.sent = append(m.sent, to)
	return fmt.Sprintf("msg-%d", len(m.sent)), nil
}

// TestSignupSendsWelcome: POST /signup enqueues a typed job, running it
// sends the email, GET /jobs/{id} reports the result, and the request, the
// enqueue and the attempt are spans of one trace: the consumer span is a
// child of the producer span.
func TestSignupSendsWelcome(t *testing.T) {
	ctx := context.Background()
	m := &fakeMailer{}
	a := newApp(t, m)

	id := a.signup(t, `{"email": "ada@example.com", "name": "Ada"}`)
	a.q.AssertEnqueued("welcome", Welcome{Email: "ada@example.com", Name: "Ada"})
	if st := a.job(t, id, ""); st.State != queue.StateReady {
		t.Errorf("before Run: %+v, want ready", st)
	}

	if rep := a.q.Run(ctx, nil); rep.Completed != 1 || rep.Attempts != 1 {
		t.Errorf("Run: %+v, want 1 attempt, completed", rep)
	}
	st := a.job(t, id, "1s")
	want := JobStatus{ID: id, State: queue.StateCompleted, Attempts: 1, Result: &Sent{MessageID: "msg-1"}}
	if st.State != want.State || st.Attempts != want.Attempts || st.Result == nil || *st.Result != *want.Result {
		t.Errorf("GET /jobs/%d: %+v, want %+v", id, st, want)
	}
	a.q.AssertCompleted(id, Sent{MessageID: "msg-1"})

	server := a.only(t, "POST /signup")
	producer := a.only(t, "send welcome")
	consumer := a.only(t, "process welcome")
	checkParent(t, producer, server)
	checkParent(t, consumer, producer)
	if producer.SpanKind != trace.SpanKindProducer || consumer.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kinds: %v, %v; want producer, consumer", producer.SpanKind, consumer.SpanKind)
	}
	for _, s := range []tracetest.SpanStub{producer, consumer} {
		if got := attr(s, semconv.MessagingMessageIDKey); got != strconv.FormatUint(id, 10) {
			t.Errorf("%s: messaging.message.id = %q, want %d", s.Name, got, id)
		}
	}
	if got := attr(consumer, walqotel.OutcomeKey); got != "completed" {
		t.Errorf("consumer span outcome %q, want completed", got)
	}
}

// TestWelcomeRetried: a mail service that fails once makes the first
// attempt fail; Run with Advance moves the mock clock through the 1s
// backoff and the retry completes. Each attempt is a consumer span, a
// child of the same producer span.
func TestWelcomeRetried(t *testing.T) {
	ctx := context.Background()
	a := newApp(t, &fakeMailer{failures: 1})
	id := a.signup(t, `{"email": "grace@example.com", "name": "Grace"}`)

	a.q.Run(ctx, nil) // the first attempt fails; the retry is not due yet
	if st := a.job(t, id, ""); st.State != queue.StateScheduled || !strings.Contains(st.Error, "421") {
		t.Errorf("after the failed attempt: %+v, want scheduled with the mailer's error", st)
	}
	rep := a.q.Run(ctx, &walqtest.RunOptions{Advance: true})
	if rep.Completed != 1 || rep.Advanced != time.Second {
		t.Errorf("Run with Advance: %+v, want the retry completed after 1s", rep)
	}
	if st := a.job(t, id, "1s"); st.State != queue.StateCompleted || st.Attempts != 2 {
		t.Errorf("GET /jobs/%d: %+v, want completed after 2 attempts", id, st)
	}
	a.q.AssertNoneDead()

	producer := a.only(t, "send welcome")
	var outcomes []string
	for _, s := range a.spans.GetSpans() {
		if s.Name == "process welcome" {
			checkParent(t, s, producer)
			outcomes = append(outcomes, attr(s, walqotel.OutcomeKey))
		}
	}
	if strings.Join(outcomes, ",") != "retry,completed" {
		t.Errorf("consumer span outcomes %q, want retry then completed", outcomes)
	}
}

// TestBadPayloadDead: a job whose payload is not a Welcome (from a
// producer with another schema, say) is dead after one attempt with a
// *worker.DecodeError; the mailer is never called.
func TestBadPayloadDead(t *testing.T) {
	ctx := context.Background()
	m := &fakeMailer{}
	a := newApp(t, m)
	var handlerErr error
	a.q.Use(func(next worker.Handler) worker.Handler {
		return func(ctx context.Context, job *queue.Job) ([]byte, error) {
			res, err := next(ctx, job)
			handlerErr = err
			return res, err
		}
	})
	e, err := a.q.Enqueue(ctx, queue.NewJob{Queue: "welcome", Payload: []byte(`{"email": 42}`)})
	if err != nil {
		t.Fatal(err)
	}

	if rep := a.q.Run(ctx, &walqtest.RunOptions{Advance: true}); rep.Dead != 1 || rep.Attempts != 1 {
		t.Errorf("Run: %+v, want 1 attempt, dead", rep)
	}
	var de *worker.DecodeError
	if !errors.As(handlerErr, &de) || de.Job != e.ID {
		t.Errorf("handler error %v, want a *worker.DecodeError for job %d", handlerErr, e.ID)
	}
	if st := a.job(t, e.ID, "1s"); st.State != queue.StateDead || !strings.Contains(st.Error, "does not decode") {
		t.Errorf("GET /jobs/%d: %+v, want dead with the decode error", e.ID, st)
	}
	if len(m.sent) != 0 {
		t.Errorf("mailer sent %v, want nothing", m.sent)
	}
	if got := attr(a.only(t, "process welcome"), walqotel.OutcomeKey); got != "dead" {
		t.Errorf("consumer span outcome %q, want dead", got)
	}
}

// TestAPIErrors: bad requests are refused before anything is enqueued; a
// repeated signup gets the same job.
func TestAPIErrors(t *testing.T) {
	a := newApp(t, &fakeMailer{})
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
	}{
		{"not JSON", "POST", "/signup", `email=ada`, http.StatusBadRequest},
		{"bad email", "POST", "/signup", `{"email": "ada"}`, http.StatusBadRequest},
		{"unknown job", "GET", "/jobs/99", ``, http.StatusNotFound},
		{"bad id", "GET", "/jobs/x", ``, http.StatusBadRequest},
		{"bad wait", "GET", "/jobs/1?wait=soon", ``, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := a.do(t, tc.method, tc.path, tc.body); code != tc.code {
				t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			}
		})
	}
	if js, _ := a.q.Jobs(context.Background(), queue.JobFilter{}); len(js) != 0 {
		t.Errorf("bad requests enqueued %d jobs", len(js))
	}
	first := a.signup(t, `{"email": "ada@example.com"}`)
	if again := a.signup(t, `{"email": "ada@example.com"}`); again != first {
		t.Errorf("a repeated signup made job %d, want the first one, %d", again, first)
	}
}

// signup posts body to /signup and returns the job ID of its 202.
func (a *app) signup(t *testing.T, body string) uint64 {
	t.Helper()
	code, b := a.do(t, "POST", "/signup", body)
	var resp struct{ ID uint64 }
	if code != http.StatusAccepted || json.Unmarshal(b, &resp) != nil {
		t.Fatalf("POST /signup: %d %s, want 202 with the job's ID", code, b)
	}
	return resp.ID
}

// job gets /jobs/{id}, waiting up to wait ("" for not at all).
func (a *app) job(t *testing.T, id uint64, wait string) JobStatus {
	t.Helper()
	path := fmt.Sprintf("/jobs/%d", id)
	if wait != "" {
		path += "?wait=" + wait
	}
	code, b := a.do(t, "GET", path, "")
	var st JobStatus
	if code != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	return st
}

func (a *app) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.api.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// only returns the one recorded span named name.
func (a *app) only(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range a.spans.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(found), name, a.spanNames())
	}
	return found[0]
}

func (a *app) spanNames() []string {
	var names []string
	for _, s := range a.spans.GetSpans() {
		names = append(names, s.Name)
	}
	return names
}

// checkParent checks that child is a child of parent, in its trace.
func checkParent(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %q is in trace %s, span %q in %s; want one trace", child.Name, child.SpanContext.TraceID(), parent.Name, parent.SpanContext.TraceID())
	}
	if child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("span %q has parent %s, want %q (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
	}
}

// attr returns the value of a span's attribute key, "" if it has none.
func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}
