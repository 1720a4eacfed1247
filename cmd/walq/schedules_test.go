package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// scheduleFixture builds a closed queue directory with two periodic
// schedules, one of which has enqueued a job, and returns it with the
// clock the CLI should use (epoch+90s: the interval's next tick is in 30s).
func scheduleFixture(t testing.TB) (string, *clock.Mock) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	ctx := context.Background()
	for _, s := range []queue.Schedule{
		{Name: "nightly-report", Cron: "0 3 * * *", Job: queue.NewJob{Queue: "reports", Payload: []byte(`{"kind":"daily"}`)}},
		{Name: "heartbeat", Every: time.Minute, Job: queue.NewJob{Queue: "ops"}, Missed: queue.MissedSkip},
	} {
		if err := q.Schedule(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	mc.Add(time.Minute)
	if _, err := q.Schedules(ctx); err != nil { // enqueues the heartbeat's tick
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	mc.Add(30 * time.Second)
	return dir, mc
}

// TestSchedulesGolden checks walq schedules, the schedules section of walq
// stats and the schedule records in walq log.
func TestSchedulesGolden(t *testing.T) {
	t.Parallel()
	dir, mc := scheduleFixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"schedules", []string{"schedules", dir}},
		{"schedules.json", []string{"schedules", dir, "--json"}},
		{"stats_schedules", []string{"stats", dir}},
		{"stats_schedules.json", []string{"stats", dir, "--json"}},
		{"log_schedules", []string{"log", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hashDir(t, dir)
			r := walqAt(t, mc, tc.args...)
			wantCode(t, r, 0)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			if strings.Contains(tc.name, "json") {
				mustJSON(t, r.stdout)
			}
			golden(t, tc.name, dir, r.stdout)
			sameDir(t, before, hashDir(t, dir), tc.name)
		})
	}
	// The heartbeat's tick is due an hour later: the reader says so and
	// enqueues nothing.
	mc.Add(time.Hour)
	r := walqAt(t, mc, "schedules", dir)
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, " due ") {
		t.Errorf("an overdue tick is not shown as due:\n%s", r.stdout)
	}
}

func TestSchedulesNone(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "schedules", dir)
	wantCode(t, r, 0)
	if r.stdout != "no schedules\n" {
		t.Fatalf("schedules of a queue without any: %q", r.stdout)
	}
}
