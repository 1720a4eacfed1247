package queue

import (
	"math"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// histBuckets are the upper bounds of the duration histograms: 100µs
// doubling up to about 1.9 days, plus +Inf.
var histBuckets = func() []time.Duration {
	var b []time.Duration
	for d := 100 * time.Microsecond; d < 48*time.Hour; d *= 2 {
		b = append(b, d)
	}
	return b
}()

// Histogram counts durations in exponential buckets.
type Histogram struct {
	// Bounds are the buckets' upper bounds; Counts[i] counts durations
	// at most Bounds[i] (and above Bounds[i-1]); the last count is for
	// durations above every bound.
	Bounds []time.Duration
	Counts []uint64
	// Count and Sum summarise every observation.
	Count uint64
	Sum   time.Duration
}

func newHistogram() *Histogram {
	return &Histogram{Bounds: histBuckets, Counts: make([]uint64, len(histBuckets)+1)}
}

func (h *Histogram) observe(d time.Duration) {
	i := 0
	for i < len(h.Bounds) && d > h.Bounds[i] {
		i++
	}
	h.Counts[i]++
	h.Count++
	h.Sum += d
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as the upper bound of the
// bucket it falls in; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h == nil || h.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.Count)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if i < len(h.Bounds) {
				return h.Bounds[i]
			}
			return h.Bounds[len(h.Bounds)-1]
		}
	}
	return h.Bounds[len(h.Bounds)-1]
}

func (h *Histogram) clone() *Histogram {
	c := *h
	c.Counts = append([]uint64(nil), h.Counts...)
	return &c
}

// rateWindow is the sliding window of Rates.
const rateWindow = 60

// window counts events per second over the last rateWindow seconds of the
// queue's clock.
type window struct {
	sec    [rateWindow]int64
	counts [rateWindow]uint64
}

func (w *window) add(now int64) {
	s := now / int64(time.Second)
	i := s % rateWindow
	if w.sec[i] != s {
		w.sec[i], w.counts[i] = s, 0
	}
	w.counts[i]++
}

// perSecond returns the mean rate over the window ending at now.
func (w *window) perSecond(now int64) float64 {
	s := now / int64(time.Second)
	var n uint64
	for i := range w.sec {
		if w.sec[i] > s-rateWindow && w.sec[i] <= s {
			n += w.counts[i]
		}
	}
	return float64(n) / rateWindow
}

// queueMetrics are one named queue's counters since Open.
type queueMetrics struct {
	enqueued, completed, failed, dead uint64
	enqRate, doneRate, failRate       window
	duration, latency                 *Histogram
}

// metrics holds every queue's counters. Guarded by Queue.mu.
type metrics map[string]*queueMetrics

func (m metrics) get(name string) *queueMetrics {
	qm := m[name]
	if qm == nil {
		qm = &queueMetrics{duration: newHistogram(), latency: newHistogram()}
		m[name] = qm
	}
	return qm
}

func (m metrics) observe(ev *Event, j *index.Job, r *wlog.Record) {
	qm := m.get(ev.Queue)
	switch r.Kind {
	case wlog.KindEnqueued:
		qm.enqueued++
		qm.enqRate.add(r.At)
	case wlog.KindLeased:
		// Queue latency: from when the job became ready to its start.
		// RunAt still holds the time it was due.
		qm.latency.observe(time.Duration(max(0, r.At-readyTime(j))))
	case wlog.KindCompleted:
		qm.completed++
		qm.doneRate.add(r.At)
		qm.duration.observe(ev.Duration)
	case wlog.KindFailed, wlog.KindDead, wlog.KindExpired:
		qm.failed++
		qm.failRate.add(r.At)
		qm.duration.observe(ev.Duration)
		if r.Kind == wlog.KindDead {
			qm.dead++
		}
	}
}

// Metrics are one named queue's counters and distributions since Open.
type Metrics struct {
	// Enqueued, Completed, Failed (every failed or expired attempt) and
	// Dead count transitions since Open.
	Enqueued, Completed, Failed, Dead uint64
	// EnqueueRate, CompleteRate and FailRate are per second over the last
	// minute of the queue's clock.
	EnqueueRate, CompleteRate, FailRate float64
	// Duration is the distribution of attempt run times (lease to end).
	Duration *Histogram
	// Latency is the distribution of queue latency: from when a job became
	// ready to when it was leased.
	Latency *Histogram
}

func (qm *queueMetrics) snapshot(now int64) Metrics {
	return Metrics{
		Enqueued: qm.enqueued, Completed: qm.completed, Failed: qm.failed, Dead: qm.dead,
		EnqueueRate: qm.enqRate.perSecond(now), CompleteRate: qm.doneRate.perSecond(now), FailRate: qm.failRate.perSecond(now),
		Duration: qm.duration.clone(), Latency: qm.latency.clone(),
	}
}
