package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// welcomeEmail is the payload of an "email" job.
type welcomeEmail struct {
	To string `json:"to"`
}

// errNoMailbox is the mail service's answer for an address that does not
// exist: retrying cannot help.
var errNoMailbox = errors.New("550 mailbox unavailable")

// flakyMail is a fake email service. Its first attempt to bob fails with a
// transient error; nobody@ does not exist; everything else is delivered.
type flakyMail struct {
	mu    sync.Mutex
	tries map[string]int
}

func (m *flakyMail) Send(ctx context.Context, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tries[to]++
	switch {
	case strings.HasPrefix(to, "nobody@"):
		return errNoMailbox
	case to == "bob@example.com" && m.tries[to] == 1:
		return errors.New("421 service not available, try again later")
	}
	return nil
}

// A whole app: an HTTP handler enqueues welcome emails, workers send them
// through a flaky mail service, a transient failure is retried after a
// backoff, and a permanent one lands in the dead-letter queue.
func Example() {
	dir, err := os.MkdirTemp("", "walq-worker-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// A mock clock makes the backoff instant and the output deterministic;
	// an app passes no clock at all. The backoff is short next to the
	// lease (30s), so that jumping the clock to a retry cannot expire the
	// leases of jobs still running.
	clk := clock.NewMock()
	q, err := queue.Open(dir, &queue.Options{Clock: clk, Backoff: queue.Backoff{Base: 5 * time.Second}})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	// The web side: POST /signup enqueues a welcome email. The client's
	// Idempotency-Key header becomes the job's key, so a request the client
	// retries does not send a second email.
	signup := func(w http.ResponseWriter, r *http.Request) {
		payload, _ := json.Marshal(welcomeEmail{To: r.FormValue("email")})
		job, err := q.Enqueue(r.Context(), queue.NewJob{
			Queue:   "email",
			Payload: payload,
			Key:     r.Header.Get("Idempotency-Key"),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if job.Duplicate {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusAccepted)
		}
		fmt.Fprintf(w, "job %d", job.ID)
	}

	// The worker side: one handler for the "email" queue.
	mail := &flakyMail{tries: map[string]int{}}
	rt, err := worker.New(q, &worker.Options{Concurrency: 4})
	if err != nil {
		panic(err)
	}
	err = rt.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		var e welcomeEmail
		if err := json.Unmarshal(job.Payload, &e); err != nil {
			return nil, queue.Permanent(err) // a bad payload stays bad
		}
		err := mail.Send(ctx, e.To)
		if errors.Is(err, errNoMailbox) {
			return nil, queue.Permanent(err) // dead-letter at once
		}
		if err != nil {
			return nil, err // retried after the backoff
		}
		return []byte("delivered to " + e.To), nil
	}, nil)
	if err != nil {
		panic(err)
	}

	// Time passes only when the example says so: whenever an attempt
	// fails and is scheduled again, move the clock to its retry time.
	events := q.Subscribe(64)
	go func() {
		for ev := range events.C {
			if ev.Kind == queue.EventRetrying && ev.NextRunAt.After(clk.Now()) {
				clk.Set(ev.NextRunAt)
			}
		}
	}()

	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx) // graceful: waits for running handlers

	post := func(email, key string) {
		req := httptest.NewRequest(http.MethodPost, "/signup", strings.NewReader(url.Values{"email": {email}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Idempotency-Key", key)
		rec := httptest.NewRecorder()
		signup(rec, req)
		fmt.Printf("POST /signup %s: %d %s\n", email, rec.Code, rec.Body)
	}
	post("ada@example.com", "signup-ada")
	post("bob@example.com", "signup-bob")
	post("nobody@example.com", "signup-nobody")
	post("ada@example.com", "signup-ada") // the client retried: same job

	for id := uint64(1); id <= 3; id++ {
		result, err := q.Wait(ctx, id)
		job, _ := q.Get(ctx, id)
		var e welcomeEmail
		json.Unmarshal(job.Payload, &e)
		fmt.Printf("job %d (%s): %s after %d attempt(s)", id, e.To, job.State, job.Attempt)
		if err != nil {
			fmt.Printf(": %s\n", job.LastError)
		} else {
			fmt.Printf(": %s\n", result)
		}
	}
	dead, _ := q.Dead(ctx, queue.DeadFilter{Queue: "email"})
	fmt.Printf("dead-letter queue: %d job(s)\n", len(dead))

	// Output:
	// POST /signup ada@example.com: 202 job 1
	// POST /signup bob@example.com: 202 job 2
	// POST /signup nobody@example.com: 202 job 3
	// POST /signup ada@example.com: 200 job 1
	// job 1 (ada@example.com): completed after 1 attempt(s): delivered to ada@example.com
	// job 2 (bob@example.com): completed after 2 attempt(s): delivered to bob@example.com
	// job 3 (nobody@example.com): dead after 1 attempt(s): 550 mailbox unavailable
	// dead-letter queue: 1 job(s)
}
