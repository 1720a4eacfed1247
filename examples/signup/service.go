package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
	"go.opentelemetry.io/otel/trace"
)

// Welcome is the arguments of a welcome job; Sent is its result. They are
// plain structs: the Kind encodes them (as JSON) into the job's payload
// and result.
type Welcome struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Sent is what sending a welcome email returns.
type Sent struct {
	MessageID string `json:"message_id"`
}

// welcomeJobs is the typed job: queue "welcome", arguments Welcome,
// result Sent.
var welcomeJobs = worker.NewKind[Welcome, Sent]("welcome")

// Mailer sends email. The service's job calls it; tests fake it.
type Mailer interface {
	Send(ctx context.Context, to, subject string) (messageID string, err error)
}

// Service is the sample app: POST /signup enqueues a welcome email,
// GET /jobs/{id} reports how it went, and SendWelcome is the job's
// handler.
type Service struct {
	// Queue holds the jobs; Mailer sends the emails; Tracer makes the
	// request spans.
	Queue  *queue.Queue
	Mailer Mailer
	Tracer trace.Tracer
}

// Routes returns the HTTP API.
func (s *Service) Routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signup", s.signup)
	mux.HandleFunc("GET /jobs/{id}", s.job)
	return mux
}

// signup takes {"email": ..., "name": ...} and answers 202 Accepted with
// the welcome job's ID. A retried request (same email) gets the same job:
// the idempotency key makes enqueueing it twice harmless.
func (s *Service) signup(w http.ResponseWriter, r *http.Request) {
	// A real service gets this span from otelhttp.NewHandler.
	ctx, span := s.Tracer.Start(r.Context(), "POST /signup", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()

	var args Welcome
	if err := json.NewDecoder(r.Body).Decode(&args); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := mail.ParseAddress(args.Email); err != nil {
		http.Error(w, "email: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The producer span starts here (queue.Options.EnqueueMiddleware) and
	// travels to the worker in the job's metadata.
	job, err := welcomeJobs.Enqueue(ctx, s.Queue, args, &queue.NewJob{Key: "welcome/" + args.Email})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/jobs/%d", job.ID))
	writeJSON(w, http.StatusAccepted, map[string]uint64{"id": job.ID})
}

// JobStatus is what GET /jobs/{id} returns.
type JobStatus struct {
	// Result is a completed job's; Error is the last failure's text.
	ID       uint64         `json:"id"`
	State    queue.JobState `json:"state"`
	Attempts int            `json:"attempts"`
	Result   *Sent          `json:"result,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// job reports a welcome job's state; with ?wait=5s it first waits up to
// that long for the job to finish.
func (s *Service) job(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "id: "+err.Error(), http.StatusBadRequest)
		return
	}
	if wait := r.URL.Query().Get("wait"); wait != "" {
		d, err := time.ParseDuration(wait)
		if err != nil {
			http.Error(w, "wait: "+err.Error(), http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		// Wait's error says how the job ended (a dead job's is a
		// *queue.DeadError); Get below reports it either way.
		_, err = s.Queue.Wait(ctx, id)
		if errors.Is(err, queue.ErrClosed) {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	job, err := s.Queue.Get(r.Context(), id)
	if errors.Is(err, queue.ErrNotFound) || (err == nil && job.Queue != welcomeJobs.Queue) {
		http.Error(w, "no such job", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	st := JobStatus{ID: job.ID, State: job.State, Attempts: job.Attempt, Error: job.LastError}
	if job.State == queue.StateCompleted {
		sent, err := welcomeJobs.Decode(job.Result)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		st.Result = &sent
	}
	writeJSON(w, http.StatusOK, st)
}

// SendWelcome is the welcome job's handler. An error retries the job with
// backoff; queue.Permanent(err) would dead-letter it at once. A payload
// that is not a Welcome never gets here: the Kind dead-letters it with a
// *worker.DecodeError.
func (s *Service) SendWelcome(ctx context.Context, job *queue.Job, args Welcome) (Sent, error) {
	id, err := s.Mailer.Send(ctx, args.Email, "Welcome, "+args.Name)
	if err != nil {
		return Sent{}, fmt.Errorf("sending the welcome email: %w", err)
	}
	return Sent{MessageID: id}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
