// Package walqotel reports walq jobs to OpenTelemetry: a producer span per
// enqueued job whose W3C trace context travels in the job's metadata, a
// consumer span per attempt that is a child of it, and metrics through the
// OTel metric API. It is a separate module so that walq itself does not
// depend on OpenTelemetry.
//
// Wire it in three places:
//
//	otw, _ := walqotel.New(nil) // the global providers
//	q, _ := queue.Open(dir, &queue.Options{EnqueueMiddleware: []queue.EnqueueMiddleware{otw.EnqueueMiddleware()}})
//	rt, _ := worker.New(q, &worker.Options{Middleware: []worker.Middleware{otw.Middleware()}})
//	unregister, _ := otw.ObserveQueue(q) // queue depth gauges
package walqotel

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of walqotel's tracer and meter.
const ScopeName = "github.com/walq/walq/walqotel"

// Attribute keys walqotel adds to the messaging semantic conventions.
const (
	// AttemptKey is the attempt's number (1 for the first run).
	AttemptKey = attribute.Key("walq.job.attempt")
	// OutcomeKey is how an attempt ended, as the handler's outcome says:
	// "completed", "retry", "snoozed" or "dead".
	OutcomeKey = attribute.Key("walq.job.outcome")
	// StateKey is a job state, on the queue depth gauge.
	StateKey = attribute.Key("walq.job.state")
)

// system is the messaging.system value of walq's spans and metrics.
var system = semconv.MessagingSystemKey.String("walq")

// Options configure New. The zero value (or nil) gives the defaults.
type Options struct {
	// TracerProvider makes the tracer. Defaults to otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the meter. Defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator injects span context into job metadata and extracts it.
	// Defaults to propagation.TraceContext{} (W3C traceparent and
	// tracestate), not the global propagator, which is a no-op unless
	// the app sets one.
	Propagator propagation.TextMapPropagator
	// Clock times queue latency (from when a job became ready to its
	// attempt); pass the queue's clock. Defaults to the real clock.
	Clock clock.Clock
}

// Instrumentation holds walqotel's tracer, meter and instruments. It is
// safe for concurrent use; one serves any number of queues and runtimes.
type Instrumentation struct {
	tracer trace.Tracer
	meter  metric.Meter
	prop   propagation.TextMapPropagator
	clock  clock.Clock

	enqueued, completed, failed, dead metric.Int64Counter
	duration, latency                 metric.Float64Histogram
}

// New makes the instrumentation.
func New(opts *Options) (*Instrumentation, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	if o.Propagator == nil {
		o.Propagator = propagation.TraceContext{}
	}
	if o.Clock == nil {
		o.Clock = clock.New()
	}
	in := &Instrumentation{tracer: o.TracerProvider.Tracer(ScopeName), meter: o.MeterProvider.Meter(ScopeName),
		prop: o.Propagator, clock: o.Clock}
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		c, e := in.meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{job}"))
		if err == nil {
			err = e
		}
		return c
	}
	in.enqueued = counter("walq.jobs.enqueued", "Jobs enqueued (new jobs, not duplicates of a key).")
	in.completed = counter("walq.jobs.completed", "Attempts whose handler succeeded.")
	in.failed = counter("walq.jobs.failed", "Attempts whose handler failed and that will be retried (or snoozed).")
	in.dead = counter("walq.jobs.dead", "Attempts whose failure dead-letters the job.")
	hist := func(name, desc string) metric.Float64Histogram {
		h, e := in.meter.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"))
		if err == nil {
			err = e
		}
		return h
	}
	in.duration = hist("walq.job.attempt.duration", "How long a handler ran, per attempt.")
	in.latency = hist("walq.job.queue.latency", "How long a job waited between becoming ready and its attempt starting.")
	if err != nil {
		return nil, fmt.Errorf("walqotel: making instruments: %w", err)
	}
	return in, nil
}

// EnqueueMiddleware returns the producer side: for each job of an Enqueue
// or EnqueueBatch call, a producer span (child of ctx's span) whose
// context is injected into the job's metadata, ended with the job's ID
// (messaging.message.id) once the call returns, or with its error. It
// counts the jobs enqueued.
func (in *Instrumentation) EnqueueMiddleware() queue.EnqueueMiddleware {
	return func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, jobs []queue.NewJob) ([]queue.Enqueued, error) {
			spans := make([]trace.Span, len(jobs))
			for i := range jobs {
				name := queueName(jobs[i].Queue)
				sctx, span := in.tracer.Start(ctx, "send "+name, trace.WithSpanKind(trace.SpanKindProducer),
					trace.WithAttributes(system, semconv.MessagingDestinationName(name),
						semconv.MessagingOperationName("send"), semconv.MessagingOperationTypeSend))
				m := maps.Clone(jobs[i].Meta)
				if m == nil {
					m = map[string]string{}
				}
				in.prop.Inject(sctx, propagation.MapCarrier(m))
				jobs[i].Meta = m
				spans[i] = span
			}
			res, err := next(ctx, jobs)
			for i, span := range spans {
				if err != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				} else {
					span.SetAttributes(semconv.MessagingMessageID(strconv.FormatUint(res[i].ID, 10)),
						attribute.Bool("walq.job.duplicate", res[i].Duplicate))
					if !res[i].Duplicate {
						in.enqueued.Add(ctx, 1, metric.WithAttributes(system, semconv.MessagingDestinationName(queueName(jobs[i].Queue))))
					}
				}
				span.End()
			}
			return res, err
		}
	}
}

// Middleware returns the consumer side: a consumer span per attempt, a
// child of the producer span whose context the job's metadata carries,
// with the messaging attributes, the attempt number and its outcome; and
// the attempt's metrics. The outcome is the handler's (as this middleware
// sees it, before the runtime records it): a timeout the runtime imposes
// on a handler that does not return is not seen. Put it first in
// worker.Options.Middleware so that it times the whole chain.
func (in *Instrumentation) Middleware() worker.Middleware {
	return func(next worker.Handler) worker.Handler {
		return func(ctx context.Context, job *queue.Job) ([]byte, error) {
			start := in.clock.Now()
			ready := job.RunAt
			if job.EnqueuedAt.After(ready) {
				ready = job.EnqueuedAt
			}
			dest := semconv.MessagingDestinationName(job.Queue)
			parent := in.prop.Extract(ctx, propagation.MapCarrier(job.Meta))
			ctx, span := in.tracer.Start(parent, "process "+job.Queue, trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(system, dest,
					semconv.MessagingOperationName("process"), semconv.MessagingOperationTypeProcess,
					semconv.MessagingMessageID(strconv.FormatUint(job.ID, 10)),
					AttemptKey.Int(job.Attempt)))
			defer span.End()
			if !ready.IsZero() {
				in.latency.Record(ctx, max(0, start.Sub(ready)).Seconds(), metric.WithAttributes(system, dest))
			}
			res, err := next(ctx, job)
			outcome := outcomeOf(job, err)
			span.SetAttributes(OutcomeKey.String(outcome))
			attrs := metric.WithAttributes(system, dest, OutcomeKey.String(outcome))
			in.duration.Record(ctx, in.clock.Since(start).Seconds(), attrs)
			switch outcome {
			case "completed":
				in.completed.Add(ctx, 1, metric.WithAttributes(system, dest))
			case "dead":
				in.dead.Add(ctx, 1, metric.WithAttributes(system, dest))
			default:
				in.failed.Add(ctx, 1, metric.WithAttributes(system, dest, OutcomeKey.String(outcome)))
			}
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return res, err
		}
	}
}

// outcomeOf names what an attempt's error will do to the job.
func outcomeOf(job *queue.Job, err error) string {
	switch {
	case err == nil:
		return "completed"
	case queue.IsSnooze(err):
		return "snoozed"
	case queue.IsPermanent(err) || (job.MaxAttempts > 0 && job.Attempt >= job.MaxAttempts):
		return "dead"
	}
	return "retry"
}

// ObserveQueue registers observable gauges of q's depth: walq.queue.depth
// per queue and state (ready, scheduled, leased, dead), read from q.Stats
// at each collection. Call the returned function to unregister before q
// is closed.
func (in *Instrumentation) ObserveQueue(q *queue.Queue) (unregister func() error, err error) {
	depth, err := in.meter.Int64ObservableGauge("walq.queue.depth",
		metric.WithDescription("Jobs in a queue, by state."), metric.WithUnit("{job}"))
	if err != nil {
		return nil, fmt.Errorf("walqotel: making the depth gauge: %w", err)
	}
	reg, err := in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		st, err := q.Stats(ctx)
		if err != nil {
			return err
		}
		for name, qs := range st.Queues {
			for _, s := range []struct {
				state string
				n     int
			}{{"ready", qs.Ready}, {"scheduled", qs.Scheduled}, {"leased", qs.Leased}, {"dead", qs.Dead}} {
				o.ObserveInt64(depth, int64(s.n), metric.WithAttributes(system, semconv.MessagingDestinationName(name), StateKey.String(s.state)))
			}
		}
		return nil
	}, depth)
	if err != nil {
		return nil, fmt.Errorf("walqotel: registering the depth gauge: %w", err)
	}
	return reg.Unregister, nil
}

func queueName(name string) string {
	if name == "" {
		return queue.DefaultQueue
	}
	return name
}
