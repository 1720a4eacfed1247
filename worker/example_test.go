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
	"strconv"
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

// The runtime in brief: a handler per named queue, Start, and a graceful
// Stop. The lines from worker.New to rt.Stop are README.md's Workers block.
func Example_runtime() {
	dir, err := os.MkdirTemp("", "walq-worker-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	send := func(ctx context.Context, payload []byte) error {
		fmt.Printf("sent %s\n", payload)
		return nil
	}

	rt, err := worker.New(q, &worker.Options{Concurrency: 8, Timeout: time.Minute})
	if err != nil {
		panic(err)
	}
	rt.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		return nil, send(ctx, job.Payload)
	}, nil)
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(shutdownCtx) // graceful: unfinished jobs go back, uncounted

	job, err := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte("welcome ada@example.com")})
	if err != nil {
		panic(err)
	}
	if _, err := q.Wait(ctx, job.ID); err != nil {
		panic(err)
	}
	// Output:
	// sent welcome ada@example.com
}

// Payment is the payload of a "payments" job.
type Payment struct {
	Card   string `json:"card"`
	Amount int64  `json:"amount"`
}

// paymentProvider is a fake payment provider's client that, like real
// ones, deduplicates charges on an idempotency key.
type paymentProvider struct {
	// ErrCardDeclined is its answer for a declined card.
	ErrCardDeclined error

	mu      sync.Mutex
	charges map[idempotencyKey]string
}

// idempotencyKey names one charge for the provider.
type idempotencyKey string

// IdempotencyKey makes the key option of a charge.
func (p *paymentProvider) IdempotencyKey(k string) idempotencyKey { return idempotencyKey(k) }

// charge is a charge made.
type charge struct{ ID string }

// Charge charges card, once per key: a second call with the same key
// returns the first charge.
func (p *paymentProvider) Charge(ctx context.Context, card string, amount int64, key idempotencyKey) (charge, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.HasPrefix(card, "4000") {
		return charge{}, p.ErrCardDeclined
	}
	if id, ok := p.charges[key]; ok {
		return charge{ID: id}, nil
	}
	id := fmt.Sprintf("ch_%d", len(p.charges)+1)
	p.charges[key] = id
	return charge{ID: id}, nil
}

var provider = &paymentProvider{ErrCardDeclined: errors.New("card declined"), charges: map[idempotencyKey]string{}}

// At-least-once execution made safe: the handler charges with an
// idempotency key derived from the job, so a second attempt after a crash
// cannot charge twice. The rt.Handle call is README.md's payment pattern.
func Example_payments() {
	dir, err := os.MkdirTemp("", "walq-worker-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()
	rt, err := worker.New(q, nil)
	if err != nil {
		panic(err)
	}

	rt.Handle("payments", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		var p Payment
		json.Unmarshal(job.Payload, &p)
		// The payment provider deduplicates on this key, so a second attempt
		// after a crash returns the first charge instead of charging twice.
		charge, err := provider.Charge(ctx, p.Card, p.Amount,
			provider.IdempotencyKey("walq-"+strconv.FormatUint(job.ID, 10)))
		if errors.Is(err, provider.ErrCardDeclined) {
			return nil, queue.Permanent(err) // retrying will not help
		}
		if err != nil {
			return nil, err // retried with backoff
		}
		return []byte(charge.ID), nil
	}, nil)

	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)
	for _, p := range []Payment{{Card: "4242 4242", Amount: 4200}, {Card: "4000 0002", Amount: 990}} {
		payload, _ := json.Marshal(p)
		job, err := q.Enqueue(ctx, queue.NewJob{Queue: "payments", Payload: payload, Key: "order-" + p.Card + "/charge"})
		if err != nil {
			panic(err)
		}
		result, err := q.Wait(ctx, job.ID)
		if err != nil {
			fmt.Printf("job %d: %v\n", job.ID, err)
			continue
		}
		fmt.Printf("job %d: charged, %s\n", job.ID, result)
	}
	// Output:
	// job 1: charged, ch_1
	// job 2: walq: job 2 is dead after 1 attempt(s): card declined
}
