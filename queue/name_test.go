package queue

import (
	"errors"
	"strings"
	"testing"
)

// TestQueueNames checks that every call through which a queue name enters
// accepts the documented names and rejects the rest with ErrInvalid,
// naming the field, and that a rejected call writes nothing.
func TestQueueNames(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	// A dead job for the requeue cases.
	dead := enqueueT(t, q, NewJob{MaxAttempts: 1})
	l := leaseT(t, q, "")
	if err := q.Fail(ctx, l.Token, Permanent(errors.New("boom"))); err != nil {
		t.Fatal(err)
	}

	calls := []struct {
		name  string
		field string
		call  func(name string) error
	}{
		{"Enqueue", "NewJob.Queue", func(n string) error {
			_, err := q.Enqueue(ctx, NewJob{Queue: n})
			return err
		}},
		{"EnqueueBatch", "NewJob.Queue", func(n string) error {
			_, err := q.EnqueueBatch(ctx, []NewJob{{}, {Queue: n}})
			return err
		}},
		{"TryLease", "queue", func(n string) error {
			_, err := q.TryLease(ctx, n)
			if errors.Is(err, ErrNoJob) {
				return nil
			}
			return err
		}},
		{"TryLeaseN", "queue", func(n string) error { _, err := q.TryLeaseN(ctx, n, 2); return err }},
		{"Pause", "queue", func(n string) error { return q.Pause(ctx, n) }},
		{"Resume", "queue", func(n string) error { return q.Resume(ctx, n) }},
		{"Requeue", "RequeueOptions.Queue", func(n string) error {
			err := q.Requeue(ctx, []uint64{dead}, RequeueOptions{Queue: n})
			if errors.Is(err, ErrState) {
				return nil // requeued by an earlier valid case
			}
			return err
		}},
		{"RequeueDead", "RequeueOptions.Queue", func(n string) error {
			_, err := q.RequeueDead(ctx, DeadFilter{}, RequeueOptions{Queue: n})
			return err
		}},
	}
	bad := []string{" ", "a\tb", "a b", "émails", "new\nline", "semi;colon", "nul\x00", strings.Repeat("x", 256)}
	good := []string{"", "default", "a", "emails-2", "billing/invoices", "v2:resize", "A.B_c", strings.Repeat("x", 255)}
	for _, c := range calls {
		for _, n := range bad {
			before := lastIndexT(t, q)
			err := c.call(n)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s(%q) = %v, want ErrInvalid naming %s", c.name, n, err, c.field)
			}
			if after := lastIndexT(t, q); after != before {
				t.Errorf("%s(%q) was refused but wrote entries %d..%d", c.name, n, before+1, after)
			}
		}
		for _, n := range good {
			if err := c.call(n); err != nil {
				t.Errorf("%s(%q) = %v, want it accepted", c.name, n, err)
			}
		}
	}
	// Filters take any string: they select, they name no queue.
	if _, err := q.Jobs(ctx, JobFilter{Queue: "a b"}); err != nil {
		t.Errorf("Jobs(Queue %q) = %v, want no error", "a b", err)
	}
	if _, err := q.Dead(ctx, DeadFilter{Queue: "a\tb"}); err != nil {
		t.Errorf("Dead(Queue %q) = %v, want no error", "a\tb", err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range st.Queues {
		if checkQueueName("stats", name) != nil {
			t.Errorf("Stats lists queue %q, which is not a valid name", name)
		}
	}
}

// lastIndexT returns the log's last index.
func lastIndexT(t *testing.T, q *Queue) uint64 {
	t.Helper()
	st, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st.Log.LastIndex
}
