package main

import (
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver (cgo)

	"github.com/walq/walq/bench"
)

// sqliteSync maps durability classes to SQLite's synchronous setting in
// WAL mode: FULL fsyncs the WAL at every commit; NORMAL fsyncs only at
// checkpoints, so a commit survives a process crash at once and a power
// loss after the next checkpoint.
var sqliteSync = map[string]string{bench.Sync: "FULL", bench.Relaxed: "NORMAL"}

// openSQLite opens dir/name with mattn/go-sqlite3 the way goqite's README
// does (WAL journal, 5 s busy timeout, foreign keys on) plus the
// synchronous mode of the durability class, with a pool of one connection
// as both goqite's README and riversqlite's docs recommend: SQLite has one
// writer at a time, and more connections only add SQLITE_BUSY retries.
func openSQLite(dir, name, durability string) (*sql.DB, error) {
	mode, ok := sqliteSync[durability]
	if !ok {
		return nil, fmt.Errorf("sqlite: no mode for durability %q", durability)
	}
	q := url.Values{}
	q.Set("_journal", "WAL")
	q.Set("_timeout", "5000")
	q.Set("_fk", "true")
	q.Set("_sync", mode)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, name)+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	var got int
	if err := db.QueryRow(`pragma synchronous`).Scan(&got); err != nil {
		db.Close()
		return nil, err
	}
	if want := map[string]int{"NORMAL": 1, "FULL": 2}[mode]; got != want {
		db.Close()
		return nil, fmt.Errorf("sqlite: synchronous is %d, want %d (%s)", got, want, mode)
	}
	return db, nil
}
