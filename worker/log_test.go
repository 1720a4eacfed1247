package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// find returns the records at level whose message contains msg, each as
// its attributes by key.
func (r *recorder) find(level slog.Level, msg string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, rec := range r.recs {
		if rec.Level != level || !strings.Contains(rec.Message, msg) {
			continue
		}
		m := map[string]string{}
		rec.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

// TestHandlerFailuresAreLogged checks that the Logger hears of every failed
// attempt, at a level that tells a failure from a panic from a snooze, with
// the job's id, queue and attempt.
func TestHandlerFailuresAreLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		handler Handler
		level   slog.Level
		msg     string
		want    map[string]string // attributes expected besides job, queue, attempt
	}{
		{"error", func(context.Context, *queue.Job) ([]byte, error) { return nil, errors.New("smtp 451") },
			slog.LevelWarn, "handler failed", map[string]string{"err": "smtp 451", "permanent": "false"}},
		{"permanent", func(context.Context, *queue.Job) ([]byte, error) { return nil, queue.Permanent(errors.New("smtp 550")) },
			slog.LevelWarn, "handler failed", map[string]string{"err": "smtp 550", "permanent": "true"}},
		{"panic", func(context.Context, *queue.Job) ([]byte, error) { panic("nil map") },
			slog.LevelError, "handler panicked", map[string]string{"panic": "nil map", "stack": "log_test.go"}},
		{"snooze", func(context.Context, *queue.Job) ([]byte, error) { return nil, queue.Snooze(time.Minute) },
			slog.LevelDebug, "snoozed", map[string]string{"err": "snoozed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, nil)
			rec := &recorder{}
			durable := make(chan error, 1)
			startRuntime(t, q, &Options{Logger: slog.New(rec), OnDurable: func(_ *queue.Job, _ []byte, err error) { durable <- err }},
				map[string]Handler{"mail": tc.handler})
			id := enqueue(t, q, queue.NewJob{Queue: "mail"})
			// The runtime logs before it records the failure, and
			// OnDurable follows the record.
			receive(t, durable, "the failed attempt's OnDurable")

			got := rec.find(tc.level, tc.msg)
			if len(got) != 1 {
				t.Fatalf("%d %v records saying %q, want 1; all: %v", len(got), tc.level, tc.msg, rec.recs)
			}
			attrs := got[0]
			for k, v := range map[string]string{"job": "1", "queue": "mail", "attempt": "1"} {
				if attrs[k] != v {
					t.Errorf("attribute %s = %q, want %q (job %d)", k, attrs[k], v, id)
				}
			}
			for k, v := range tc.want {
				if !strings.Contains(attrs[k], v) {
					t.Errorf("attribute %s = %q, want it to contain %q", k, attrs[k], v)
				}
			}
			if tc.level == slog.LevelDebug {
				if n := len(rec.find(slog.LevelWarn, "")) + len(rec.find(slog.LevelError, "")); n != 0 {
					t.Errorf("a snooze logged %d warnings or errors", n)
				}
			}
		})
	}
}
