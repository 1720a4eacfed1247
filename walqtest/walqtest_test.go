package walqtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// fakeTB records what the kit reports; the directory and cleanups are the
// real test's.
type fakeTB struct {
	*testing.T
	errors []string
	fatal  bool
}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = true
	f.Errorf(format, args...)
}

type order struct {
	ID    int    `json:"id"`
	Email string `json:"email"`
}

// TestRunRetriesThroughBackoff: Run with Advance moves the mock clock
// through a failed attempt's backoff and reports what happened; without it
// the retry waits.
func TestRunRetriesThroughBackoff(t *testing.T) {
	ctx := context.Background()
	q := Open(t, nil)
	tries := 0
	q.Handle("charge", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		tries++
		if tries < 3 {
			return nil, errors.New("503")
		}
		return []byte("charged"), nil
	})
	e, err := q.Enqueue(ctx, queue.NewJob{Queue: "charge"})
	if err != nil {
		t.Fatal(err)
	}
	if rep := q.Run(ctx, nil); rep != (Report{Attempts: 1, Failed: 1}) {
		t.Errorf("Run without Advance: %+v", rep)
	}
	rep := q.Run(ctx, &RunOptions{Advance: true})
	if rep.Attempts != 2 || rep.Completed != 1 || rep.Failed != 1 || rep.Advanced < 3*time.Second {
		t.Errorf("Run with Advance: %+v, want 2 attempts (1 failed, 1 completed) over the 1s and 2s backoffs", rep)
	}
	q.AssertCompleted(e.ID, "charged")
	q.AssertNoneDead()
}

// TestAssertionMessages: each assertion passes on what is there and fails
// with a message saying what it found instead.
func TestAssertionMessages(t *testing.T) {
	ctx := context.Background()
	f := &fakeTB{T: t}
	q := Open(f, nil)
	q.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		if strings.Contains(string(job.Payload), "nobody") {
			return nil, queue.Permanent(errors.New("550 mailbox unavailable"))
		}
		return []byte(`{"ok":true}`), nil
	})
	ok, _ := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte(`{"id":1,"email":"ada@example.com"}`)})
	bad, _ := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte(`{"id":2,"email":"nobody@example.com"}`)})
	late, _ := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte("later"), Delay: time.Hour})
	q.Run(ctx, nil)

	// Passing assertions report nothing.
	if j := q.AssertEnqueued("email", order{ID: 1, Email: "ada@example.com"}); j == nil || j.ID != ok.ID {
		t.Errorf("AssertEnqueued by struct found %v", j)
	}
	q.AssertEnqueued("email", "later")
	q.AssertCompleted(ok.ID, map[string]bool{"ok": true})
	if len(f.errors) != 0 {
		t.Fatalf("passing assertions reported: %q", f.errors)
	}
	for _, tc := range []struct {
		name   string
		assert func()
		want   []string
	}{
		{"enqueued", func() { q.AssertEnqueued("email", order{ID: 3}) },
			[]string{`no job on queue "email" has payload {ID:3 Email:}; its 3 jobs:`, `job 1 (completed): "{\"id\":1,\"email\":\"ada@example.com\"}"`, `job 3 (scheduled): "later"`}},
		{"empty-queue", func() { q.AssertEnqueued("sms", "x") }, []string{`no job on queue "sms" has payload "x"; the queue has no jobs`}},
		{"not-completed", func() { q.AssertCompleted(bad.ID, nil) },
			[]string{`job 2 (queue "email") is dead after 1 attempts, not completed; last error: 550 mailbox unavailable`}},
		{"scheduled", func() { q.AssertCompleted(late.ID, nil) }, []string{`job 3 (queue "email") is scheduled after 0 attempts`}},
		{"wrong-result", func() { q.AssertCompleted(ok.ID, "nope") }, []string{`job 1 (queue "email") completed with result "{\"ok\":true}", want "nope"`}},
		{"unknown", func() { q.AssertCompleted(99, nil) }, []string{"job 99: walq: job not found"}},
		{"dead", func() { q.AssertNoneDead() }, []string{`1 dead jobs, want none:`, `job 2 (queue "email") after 1 attempts: 550 mailbox unavailable`}},
	} {
		f.errors = nil
		tc.assert()
		if len(f.errors) != 1 {
			t.Errorf("%s: %d failures reported, want 1: %q", tc.name, len(f.errors), f.errors)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(f.errors[0], w) {
				t.Errorf("%s: message %q lacks %q", tc.name, f.errors[0], w)
			}
		}
	}
	if f.fatal {
		t.Error("an assertion stopped the test")
	}
}

// TestRunMaxAdvance: a job due beyond MaxAdvance is reported, not run.
func TestRunMaxAdvance(t *testing.T) {
	f := &fakeTB{T: t}
	q := Open(f, nil)
	q.Handle("", func(context.Context, *queue.Job) ([]byte, error) { return nil, nil })
	if _, err := q.Enqueue(t.Context(), queue.NewJob{Delay: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	rep := q.Run(t.Context(), &RunOptions{Advance: true})
	if rep.Attempts != 0 || len(f.errors) != 1 || !strings.Contains(f.errors[0], "beyond MaxAdvance (24h0m0s)") {
		t.Errorf("Run: %+v, reported %q", rep, f.errors)
	}
}
