package queue

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
)

// TestEnqueueMiddleware: middleware runs first-outermost around Enqueue
// and EnqueueBatch, sees the results, adds metadata that the job keeps
// without changing the caller's jobs, and can refuse a call.
func TestEnqueueMiddleware(t *testing.T) {
	ctx := context.Background()
	var order []string
	trace := func(name string) EnqueueMiddleware {
		return func(next EnqueueFunc) EnqueueFunc {
			return func(ctx context.Context, jobs []NewJob) ([]Enqueued, error) {
				order = append(order, name+">")
				for i := range jobs {
					m := maps.Clone(jobs[i].Meta)
					if m == nil {
						m = map[string]string{}
					}
					m[name] = "seen"
					jobs[i].Meta = m
				}
				res, err := next(ctx, jobs)
				order = append(order, "<"+name)
				return res, err
			}
		}
	}
	refuse := errors.New("refused by middleware")
	gate := func(next EnqueueFunc) EnqueueFunc {
		return func(ctx context.Context, jobs []NewJob) ([]Enqueued, error) {
			if jobs[0].Queue == "forbidden" {
				return nil, refuse
			}
			return next(ctx, jobs)
		}
	}
	q := openTest(t, t.TempDir(), &Options{EnqueueMiddleware: []EnqueueMiddleware{trace("outer"), trace("inner"), gate}})
	callers := map[string]string{"tenant": "acme"}
	batch := []NewJob{{Queue: "a", Meta: callers}, {Queue: "a"}}
	res, err := q.EnqueueBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"outer>", "inner>", "<inner", "<outer"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if len(callers) != 1 || batch[0].Meta["outer"] != "" || batch[1].Meta != nil {
		t.Errorf("middleware changed the caller's jobs: %v, %v", batch[0].Meta, batch[1].Meta)
	}
	want := map[string]string{"tenant": "acme", "outer": "seen", "inner": "seen"}
	if got := getT(t, q, res[0].ID).Meta; !maps.Equal(got, want) {
		t.Errorf("job meta %v, want %v", got, want)
	}
	if _, err := q.Enqueue(ctx, NewJob{Queue: "forbidden"}); !errors.Is(err, refuse) {
		t.Fatalf("Enqueue through a refusing middleware: %v", err)
	}
	if st, _ := q.Stats(ctx); st.Queues["forbidden"].Ready != 0 {
		t.Fatal("a refused enqueue enqueued")
	}
	if _, err := Open(t.TempDir(), &Options{EnqueueMiddleware: []EnqueueMiddleware{nil}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a nil middleware: %v, want ErrInvalid", err)
	}
}
