// Package walqprom exports a walq queue's statistics as Prometheus metrics.
// It lives in its own module so that the walq library does not depend on
// the Prometheus client. Register it in one line:
//
//	prometheus.MustRegister(walqprom.New(q))
//
// Metrics (all labelled by queue): walq_jobs{state} (gauge: jobs per state
// now; a gauge, so no _total suffix), walq_jobs_enqueued_total,
// walq_jobs_completed_total, walq_jobs_failed_total (failed and expired
// attempts), walq_jobs_dead_total (counters since the queue was opened),
// walq_job_duration_seconds and walq_job_queue_latency_seconds
// (histograms), walq_oldest_ready_job_age_seconds, walq_dead_jobs (gauge);
// and for the whole directory walq_log_size_bytes, walq_log_live_bytes,
// walq_log_segments.
package walqprom

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/walq/walq/queue"
)

// Collector is a prometheus.Collector for one queue. It reads Stats on
// every scrape and is safe for concurrent use.
type Collector struct {
	q *queue.Queue

	jobs, oldest, dead                       *prometheus.Desc
	enqueued, completed, failed, deadTotal   *prometheus.Desc
	duration, latency                        *prometheus.Desc
	logSize, liveBytes, segments, scrapeFail *prometheus.Desc
}

// New returns a collector for q.
func New(q *queue.Queue) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		q:          q,
		jobs:       d("walq_jobs", "Jobs per queue and state.", "queue", "state"),
		oldest:     d("walq_oldest_ready_job_age_seconds", "How long the oldest ready job has waited.", "queue"),
		dead:       d("walq_dead_jobs", "Jobs in the dead-letter queue.", "queue"),
		enqueued:   d("walq_jobs_enqueued_total", "Jobs enqueued since the queue was opened.", "queue"),
		completed:  d("walq_jobs_completed_total", "Jobs completed since the queue was opened.", "queue"),
		failed:     d("walq_jobs_failed_total", "Failed or expired attempts since the queue was opened.", "queue"),
		deadTotal:  d("walq_jobs_dead_total", "Jobs moved to the dead-letter queue since the queue was opened.", "queue"),
		duration:   d("walq_job_duration_seconds", "Attempt run time, lease to end.", "queue"),
		latency:    d("walq_job_queue_latency_seconds", "Time from a job being ready to its lease.", "queue"),
		logSize:    d("walq_log_size_bytes", "Size of the log's segment files."),
		liveBytes:  d("walq_log_live_bytes", "Estimated bytes needed to restate every job."),
		segments:   d("walq_log_segments", "Number of segment files."),
		scrapeFail: d("walq_scrape_error", "1 if reading the queue's stats failed."),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobs, c.oldest, c.dead, c.enqueued, c.completed, c.failed,
		c.deadTotal, c.duration, c.latency, c.logSize, c.liveBytes, c.segments, c.scrapeFail} {
		ch <- d
	}
}

// Collect reads the queue's stats and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.q.Stats(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.GaugeValue, 0)
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	for name, qs := range st.Queues {
		for state, n := range map[queue.JobState]int{
			queue.StateReady: qs.Ready, queue.StateScheduled: qs.Scheduled, queue.StateLeased: qs.Leased,
			queue.StateCompleted: qs.Completed, queue.StateDead: qs.Dead, queue.StateCancelled: qs.Cancelled,
		} {
			gauge(c.jobs, float64(n), name, string(state))
		}
		gauge(c.oldest, qs.OldestReady.Seconds(), name)
		gauge(c.dead, float64(qs.Dead), name)
		m := qs.Metrics
		counter(c.enqueued, m.Enqueued, name)
		counter(c.completed, m.Completed, name)
		counter(c.failed, m.Failed, name)
		counter(c.deadTotal, m.Dead, name)
		ch <- histogram(c.duration, m.Duration, name)
		ch <- histogram(c.latency, m.Latency, name)
	}
	gauge(c.logSize, float64(st.Log.Size))
	gauge(c.liveBytes, float64(st.Log.LiveBytes))
	gauge(c.segments, float64(st.Log.Segments))
}

// histogram converts a walq histogram (per-bucket counts) to a Prometheus
// one (cumulative counts).
func histogram(d *prometheus.Desc, h *queue.Histogram, l ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, l...)
}
