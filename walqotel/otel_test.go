package walqotel

import (
	"context"
	"errors"
	"testing"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqtest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// setup returns instrumentation exporting to memory, and a test queue
// whose enqueues and handlers it instruments.
func setup(t *testing.T) (*Instrumentation, *walqtest.Queue, *tracetest.InMemoryExporter, *sdkmetric.ManualReader, *sdktrace.TracerProvider) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	in, err := New(&Options{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	q := walqtest.Open(t, &queue.Options{EnqueueMiddleware: []queue.EnqueueMiddleware{in.EnqueueMiddleware()}})
	in.clock = q.Clock
	q.Use(in.Middleware())
	return in, q, spans, reader, tp
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// TestSpans: the producer span is a child of the caller's span, its
// context travels in the job's metadata, and each attempt's consumer span
// is its child, in the same trace, with the messaging attributes, the
// attempt number and the outcome.
func TestSpans(t *testing.T) {
	ctx := context.Background()
	_, q, exp, _, tp := setup(t)
	fails := 1
	q.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			t.Error("the handler's context has no span")
		}
		if fails > 0 {
			fails--
			return nil, errors.New("421 try later")
		}
		return []byte("ok"), nil
	})
	rctx, request := tp.Tracer("app").Start(ctx, "POST /signup")
	e, err := q.Enqueue(rctx, queue.NewJob{Queue: "email", Payload: []byte("ada")})
	if err != nil {
		t.Fatal(err)
	}
	request.End()
	if j, _ := q.Get(ctx, e.ID); j.Meta["traceparent"] == "" {
		t.Fatalf("job metadata %v has no traceparent", j.Meta)
	}
	q.Run(ctx, &walqtest.RunOptions{Advance: true})
	q.AssertCompleted(e.ID, "ok")

	got := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range got {
		byName[s.Name] = append(byName[s.Name], s)
	}
	if len(byName["POST /signup"]) != 1 || len(byName["send email"]) != 1 || len(byName["process email"]) != 2 {
		t.Fatalf("spans %v", byName)
	}
	req, prod := byName["POST /signup"][0], byName["send email"][0]
	if prod.Parent.SpanID() != req.SpanContext.SpanID() || prod.SpanKind != trace.SpanKindProducer {
		t.Errorf("producer span: parent %v kind %v, want child of the request span, producer", prod.Parent.SpanID(), prod.SpanKind)
	}
	wantProd := map[attribute.Key]string{"messaging.system": "walq", "messaging.destination.name": "email",
		"messaging.operation.type": "send", "messaging.operation.name": "send", "messaging.message.id": "1"}
	for k, v := range wantProd {
		if a := attrs(prod.Attributes); a[k] != v {
			t.Errorf("producer span %s = %q, want %q", k, a[k], v)
		}
	}
	for i, c := range byName["process email"] {
		if c.SpanContext.TraceID() != req.SpanContext.TraceID() || c.Parent.SpanID() != prod.SpanContext.SpanID() {
			t.Errorf("consumer span %d: trace %v parent %v, want trace %v parent %v (the producer span)",
				i, c.SpanContext.TraceID(), c.Parent.SpanID(), req.SpanContext.TraceID(), prod.SpanContext.SpanID())
		}
		if c.SpanKind != trace.SpanKindConsumer {
			t.Errorf("consumer span %d kind %v", i, c.SpanKind)
		}
		want := map[attribute.Key]string{"messaging.system": "walq", "messaging.destination.name": "email",
			"messaging.operation.type": "process", "messaging.message.id": "1",
			AttemptKey: []string{"1", "2"}[i], OutcomeKey: []string{"retry", "completed"}[i]}
		for k, v := range want {
			if a := attrs(c.Attributes); a[k] != v {
				t.Errorf("consumer span %d %s = %q, want %q", i, k, a[k], v)
			}
		}
	}
	if first := byName["process email"][0]; first.Status.Description != "421 try later" || len(first.Events) == 0 {
		t.Errorf("failed attempt's span: status %+v, %d events; want the error recorded", first.Status, len(first.Events))
	}
}

// TestMetrics: counters per outcome, the two histograms, and the depth
// gauge, read through a ManualReader.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	in, q, _, reader, _ := setup(t)
	q.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		switch string(job.Payload) {
		case "bad":
			return nil, queue.Permanent(errors.New("550"))
		case "flaky":
			if job.Attempt == 1 {
				return nil, errors.New("421")
			}
		}
		return nil, nil
	})
	for _, p := range []string{"ok", "bad", "flaky"} {
		if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "later", Delay: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	unregister, err := in.ObserveQueue(q.Queue)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	q.Clock.Add(2e9) // queue latency: the jobs waited 2s
	q.Run(ctx, &walqtest.RunOptions{Advance: true})

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	hists := map[string]uint64{}
	depth := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					hists[m.Name] += p.Count
					// Three jobs waited 2s; the retry ran when it came due.
					if m.Name == "walq.job.queue.latency" && p.Sum != 6 {
						t.Errorf("queue latency sum %v, want 6s", p.Sum)
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					q, _ := p.Attributes.Value("messaging.destination.name")
					s, _ := p.Attributes.Value(StateKey)
					depth[q.AsString()+"/"+s.AsString()] = p.Value
				}
			}
		}
	}
	want := map[string]int64{"walq.jobs.enqueued": 4, "walq.jobs.completed": 2, "walq.jobs.failed": 1, "walq.jobs.dead": 1}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("%s = %d, want %d (all sums: %v)", k, sums[k], v, sums)
		}
	}
	if hists["walq.job.attempt.duration"] != 4 || hists["walq.job.queue.latency"] != 4 {
		t.Errorf("histogram counts %v, want 4 attempts each", hists)
	}
	if depth["later/scheduled"] != 1 || depth["email/dead"] != 1 || depth["email/ready"] != 0 {
		t.Errorf("depth gauges %v", depth)
	}
}
