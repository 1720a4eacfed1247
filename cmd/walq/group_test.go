package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/walq/walq/queue"
)

// TestShowGroup checks that walq show and walq jobs --json name a job's
// ordered group.
func TestShowGroup(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	ctx := context.Background()
	for range 2 {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "orders", Group: "customer-42", Payload: []byte("ship")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.TryLease(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"show_group", []string{"show", dir, "2"}},
		{"show_group.json", []string{"show", dir, "2", "--json"}},
	} {
		r := walqAt(t, mc, tc.args...)
		wantCode(t, r, 0)
		golden(t, tc.name, dir, r.stdout)
	}
}

// TestShowBatch checks that walq show gives a batch member's progress.
func TestShowBatch(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	ctx := context.Background()
	b, err := q.EnqueueBatchThen(ctx, []queue.NewJob{{Queue: "resize"}, {Queue: "resize"}}, queue.NewJob{Queue: "notify"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := q.TryLease(ctx, "resize")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	r := walqAt(t, mc, "show", dir, fmt.Sprint(b.Jobs[1]))
	wantCode(t, r, 0)
	golden(t, "show_batch", dir, r.stdout)
}

// TestShowProgress checks that walq show gives a job's latest progress.
func TestShowProgress(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "import"}); err != nil {
		t.Fatal(err)
	}
	l, err := q.TryLease(ctx, "import")
	if err != nil {
		t.Fatal(err)
	}
	for i, note := range []string{"reading", "imported 400 of 1000 rows"} {
		if err := q.Progress(ctx, l.Token, int64(40*i), note); err != nil {
			t.Fatal(err)
		}
	}
	r := walqAt(t, mc, "show", dir, "1")
	wantCode(t, r, 0)
	golden(t, "show_progress", dir, r.stdout)
}
