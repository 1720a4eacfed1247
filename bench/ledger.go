package bench

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// PayloadSize is the size of every benchmark payload, as the issue's
// workloads specify.
const PayloadSize = 256

// A payload carries what verification needs:
//
//	[0:8)   run nonce (jobs of another run are caught)
//	[8:16)  sequence number, 0..n-1
//	[16:24) enqueue stamp, ns on the run's monotonic clock (W7 only)
//	[24:)   filler derived from the sequence number (corruption is caught)
const headerSize = 24

// ledger makes payloads for one run and checks that every job comes back
// exactly once and intact. It is safe for concurrent use.
type ledger struct {
	nonce uint64
	seen  []atomic.Uint32
	done  atomic.Int64

	mu  sync.Mutex
	err error // the first problem found
}

func newLedger(n int) *ledger {
	return &ledger{nonce: rand.Uint64() | 1, seen: make([]atomic.Uint32, n)}
}

// payloads returns the unstamped payload of every job the ledger tracks,
// made before the timed part of a workload starts.
func (l *ledger) payloads() [][]byte {
	ps := make([][]byte, len(l.seen))
	for i := range ps {
		ps[i] = l.payload(i, 0)
	}
	return ps
}

// payload returns the payload of job seq, stamped with stamp.
func (l *ledger) payload(seq int, stamp int64) []byte {
	p := make([]byte, PayloadSize)
	binary.BigEndian.PutUint64(p[0:], l.nonce)
	binary.BigEndian.PutUint64(p[8:], uint64(seq))
	binary.BigEndian.PutUint64(p[16:], uint64(stamp))
	for i := headerSize; i < len(p); i++ {
		p[i] = byte(seq*31 + i)
	}
	return p
}

// decode checks a payload and returns its sequence number and stamp.
func (l *ledger) decode(p []byte) (int, int64, error) {
	if len(p) != PayloadSize {
		return 0, 0, fmt.Errorf("bench: payload of %d bytes, want %d", len(p), PayloadSize)
	}
	if binary.BigEndian.Uint64(p[0:]) != l.nonce {
		return 0, 0, fmt.Errorf("bench: payload from another run")
	}
	seq := binary.BigEndian.Uint64(p[8:])
	if seq >= uint64(len(l.seen)) {
		return 0, 0, fmt.Errorf("bench: payload sequence %d out of range [0, %d)", seq, len(l.seen))
	}
	for i := headerSize; i < len(p); i++ {
		if p[i] != byte(int(seq)*31+i) {
			return 0, 0, fmt.Errorf("bench: payload of job %d corrupt at byte %d", seq, i)
		}
	}
	return int(seq), int64(binary.BigEndian.Uint64(p[16:])), nil
}

// mark records that the job with payload p was delivered (completed, or
// handed to a handler). It returns the job's sequence number and stamp; a
// bad or repeated payload is recorded as the ledger's error.
func (l *ledger) mark(p []byte) (int, int64) {
	seq, stamp, err := l.decode(p)
	if err != nil {
		l.fail(err)
		return -1, 0
	}
	if l.seen[seq].Add(1) != 1 {
		l.fail(fmt.Errorf("bench: job %d delivered twice", seq))
		return -1, 0
	}
	l.done.Add(1)
	return seq, stamp
}

func (l *ledger) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// Err returns the first problem found.
func (l *ledger) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Done returns how many distinct jobs were delivered.
func (l *ledger) Done() int { return int(l.done.Load()) }

// check verifies the end state: no problem was recorded and the jobs
// delivered plus those the backend still holds account for every job
// enqueued, each exactly once.
func (l *ledger) check(enqueued, pending int) error {
	if err := l.Err(); err != nil {
		return err
	}
	done := l.Done()
	if done+pending != enqueued {
		return fmt.Errorf("bench: %d jobs enqueued, but %d completed and %d still pending", enqueued, done, pending)
	}
	return nil
}
