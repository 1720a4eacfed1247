// Command signup is walq's sample service: an HTTP API that signs users up
// and sends each a welcome email in a background job, traced with
// OpenTelemetry from the request to the job's attempts.
//
//	go run ./signup -dir /tmp/signup -addr localhost:8080 -trace
//	curl -i -d '{"email":"ada@example.com","name":"Ada"}' localhost:8080/signup
//	curl 'localhost:8080/jobs/1?wait=5s'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqotel"
	"github.com/walq/walq/worker"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	dir := flag.String("dir", "signup-data", "the queue's directory")
	addr := flag.String("addr", "localhost:8080", "the HTTP address to listen on")
	traces := flag.Bool("trace", false, "print spans to stdout")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *addr, *traces); err != nil {
		fmt.Fprintln(os.Stderr, "signup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, addr string, traces bool) (err error) {
	// An app sends spans to its collector (otlptracegrpc); this one prints
	// them, or drops them.
	var tpOpts []sdktrace.TracerProviderOption
	if traces {
		exp, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
		if err != nil {
			return err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	defer tp.Shutdown(context.Background()) // flushes the spans

	otw, err := walqotel.New(&walqotel.Options{TracerProvider: tp})
	if err != nil {
		return err
	}
	q, err := queue.Open(dir, &queue.Options{
		EnqueueMiddleware: []queue.EnqueueMiddleware{otw.EnqueueMiddleware()},
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, q.Close()) }()

	svc := &Service{Queue: q, Mailer: &logMailer{}, Tracer: tp.Tracer("signup")}
	rt, err := worker.New(q, &worker.Options{Middleware: []worker.Middleware{otw.Middleware()}})
	if err != nil {
		return err
	}
	if err := welcomeJobs.Handle(rt, svc.SendWelcome, nil); err != nil {
		return err
	}
	if err := rt.Start(ctx); err != nil {
		return err
	}

	srv := &http.Server{Addr: addr, Handler: svc.Routes()}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("listening", "addr", addr, "dir", dir)
	select {
	case err = <-errc: // could not listen
	case <-ctx.Done(): // interrupted
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdown) // new requests stop first,
	// then running jobs finish (or go back, their attempt not counted).
	return errors.Join(err, rt.Stop(shutdown))
}

// logMailer stands in for a mail service: it logs what it would send.
type logMailer struct{ n atomic.Int64 }

func (m *logMailer) Send(ctx context.Context, to, subject string) (string, error) {
	id := fmt.Sprintf("msg-%d", m.n.Add(1))
	slog.InfoContext(ctx, "sending email", "to", to, "subject", subject, "message_id", id)
	return id, nil
}
