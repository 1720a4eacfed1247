package main

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/walq/walq/bench"
)

var (
	bucketPending = []byte("pending") // sequence → payload
	bucketLeased  = []byte("leased")  // sequence → lease deadline (8 bytes) + payload
)

// bboltLease is the lease duration the hand-written queue records.
const bboltLease = 30 * time.Second

func bboltTarget(durability string) bench.Target {
	cfg := "go.etcd.io/bbolt v1.5.0, defaults (fdatasync per commit); one Update per operation, db.Batch for Enqueue with concurrent producers (MaxBatchDelay 10ms default)"
	if durability == bench.None {
		cfg = "go.etcd.io/bbolt v1.5.0, NoSync; one Update per operation, db.Batch for Enqueue with concurrent producers"
	}
	return bench.Target{
		Name:       "bbolt",
		Durability: durability,
		Config:     cfg,
		Open: func(ctx context.Context, p bench.Params) (bench.Backend, error) {
			db, err := bolt.Open(filepath.Join(p.Dir, "queue.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: durability == bench.None})
			if err != nil {
				return nil, err
			}
			err = db.Update(func(tx *bolt.Tx) error {
				for _, name := range [][]byte{bucketPending, bucketLeased} {
					if _, err := tx.CreateBucketIfNotExists(name); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				db.Close()
				return nil, err
			}
			return &bboltBackend{db: db, batch: p.Producers > 1, wake: make(chan struct{})}, nil
		},
	}
}

// bboltBackend is the queue a Go developer would write by hand on bbolt:
// pending jobs in one bucket keyed by a big-endian sequence, so a cursor's
// First is the oldest; a lease moves the job to a second bucket with its
// deadline, and a completion deletes it there. Each operation is one
// transaction. Blocked leases wake on an in-process signal.
type bboltBackend struct {
	db    *bolt.DB
	batch bool

	mu   sync.Mutex
	wake chan struct{} // closed and replaced after every enqueue
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func (q *bboltBackend) put(tx *bolt.Tx, payloads ...[]byte) error {
	b := tx.Bucket(bucketPending)
	for _, p := range payloads {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), p); err != nil {
			return err
		}
	}
	return nil
}

func (q *bboltBackend) Enqueue(ctx context.Context, payload []byte) error {
	fn := func(tx *bolt.Tx) error { return q.put(tx, payload) }
	var err error
	if q.batch {
		err = q.db.Batch(fn)
	} else {
		err = q.db.Update(fn)
	}
	if err == nil {
		q.signal()
	}
	return err
}

// EnqueueBatch is the straightforward bbolt batch: one Update, one Put
// per job under its 8-byte big-endian sequence key in the pending bucket,
// one fdatasync at commit. (NextSequence only bumps a counter in memory;
// the leased bucket is not touched.) A hand-written loop without the
// adapter enqueues at the same rate within noise.
func (q *bboltBackend) EnqueueBatch(ctx context.Context, payloads [][]byte) error {
	err := q.db.Update(func(tx *bolt.Tx) error { return q.put(tx, payloads...) })
	if err == nil {
		q.signal()
	}
	return err
}

func (q *bboltBackend) signal() {
	q.mu.Lock()
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}

func (q *bboltBackend) Lease(ctx context.Context, wait bool) (bench.Job, error) {
	for {
		q.mu.Lock()
		wake := q.wake
		q.mu.Unlock()
		j, err := q.tryLease()
		if !errors.Is(err, bench.ErrEmpty) || !wait {
			return j, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return bench.Job{}, ctx.Err()
		}
	}
}

func (q *bboltBackend) tryLease() (bench.Job, error) {
	var j bench.Job
	err := q.db.Update(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketPending).Cursor().First()
		if k == nil {
			return bench.ErrEmpty
		}
		seq := binary.BigEndian.Uint64(k)
		j = bench.Job{Payload: append([]byte(nil), v...), Ref: seq}
		rec := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(bboltLease).UnixNano()))
		if err := tx.Bucket(bucketLeased).Put(seqKey(seq), append(rec, v...)); err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Delete(seqKey(seq))
	})
	return j, err
}

func (q *bboltBackend) Complete(ctx context.Context, j bench.Job) error {
	return q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeased).Delete(seqKey(j.Ref.(uint64)))
	})
}

func (q *bboltBackend) Pending(ctx context.Context) (int, error) {
	var n int
	err := q.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketPending).Stats().KeyN + tx.Bucket(bucketLeased).Stats().KeyN
		return nil
	})
	return n, err
}

func (q *bboltBackend) Close() error { return q.db.Close() }
