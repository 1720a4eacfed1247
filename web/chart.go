package web

import (
	"fmt"
	"html/template"
	"strings"
	"sync"
	"time"

	"github.com/walq/walq/queue"
)

// The overview's charts come from samples of Stats taken when a page or
// api/stats is served, at most one per sampleEvery, the last maxSamples
// kept: no goroutine of its own, and no cost while nobody looks.
const (
	sampleEvery = 5 * time.Second
	maxSamples  = 72 // six minutes
)

// sample is one look at the queues.
type sample struct {
	at     time.Time
	queues map[string]queueSample
}

type queueSample struct {
	done    uint64 // jobs finished (completed or dead) so far
	latency *queue.Histogram
}

// sampler keeps the recent samples. It is safe for concurrent use.
type sampler struct {
	mu      sync.Mutex
	samples []sample
}

func newSampler() *sampler { return &sampler{} }

// observe records st if the last sample is old enough.
func (s *sampler) observe(q queue.Engine, st queue.Stats) {
	now := q.Info().Clock.Now()
	readOnly := q.Info().ReadOnly
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.samples); n > 0 && now.Sub(s.samples[n-1].at) < sampleEvery && !now.Before(s.samples[n-1].at) {
		return
	}
	smp := sample{at: now, queues: map[string]queueSample{}}
	for name, qs := range st.Queues {
		var qsm queueSample
		if readOnly {
			// A read-only open counts nothing as it happens: follow the
			// finished jobs' counts instead (retention lowers them, so a
			// negative step reads as zero).
			qsm.done = uint64(qs.Completed + qs.Dead)
		} else {
			qsm.done = qs.Metrics.Completed + qs.Metrics.Dead
			qsm.latency = qs.Metrics.Latency
		}
		smp.queues[name] = qsm
	}
	s.samples = append(s.samples, smp)
	if len(s.samples) > maxSamples {
		s.samples = append(s.samples[:0], s.samples[len(s.samples)-maxSamples:]...)
	}
}

// point is one step of a series.
type point struct {
	at    time.Time
	value float64
	ok    bool // false: no data for this step
}

// series returns a queue's throughput (jobs finished per second) and p95
// queue latency (seconds) between consecutive samples.
func (s *sampler) series(name string) (throughput, latency []point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < len(s.samples); i++ {
		a, b := s.samples[i-1], s.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		qa, oka := a.queues[name]
		qb, okb := b.queues[name]
		if dt <= 0 || !okb {
			continue
		}
		tp := point{at: b.at, ok: true}
		if oka && qb.done >= qa.done {
			tp.value = float64(qb.done-qa.done) / dt
		}
		throughput = append(throughput, tp)
		lp := point{at: b.at}
		if d := histDelta(qb.latency, qa.latency); d != nil && d.Count > 0 {
			lp.value, lp.ok = d.Quantile(0.95).Seconds(), true
		}
		latency = append(latency, lp)
	}
	return throughput, latency
}

// histDelta returns b minus a: the observations between two snapshots.
func histDelta(b, a *queue.Histogram) *queue.Histogram {
	if b == nil {
		return nil
	}
	d := &queue.Histogram{Bounds: b.Bounds, Counts: append([]uint64(nil), b.Counts...), Count: b.Count, Sum: b.Sum}
	if a == nil || len(a.Counts) != len(b.Counts) || a.Count > b.Count {
		return d
	}
	for i := range d.Counts {
		if a.Counts[i] > d.Counts[i] {
			return d
		}
		d.Counts[i] -= a.Counts[i]
	}
	d.Count -= a.Count
	d.Sum -= a.Sum
	return d
}

// sparkline renders points as a small inline SVG: a line over the steps
// that have data, the last value printed beside it by the template.
func sparkline(pts []point, label string) template.HTML {
	const w, h = 160, 32
	var max float64
	n := 0
	for _, p := range pts {
		if p.ok {
			n++
			max = maxf(max, p.value)
		}
	}
	if n < 2 {
		return template.HTML(fmt.Sprintf(`<svg class="spark empty" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s: collecting data"><line x1="0" y1="%d" x2="%d" y2="%d"/></svg>`,
			w, h, w, h, template.HTMLEscapeString(label), h-2, w, h-2))
	}
	if max == 0 {
		max = 1
	}
	var b strings.Builder
	step := float64(w) / float64(maxSamples-1)
	x0 := float64(w) - step*float64(len(pts)-1)
	var line []string
	for i, p := range pts {
		if !p.ok {
			continue
		}
		x := x0 + step*float64(i)
		y := float64(h-2) - p.value/max*float64(h-4)
		line = append(line, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, w, h, w, h, template.HTMLEscapeString(label))
	first, lastPt := strings.Split(line[0], ","), strings.Split(line[len(line)-1], ",")
	fmt.Fprintf(&b, `<polygon class="area" points="%s,%d %s %s,%d"/>`, first[0], h, strings.Join(line, " "), lastPt[0], h)
	fmt.Fprintf(&b, `<polyline points="%s"/></svg>`, strings.Join(line, " "))
	return template.HTML(b.String())
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}

// last returns the last point with data.
func last(pts []point) (float64, bool) {
	for i := len(pts) - 1; i >= 0; i-- {
		if pts[i].ok {
			return pts[i].value, true
		}
	}
	return 0, false
}
