package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"slices"
	"strings"

	"github.com/walq/walq/bench"
)

// colors gives each backend one color in every panel.
var colors = map[string]string{"walq": "#1f77b4", "goqite": "#ff7f0e", "bbolt": "#2ca02c", "river": "#9467bd"}

// sweep is the producer sweep of the throughput panel: workload and
// producers.
var sweep = []sweepPoint{{"W1", 1}, {"W2-8", 8}, {"W2", 64}}

type sweepPoint struct {
	id        string
	producers int
}

const (
	chartW, chartH = 980, 460
	panelTop       = 60
	panelH         = 300
)

// chartSVG draws two panels by hand: enqueue throughput against the number
// of producers (log scale; solid lines sync, dashed relaxed), and W7's
// latency percentiles per backend (log scale).
func chartSVG(rep *bench.Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">walq and peers, %s, %s/%s, %d CPUs, medians of %d run(s)</text>`+"\n",
		20, rep.Date.Format("2006-01-02"), rep.Machine.OS, rep.Machine.Arch, rep.Machine.CPUs, rep.Runs)
	throughputPanel(&b, rep, 70, 440)
	latencyPanel(&b, rep, 590, 360)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// logScale maps v in [lo, hi] (log10) onto [y0+h, y0].
type logScale struct{ lo, hi, y0, h float64 }

func newLogScale(vals []float64, y0, h float64) logScale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	return logScale{lo: math.Floor(math.Log10(lo)), hi: math.Ceil(math.Log10(hi) + 1e-9), y0: y0, h: h}
}

func (s logScale) y(v float64) float64 {
	return s.y0 + s.h - (math.Log10(v)-s.lo)/(s.hi-s.lo)*s.h
}

// axis draws the decade grid lines and labels of a log axis.
func (s logScale) axis(b *bytes.Buffer, x0, w float64, unit string) {
	for e := s.lo; e <= s.hi; e++ {
		y := s.y(math.Pow(10, e))
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x0+w, y)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, decade(e))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" transform="rotate(-90 %.0f %.0f)">%s</text>`+"\n",
		x0-48, s.y0+s.h/2, x0-48, s.y0+s.h/2, html.EscapeString(unit))
}

func decade(e float64) string {
	switch {
	case e >= 6:
		return fmt.Sprintf("%gM", math.Pow(10, e-6))
	case e >= 3:
		return fmt.Sprintf("%gk", math.Pow(10, e-3))
	default:
		return fmt.Sprintf("%g", math.Pow(10, e))
	}
}

// throughputPanel plots W1, W2-8 and W2 for every target.
func throughputPanel(b *bytes.Buffer, rep *bench.Report, x0, w float64) {
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="13" font-weight="bold">Durable enqueue throughput vs producers (jobs/s)</text>`+"\n", x0, panelTop-12)
	var vals []float64
	for _, r := range rep.Results {
		if isSweep(r.Workload) && r.Skipped == "" {
			vals = append(vals, r.Median)
		}
	}
	s := newLogScale(vals, panelTop, panelH)
	s.axis(b, x0, w, "jobs/s (log)")
	xs := make([]float64, len(sweep))
	for i, p := range sweep {
		xs[i] = x0 + 30 + float64(i)*(w-60)/float64(len(sweep)-1)
		fmt.Fprintf(b, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`+"\n", xs[i], panelTop+panelH+18, p.producers)
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%d" text-anchor="middle">producers (W1, W2-8, W2)</text>`+"\n", x0+w/2, panelTop+panelH+36)
	legendY := float64(panelTop + panelH + 56)
	for i, label := range sweepLabels(rep) {
		name, class := splitLabel(label)
		dash := ""
		if class != bench.Sync {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for k, p := range sweep {
			if r := rep.Find(p.id, label); r != nil && r.Median > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs[k], s.y(r.Median)))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", xs[k], s.y(r.Median), colors[name])
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colors[name], dash)
		}
		lx := x0 + float64(i%4)*122
		ly := legendY + float64(i/4)*16
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`, lx, ly-4, lx+22, ly-4, colors[name], dash)
		fmt.Fprintf(b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+27, ly, html.EscapeString(label))
	}
}

func isSweep(id string) bool {
	return slices.ContainsFunc(sweep, func(p sweepPoint) bool { return p.id == id })
}

// sweepLabels lists the targets that ran any sweep workload, in run order.
func sweepLabels(rep *bench.Report) []string {
	var out []string
	for _, r := range rep.Results {
		if isSweep(r.Workload) && r.Skipped == "" && !slices.Contains(out, r.Label()) {
			out = append(out, r.Label())
		}
	}
	return out
}

// latencyPanel draws W7's p50, p99 and p99.9 per target as grouped bars.
func latencyPanel(b *bytes.Buffer, rep *bench.Report, x0, w float64) {
	// W7c is the latency at a load every backend sustains; W7 (half of
	// W2) saturates them all and measures backlog, so it is the fallback.
	id, note := "W7c", "offered load: 50% of each backend's end-to-end capacity (W7c)"
	if !slices.ContainsFunc(rep.Results, func(r bench.Result) bool { return r.Workload == id && r.Latency != nil }) {
		id, note = "W7", "offered load: 50% of each backend's own W2 rate (W7)"
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%d" font-size="13" font-weight="bold">%s enqueue → handler start latency (ms)</text>`+"\n", x0, panelTop-12, id)
	var rs []bench.Result
	var vals []float64
	for _, r := range rep.Results {
		if r.Workload == id && r.Latency != nil {
			rs = append(rs, r)
			for _, d := range []float64{float64(r.Latency.P50), float64(r.Latency.P99), float64(r.Latency.P999)} {
				vals = append(vals, d/1e6)
			}
		}
	}
	if len(rs) == 0 {
		fmt.Fprintf(b, `<text x="%.0f" y="%d">W7 and W7c were not run</text>`+"\n", x0, panelTop+20)
		return
	}
	s := newLogScale(vals, panelTop, panelH)
	s.axis(b, x0, w, "ms (log)")
	shades := []string{"1", "0.65", "0.35"}
	names := []string{"p50", "p99", "p99.9"}
	group := w / float64(len(rs))
	bar := math.Min(22, (group-16)/3)
	base := s.y(math.Pow(10, s.lo))
	for i, r := range rs {
		gx := x0 + float64(i)*group + (group-3*bar)/2
		for k, d := range []float64{float64(r.Latency.P50), float64(r.Latency.P99), float64(r.Latency.P999)} {
			y := s.y(math.Max(d/1e6, math.Pow(10, s.lo)))
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%s"><title>%s %s: %.3f ms</title></rect>`+"\n",
				gx+float64(k)*bar, y, bar-2, base-y, colors[r.Target], shades[k], r.Label(), names[k], d/1e6)
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+1.5*bar, panelTop+panelH+18, html.EscapeString(r.Label()))
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s/s</text>`+"\n", gx+1.5*bar, panelTop+panelH+34, compact(r.Latency.Offered))
	}
	for k, n := range names {
		lx := x0 + float64(k)*80
		fmt.Fprintf(b, `<rect x="%.0f" y="%d" width="14" height="10" fill="#555" fill-opacity="%s"/><text x="%.0f" y="%d">%s</text>`+"\n",
			lx, panelTop+panelH+48, shades[k], lx+18, panelTop+panelH+57, n)
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%d" fill="#555">%s</text>`+"\n", x0, panelTop+panelH+78, html.EscapeString(note))
}

func compact(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func splitLabel(label string) (string, string) {
	for i := len(label) - 1; i >= 0; i-- {
		if label[i] == '/' {
			return label[:i], label[i+1:]
		}
	}
	return label, ""
}
