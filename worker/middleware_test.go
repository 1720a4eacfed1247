package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/walq/walq/queue"
)

// TestMiddlewareOrder: global middleware wraps per-queue middleware wraps
// the handler, each list first outermost; middleware sees the job's
// attempt and metadata, and its changes to the outcome are what is
// recorded. A panic in a middleware fails the attempt like a handler's.
func TestMiddlewareOrder(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	var mu sync.Mutex
	var calls []string
	note := func(name string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, job *queue.Job) ([]byte, error) {
				mu.Lock()
				calls = append(calls, fmt.Sprintf("%s>%d:%s", name, job.Attempt, job.Meta["tenant"]))
				mu.Unlock()
				res, err := next(ctx, job)
				mu.Lock()
				calls = append(calls, "<"+name)
				mu.Unlock()
				return res, err
			}
		}
	}
	// A middleware that turns a handler's error into a permanent one.
	permanent := func(next Handler) Handler {
		return func(ctx context.Context, job *queue.Job) ([]byte, error) {
			res, err := next(ctx, job)
			if err != nil {
				err = queue.Permanent(err)
			}
			return res, err
		}
	}
	rt := newRuntime(t, q, &Options{Concurrency: 1, Middleware: []Middleware{note("g1"), note("g2")}})
	if err := rt.Handle("a", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		mu.Lock()
		calls = append(calls, "handler")
		mu.Unlock()
		return []byte("ok"), nil
	}, &HandlerOptions{Middleware: []Middleware{note("q1"), note("q2")}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Handle("b", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		return nil, errors.New("boom")
	}, &HandlerOptions{Middleware: []Middleware{permanent}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Handle("c", func(ctx context.Context, job *queue.Job) ([]byte, error) { return nil, nil },
		&HandlerOptions{Middleware: []Middleware{func(Handler) Handler {
			return func(context.Context, *queue.Job) ([]byte, error) { panic("in middleware") }
		}}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	a := enqueue(t, q, queue.NewJob{Queue: "a", Meta: map[string]string{"tenant": "acme"}})
	if res, err := waitResult(t, q, a); err != nil || string(res) != "ok" {
		t.Fatalf("job a: %q, %v", res, err)
	}
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	want := []string{"g1>1:acme", "g2>1:acme", "q1>1:acme", "q2>1:acme", "handler", "<q2", "<q1", "<g2", "<g1"}
	if !slices.Equal(got, want) {
		t.Errorf("calls %v\nwant  %v", got, want)
	}
	b := enqueue(t, q, queue.NewJob{Queue: "b"})
	var dead *queue.DeadError
	if _, err := waitResult(t, q, b); !errors.As(err, &dead) || dead.Attempts != 1 {
		t.Errorf("job b: %v, want dead after 1 attempt (the middleware made its error permanent)", err)
	}
	c := enqueue(t, q, queue.NewJob{Queue: "c", MaxAttempts: 1})
	if _, err := waitResult(t, q, c); !errors.As(err, &dead) || !strings.Contains(dead.Reason, "in middleware") {
		t.Errorf("job c: %v, want dead with the middleware's panic", err)
	}
}

func okHandler(context.Context, *queue.Job) ([]byte, error) { return nil, nil }

// TestMiddlewareNil: a nil middleware is refused by Handle, naming it.
func TestMiddlewareNil(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	rt := newRuntime(t, q, &Options{Middleware: []Middleware{nil}})
	if err := rt.Handle("a", okHandler, nil); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "Options.Middleware[0]") {
		t.Errorf("Handle: %v, want ErrInvalid naming Options.Middleware[0]", err)
	}
}

// TestFollowUpsInheritMeta: follow-up jobs made at completion (here
// Callback's) carry the completed job's metadata, with their own entries
// winning.
func TestFollowUpsInheritMeta(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	onComplete := func(j *queue.Job, res []byte) []queue.NewJob {
		return append(Callback("callbacks")(j, res), queue.NewJob{Queue: "audit", Meta: map[string]string{"tenant": "own"}})
	}
	startRuntime(t, q, &Options{OnComplete: onComplete}, map[string]Handler{"email": okHandler})
	meta := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme"}
	id := enqueue(t, q, queue.NewJob{Queue: "email", Meta: meta})
	if _, err := waitResult(t, q, id); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]map[string]string{
		"callbacks": meta,
		"audit":     {"traceparent": meta["traceparent"], "tenant": "own"},
	} {
		js, err := q.Jobs(t.Context(), queue.JobFilter{Queue: name})
		if err != nil || len(js) != 1 {
			t.Fatalf("%s: %d jobs, %v", name, len(js), err)
		}
		if got := getJob(t, q, js[0].ID).Meta; !maps.Equal(got, want) {
			t.Errorf("%s follow-up meta %v, want %v", name, got, want)
		}
	}
}
