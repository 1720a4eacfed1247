package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

func TestSmokeQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mc := clock.NewMock()
	mc.Set(time.Unix(1_700_000_000, 0))
	q, err := Open(dir, &Options{Clock: mc})
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Enqueue(ctx, NewJob{Payload: []byte("hello"), Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := q.Enqueue(ctx, NewJob{Payload: []byte("hello"), Key: "k1"})
	if r2.ID != r.ID || !r2.Duplicate {
		t.Fatal(r2)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		l, err := q.TryLease(ctx, "")
		if err != nil {
			t.Fatal(attempt, err)
		}
		if string(l.Job.Payload) != "hello" || l.Token.Attempt != attempt {
			t.Fatal(l.Job, l.Token)
		}
		if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
			t.Fatal(err)
		}
		if _, err := q.TryLease(ctx, ""); !errors.Is(err, ErrNoJob) {
			t.Fatal(err)
		}
		mc.Add(time.Second << (attempt - 1))
	}
	l, err := q.TryLease(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l.Token, []byte("done")); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l.Token, []byte("done")); !errors.Is(err, ErrLeaseLost) {
		t.Fatal(err)
	}
	res, err := q.Wait(ctx, r.ID)
	if err != nil || string(res) != "done" {
		t.Fatal(res, err)
	}
	before, _ := q.Jobs(ctx, JobFilter{})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(dir, &Options{Clock: mc})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := q.Jobs(ctx, JobFilter{})
	if len(before) != 1 || len(after) != 1 || after[0].State != StateCompleted || len(after[0].History) != 4 {
		t.Fatalf("%+v %+v", before[0], after[0])
	}
	q.Close()
}
