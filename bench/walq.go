package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// walqModes maps durability classes to walq's modes.
var walqModes = map[string]queue.Durability{Sync: queue.Sync, Relaxed: queue.Interval, None: queue.None}

// Walq returns the target for walq in a durability class (Sync, Relaxed or
// None), with every other option at its default.
func Walq(durability string) (Target, error) {
	mode, ok := walqModes[durability]
	if !ok {
		return Target{}, fmt.Errorf("bench: walq has no durability %q (want %s, %s or %s)", durability, Sync, Relaxed, None)
	}
	cfg := map[string]string{Sync: "Durability: Sync", Relaxed: "Durability: Interval (100ms)", None: "Durability: None"}[durability]
	return Target{
		Name:       "walq",
		Durability: durability,
		Config:     cfg + ", defaults",
		Open: func(ctx context.Context, p Params) (Backend, error) {
			return openWalq(p.Dir, mode)
		},
	}, nil
}

// walqBackend adapts a *queue.Queue to Backend, on the default named queue.
type walqBackend struct {
	q *queue.Queue
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openWalq(dir string, mode queue.Durability) (*walqBackend, error) {
	q, err := queue.Open(dir, &queue.Options{Durability: mode, Logger: quiet})
	if err != nil {
		return nil, err
	}
	return &walqBackend{q: q}, nil
}

func (w *walqBackend) Enqueue(ctx context.Context, payload []byte) error {
	_, err := w.q.Enqueue(ctx, queue.NewJob{Payload: payload})
	return err
}

func (w *walqBackend) EnqueueBatch(ctx context.Context, payloads [][]byte) error {
	jobs := make([]queue.NewJob, len(payloads))
	for i, p := range payloads {
		jobs[i].Payload = p
	}
	_, err := w.q.EnqueueBatch(ctx, jobs)
	return err
}

func (w *walqBackend) Lease(ctx context.Context, wait bool) (Job, error) {
	var l *queue.Lease
	var err error
	if wait {
		l, err = w.q.Lease(ctx, queue.DefaultQueue)
	} else {
		l, err = w.q.TryLease(ctx, queue.DefaultQueue)
	}
	if errors.Is(err, queue.ErrNoJob) {
		return Job{}, ErrEmpty
	}
	if err != nil {
		return Job{}, err
	}
	return Job{Payload: l.Job.Payload, Ref: l.Token}, nil
}

func (w *walqBackend) Complete(ctx context.Context, j Job) error {
	return w.q.Complete(ctx, j.Ref.(queue.Token), nil)
}

func (w *walqBackend) Pending(ctx context.Context) (int, error) {
	st, err := w.q.Stats(ctx)
	if err != nil {
		return 0, err
	}
	qs := st.Queues[queue.DefaultQueue]
	return qs.Ready + qs.Scheduled + qs.Leased, nil
}

func (w *walqBackend) Close() error { return w.q.Close() }

// Work runs walq's worker runtime with a handler that calls handle and
// succeeds.
func (w *walqBackend) Work(ctx context.Context, concurrency int, handle func([]byte)) (func(context.Context) error, error) {
	rt, err := worker.New(w.q, &worker.Options{Concurrency: concurrency, Logger: quiet})
	if err != nil {
		return nil, err
	}
	h := func(_ context.Context, j *queue.Job) ([]byte, error) {
		handle(j.Payload)
		return nil, nil
	}
	if err := rt.Handle(queue.DefaultQueue, h, nil); err != nil {
		return nil, err
	}
	if err := rt.Start(ctx); err != nil {
		return nil, err
	}
	return rt.Stop, nil
}
