package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"maragu.dev/goqite"

	"github.com/walq/walq/bench"
)

// goqiteSchema is schema_sqlite.sql from goqite v0.4.0, which its README
// has the application execute before first use (goqite does not export it).
const goqiteSchema = `
create table if not exists goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict;

create trigger if not exists goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end;

create index if not exists goqite_queue_priority_created_idx on goqite (queue, priority desc, created);
`

// goqitePoll is how often a blocked Lease polls: goqite has no wake-up, and
// 10ms is the PollInterval its README's job runner example uses.
const goqitePoll = 10 * time.Millisecond

func goqiteTarget(durability string) bench.Target {
	return bench.Target{
		Name:       "goqite",
		Durability: durability,
		Config:     fmt.Sprintf("goqite v0.4.0 on mattn/go-sqlite3 (cgo), WAL, synchronous=%s, busy_timeout 5s, 1 connection, queue defaults; blocked leases poll every 10ms", sqliteSync[durability]),
		Open: func(ctx context.Context, p bench.Params) (bench.Backend, error) {
			db, err := openSQLite(p.Dir, "goqite.db", durability)
			if err != nil {
				return nil, err
			}
			if _, err := db.ExecContext(ctx, goqiteSchema); err != nil {
				db.Close()
				return nil, err
			}
			return &goqiteBackend{db: db, q: goqite.New(goqite.NewOpts{DB: db, Name: "bench"})}, nil
		},
	}
}

// goqiteBackend adapts a goqite queue: Send, Receive and Delete are one
// transaction each; a batch is SendTx calls in one transaction.
type goqiteBackend struct {
	db *sql.DB
	q  *goqite.Queue
}

func (g *goqiteBackend) Enqueue(ctx context.Context, payload []byte) error {
	return g.q.Send(ctx, goqite.Message{Body: payload})
}

func (g *goqiteBackend) EnqueueBatch(ctx context.Context, payloads [][]byte) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, p := range payloads {
		if err := g.q.SendTx(ctx, tx, goqite.Message{Body: p}); err != nil {
			return errors.Join(err, tx.Rollback())
		}
	}
	return tx.Commit()
}

func (g *goqiteBackend) Lease(ctx context.Context, wait bool) (bench.Job, error) {
	var m *goqite.Message
	var err error
	if wait {
		m, err = g.q.ReceiveAndWait(ctx, goqitePoll)
	} else {
		m, err = g.q.Receive(ctx)
	}
	if err != nil {
		return bench.Job{}, err
	}
	if m == nil {
		return bench.Job{}, bench.ErrEmpty
	}
	return bench.Job{Payload: m.Body, Ref: m.ID}, nil
}

func (g *goqiteBackend) Complete(ctx context.Context, j bench.Job) error {
	return g.q.Delete(ctx, j.Ref.(goqite.ID))
}

func (g *goqiteBackend) Pending(ctx context.Context) (int, error) {
	var n int
	err := g.db.QueryRowContext(ctx, `select count(*) from goqite where queue = 'bench'`).Scan(&n)
	return n, err
}

func (g *goqiteBackend) Close() error { return g.db.Close() }
