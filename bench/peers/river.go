package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/walq/walq/bench"
)

// riverArgs is the benchmark's job: the payload, JSON-encoded by River.
type riverArgs struct {
	Payload []byte `json:"p"`
}

func (riverArgs) Kind() string { return "bench" }

// riverWorker hands each job's payload to the handler in force.
type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	handle atomic.Pointer[func([]byte)]
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	if h := w.handle.Load(); h != nil {
		(*h)(job.Args.Payload)
	}
	return nil
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func riverTarget(durability string) bench.Target {
	return bench.Target{
		Name:       "river",
		Durability: durability,
		Config:     fmt.Sprintf("River v0.51.2 with riversqlite on mattn/go-sqlite3 (cgo), WAL, synchronous=%s, 1 connection (as riversqlite's docs require), schema by rivermigrate, FetchCooldown 2ms and FetchPollInterval 20ms (the values River's own benchmark uses for throughput; defaults 100ms and 1s cap 8 workers near 80 jobs/s)", sqliteSync[durability]),
		Open: func(ctx context.Context, p bench.Params) (bench.Backend, error) {
			return openRiver(ctx, p.Dir, durability)
		},
	}
}

// riverBackend drives River through its public API: Insert and
// InsertMany to enqueue, a started Client (its worker runtime) to work.
// River has no public lease-and-complete call, so the plain-loop workloads
// do not apply to it.
type riverBackend struct {
	db     *sql.DB
	driver *riversqlite.Driver
	client *river.Client[*sql.Tx] // insert-only
}

func openRiver(ctx context.Context, dir, durability string) (*riverBackend, error) {
	db, err := openSQLite(dir, "river.db", durability)
	if err != nil {
		return nil, err
	}
	driver := riversqlite.New(db)
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: discard})
	if err == nil {
		_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("river migrate: %w", err)
	}
	client, err := river.NewClient(driver, &river.Config{Logger: discard})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &riverBackend{db: db, driver: driver, client: client}, nil
}

func (r *riverBackend) Enqueue(ctx context.Context, payload []byte) error {
	_, err := r.client.Insert(ctx, riverArgs{Payload: payload}, nil)
	return err
}

func (r *riverBackend) EnqueueBatch(ctx context.Context, payloads [][]byte) error {
	ps := make([]river.InsertManyParams, len(payloads))
	for i, p := range payloads {
		ps[i] = river.InsertManyParams{Args: riverArgs{Payload: p}}
	}
	_, err := r.client.InsertMany(ctx, ps)
	return err
}

func (r *riverBackend) Lease(context.Context, bool) (bench.Job, error) {
	return bench.Job{}, bench.ErrUnsupported
}

func (r *riverBackend) Complete(context.Context, bench.Job) error { return bench.ErrUnsupported }

func (r *riverBackend) Pending(ctx context.Context) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, `select count(*) from river_job where state not in ('completed', 'cancelled', 'discarded')`).Scan(&n)
	return n, err
}

func (r *riverBackend) Close() error { return r.db.Close() }

// Work starts a River client with concurrency workers on the default
// queue; stop is Client.Stop, which waits for running jobs and for their
// completions to be written.
func (r *riverBackend) Work(ctx context.Context, concurrency int, handle func([]byte)) (func(context.Context) error, error) {
	w := &riverWorker{}
	w.handle.Store(&handle)
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return nil, err
	}
	client, err := river.NewClient(r.driver, &river.Config{
		// River's defaults (FetchCooldown 100ms, FetchPollInterval 1s)
		// fetch at most MaxWorkers jobs every 100ms; River's own benchmark
		// (cmd/river/riverbench) sets these two for throughput instead.
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Logger:            discard,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}},
		Workers:           workers,
	})
	if err != nil {
		return nil, err
	}
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return client.Stop, nil
}
