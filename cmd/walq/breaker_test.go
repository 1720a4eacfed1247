package main

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestStatsBreaker checks that walq stats shows a writer's open circuit
// breaker, read from the directory while the writer runs.
func TestStatsBreaker(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, &queue.Options{Breakers: map[string]queue.Breaker{"api": {Failures: 2, Cooldown: time.Minute}}})
	ctx := context.Background()
	for range 3 {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		l, err := q.TryLease(ctx, "api")
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Fail(ctx, l.Token, errors.New("503")); err != nil {
			t.Fatal(err)
		}
	}
	mc.Add(10 * time.Second)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stats_breaker", []string{"stats", dir}},
		{"stats_breaker.json", []string{"stats", dir, "--json"}},
	} {
		r := walqAt(t, mc, tc.args...)
		wantCode(t, r, 0)
		golden(t, tc.name, dir, r.stdout)
	}
}
