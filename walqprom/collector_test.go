package walqprom_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqprom"
)

// workload opens a queue on a mock clock and leaves it, 10s in, with:
// queue email: one job completed (waited 2s, ran 3s), one dead (waited 5s,
// ran 0s), one ready since the start; queue sms: one job ready since the
// start.
func workload(t *testing.T) *queue.Queue {
	t.Helper()
	clk := clock.NewMock()
	clk.Set(time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC))
	q, err := queue.Open(t.TempDir(), &queue.Options{Clock: clk, CompactRatio: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = q.EnqueueBatch(ctx, []queue.NewJob{{Queue: "email"}, {Queue: "email"}, {Queue: "email"}, {Queue: "sms"}})
	must(err)
	clk.Add(2 * time.Second)
	l, err := q.TryLease(ctx, "email")
	must(err)
	clk.Add(3 * time.Second)
	must(q.Complete(ctx, l.Token, []byte("250 OK")))
	l, err = q.TryLease(ctx, "email")
	must(err)
	must(q.Fail(ctx, l.Token, queue.Permanent(errors.New("550 no such user"))))
	clk.Add(5 * time.Second)
	return q
}

func TestCollectorExposition(t *testing.T) {
	t.Parallel()
	c := walqprom.New(workload(t))
	for _, tc := range []struct {
		name string
		want string
	}{
		{"walq_jobs", `
# HELP walq_jobs Jobs per queue and state.
# TYPE walq_jobs gauge
walq_jobs{queue="email",state="cancelled"} 0
walq_jobs{queue="email",state="completed"} 1
walq_jobs{queue="email",state="dead"} 1
walq_jobs{queue="email",state="leased"} 0
walq_jobs{queue="email",state="ready"} 1
walq_jobs{queue="email",state="scheduled"} 0
walq_jobs{queue="sms",state="cancelled"} 0
walq_jobs{queue="sms",state="completed"} 0
walq_jobs{queue="sms",state="dead"} 0
walq_jobs{queue="sms",state="leased"} 0
walq_jobs{queue="sms",state="ready"} 1
walq_jobs{queue="sms",state="scheduled"} 0
`},
		{"walq_jobs_enqueued_total", `
# HELP walq_jobs_enqueued_total Jobs enqueued since the queue was opened.
# TYPE walq_jobs_enqueued_total counter
walq_jobs_enqueued_total{queue="email"} 3
walq_jobs_enqueued_total{queue="sms"} 1
`},
		{"walq_jobs_completed_total", `
# HELP walq_jobs_completed_total Jobs completed since the queue was opened.
# TYPE walq_jobs_completed_total counter
walq_jobs_completed_total{queue="email"} 1
walq_jobs_completed_total{queue="sms"} 0
`},
		{"walq_jobs_dead_total", `
# HELP walq_jobs_dead_total Jobs moved to the dead-letter queue since the queue was opened.
# TYPE walq_jobs_dead_total counter
walq_jobs_dead_total{queue="email"} 1
walq_jobs_dead_total{queue="sms"} 0
`},
		{"walq_dead_jobs", `
# HELP walq_dead_jobs Jobs in the dead-letter queue.
# TYPE walq_dead_jobs gauge
walq_dead_jobs{queue="email"} 1
walq_dead_jobs{queue="sms"} 0
`},
		{"walq_oldest_ready_job_age_seconds", `
# HELP walq_oldest_ready_job_age_seconds How long the oldest ready job has waited.
# TYPE walq_oldest_ready_job_age_seconds gauge
walq_oldest_ready_job_age_seconds{queue="email"} 10
walq_oldest_ready_job_age_seconds{queue="sms"} 10
`},
		{"walq_scrape_error", `
# HELP walq_scrape_error 1 if reading the queue's stats failed.
# TYPE walq_scrape_error gauge
walq_scrape_error 0
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want), tc.name); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCollectorCount(t *testing.T) {
	t.Parallel()
	c := walqprom.New(workload(t))
	for _, tc := range []struct {
		names []string
		want  int
	}{
		// Per queue: 6 states, oldest age, dead gauge, 4 counters, 2
		// histograms; then the log's 3 gauges and the scrape error.
		{nil, 2*14 + 3 + 1},
		{[]string{"walq_jobs"}, 12},
		{[]string{"walq_job_duration_seconds", "walq_job_queue_latency_seconds"}, 4},
		{[]string{"walq_log_size_bytes", "walq_log_live_bytes", "walq_log_segments"}, 3},
	} {
		if got := testutil.CollectAndCount(c, tc.names...); got != tc.want {
			t.Errorf("CollectAndCount(%v) = %d, want %d", tc.names, got, tc.want)
		}
	}
}

func TestCollectorHistograms(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry() // also checks Collect against Describe
	reg.MustRegister(walqprom.New(workload(t)))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	find := func(name, q string) *dto.Histogram {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "queue" && l.GetValue() == q {
						return m.GetHistogram()
					}
				}
			}
		}
		t.Fatalf("no %s{queue=%q}", name, q)
		return nil
	}
	for _, tc := range []struct {
		name  string
		count uint64
		sum   float64
		// upper bound → cumulative count, for a few buckets
		buckets map[time.Duration]uint64
	}{
		// Runs of 3s and 0s.
		{"walq_job_duration_seconds", 2, 3, map[time.Duration]uint64{bound(0): 1, bound(14): 1, bound(15): 2, bound(16): 2}},
		// Waits of 2s and 5s.
		{"walq_job_queue_latency_seconds", 2, 7, map[time.Duration]uint64{bound(14): 0, bound(15): 1, bound(16): 2}},
	} {
		h := find(tc.name, "email")
		if h.GetSampleCount() != tc.count || h.GetSampleSum() != tc.sum {
			t.Errorf("%s: count %d sum %v, want %d %v", tc.name, h.GetSampleCount(), h.GetSampleSum(), tc.count, tc.sum)
		}
		got := map[float64]uint64{}
		for _, b := range h.GetBucket() {
			got[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		for b, want := range tc.buckets {
			le := b.Seconds()
			if n, ok := got[le]; !ok || n != want {
				t.Errorf("%s: bucket le=%v holds %d (present %v), want %d", tc.name, le, n, ok, want)
			}
		}
	}
}

// bound returns the k-th bucket bound of walq's histograms: 100µs doubled k
// times (bound(15) = 3.2768s).
func bound(k int) time.Duration { return 100 * time.Microsecond << k }

func TestCollectorLint(t *testing.T) {
	t.Parallel()
	problems, err := testutil.CollectAndLint(walqprom.New(workload(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestCollectorScrapeError(t *testing.T) {
	t.Parallel()
	q := workload(t)
	c := walqprom.New(q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP walq_scrape_error 1 if reading the queue's stats failed.
# TYPE walq_scrape_error gauge
walq_scrape_error 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
