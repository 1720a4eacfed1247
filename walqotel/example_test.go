package walqotel_test

import (
	"context"
	"fmt"
	"os"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqotel"
	"github.com/walq/walq/worker"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Tracing a job from the request that enqueued it to the attempt that ran
// it: the producer span's context travels in the job's metadata, and the
// consumer span is its child in the same trace.
func Example() {
	dir, err := os.MkdirTemp("", "walqotel-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	spans := tracetest.NewInMemoryExporter() // an app uses its OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	ctx := context.Background()

	otw, err := walqotel.New(&walqotel.Options{TracerProvider: tp})
	if err != nil {
		panic(err)
	}
	q, err := queue.Open(dir, &queue.Options{
		EnqueueMiddleware: []queue.EnqueueMiddleware{otw.EnqueueMiddleware()},
	})
	if err != nil {
		panic(err)
	}
	defer q.Close()
	rt, err := worker.New(q, &worker.Options{Middleware: []worker.Middleware{otw.Middleware()}})
	if err != nil {
		panic(err)
	}
	rt.Handle("email", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		return []byte("sent"), nil
	}, nil)
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}

	reqCtx, req := tp.Tracer("app").Start(ctx, "POST /signup")
	job, err := q.Enqueue(reqCtx, queue.NewJob{Queue: "email", Payload: []byte("ada@example.com")})
	req.End()
	if err != nil {
		panic(err)
	}
	if _, err := q.Wait(ctx, job.ID); err != nil {
		panic(err)
	}
	rt.Stop(ctx)

	for _, s := range spans.GetSpans() {
		fmt.Printf("%-13s %-9s same trace: %v\n", s.Name, s.SpanKind,
			s.SpanContext.TraceID() == req.SpanContext().TraceID())
	}
	// Output:
	// send email    producer  same trace: true
	// POST /signup  internal  same trace: true
	// process email consumer  same trace: true
}
