package queue

import (
	"context"
	"errors"
	"fmt"
)

// GetByKey returns the job that holds the idempotency key, with its payload
// and result, or ErrNotFound. Unlike Enqueue it never creates a job: a
// producer can check a key without side effects. A finished job is held
// (and returned) until it is purged, even once its retention is over and a
// new Enqueue of the key would replace it; a dead job that gave its key up
// (NewJob.ReleaseKeyOnDeath) is not.
func (q *Queue) GetByKey(ctx context.Context, key string) (*Job, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: empty idempotency key", ErrInvalid)
	}
	// The key may move to another job between the look-up and Get (a
	// purge, then a new enqueue of the key): look again until both agree.
	for {
		if err := q.beginRead(ctx); err != nil {
			return nil, err
		}
		var id uint64
		if j := q.idx.Key(key); j != nil {
			id = j.ID
		}
		q.end()
		if id == 0 {
			return nil, fmt.Errorf("%w: key %q", ErrNotFound, key)
		}
		j, err := q.Get(ctx, id)
		if err == nil && j.Key == key && !j.KeyReleased {
			return j, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
}

// reservedKeyPrefix begins the idempotency keys of walq's own helpers
// (worker.Callback, batch callbacks, periodic ticks), which
// Options.ReleaseKeysOnDeath leaves alone.
const reservedKeyPrefix = "walq:"
