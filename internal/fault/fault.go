// Package fault is walq's fault-injection seam for tests, in the manner of
// pebble's vfs/errorfs: the write path names each step a test may fail,
// delay or watch (an Op), and before taking it asks the Injector registered
// for its directory. It must never be used outside tests: it is internal,
// so users cannot reach it, no exported walq type names it, and
// queue.Options carries nothing for it.
//
// Production code registers nothing. The log and the queue look their
// directory's injector up once, at Open, and skip the seam when there is
// none, so that it costs one nil check per step.
package fault

import (
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Kind names a step of the write path.
type Kind uint8

const (
	// Write: the log is about to write the group of entries First..Last.
	// An error fails the group with nothing written, as a failed write
	// would.
	Write Kind = iota + 1
	// Sync: the log has written the group First..Last and is about to
	// fsync it (Sync durability). An error fails the group as a failed
	// fsync would: its bytes are in the file but not known durable.
	Sync
	// Apply: the queue's entry First (Last is the same) is durable and
	// about to be applied to the queue's index; the queue's mutex is not
	// held. An injector may block to hold the entry in flight. Errors are
	// ignored.
	Apply
	// Wait: a queue call is about to wait for an idempotency key or a job
	// that another operation holds, or for a truncation to finish removing
	// segments; the queue's mutex is held. Errors are ignored.
	Wait
	// Compact: a compaction is about to take step Step ("carry",
	// "checkpoint" or "truncate"). An error stops the compaction there, as
	// a crash would, and Compact returns it.
	Compact
	// Background: the queue is about to start its background compactor.
	// An error keeps it from starting, so that a test runs compaction
	// itself.
	Background
	// Checkpoint: the queue is about to take step Step of writing its
	// index checkpoint ("create", "write", "sync", "rename", "syncdir").
	// An error stops the write there, leaving the files as a crash would.
	Checkpoint
	// TruncateSync: the log's TruncateFront is about to fsync, Step
	// "tail" (the written entries, before removing segments) or "dir"
	// (the directory, after removing them). An error fails the
	// truncation as a failed fsync would; blocking holds it there.
	TruncateSync
)

// Op is one step of the write path.
type Op struct {
	Kind Kind
	// First and Last are the log indexes of the entries the step concerns
	// (Write, Sync, Apply).
	First, Last uint64
	// Step names the compaction step (Compact), the checkpoint step
	// (Checkpoint) or the truncation's fsync (TruncateSync).
	Step string
}

// Injector decides the fate of each step: nil lets it proceed, an error
// fails it (where its Kind says an error can), and blocking delays it. It
// is called from many goroutines at once.
type Injector interface {
	MaybeError(op Op) error
}

// Func adapts a function to Injector.
type Func func(op Op) error

// MaybeError returns f(op).
func (f Func) MaybeError(op Op) error { return f(op) }

// registration is one Register call, so that its unregister removes that
// registration and no later one.
type registration struct{ inj Injector }

var (
	mu         sync.Mutex
	registered = map[string]*registration{}
	count      atomic.Int32 // len(registered): Lookup's fast path when 0
)

// key is dir's registry key: its absolute, clean path.
func key(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return filepath.Clean(dir)
}

// Register makes inj the injector of every log and queue opened in dir from
// now on, in place of any other, until the returned func is called (a log
// or queue already open keeps the injector it found). Tests call the
// returned func in t.Cleanup.
func Register(dir string, inj Injector) (unregister func()) {
	k, r := key(dir), &registration{inj: inj}
	mu.Lock()
	registered[k] = r
	count.Store(int32(len(registered)))
	mu.Unlock()
	return func() {
		mu.Lock()
		if registered[k] == r {
			delete(registered, k)
			count.Store(int32(len(registered)))
		}
		mu.Unlock()
	}
}

// Lookup returns the injector registered for dir, or nil (always, outside
// tests).
func Lookup(dir string) Injector {
	if count.Load() == 0 {
		return nil
	}
	k := key(dir)
	mu.Lock()
	defer mu.Unlock()
	if r := registered[k]; r != nil {
		return r.inj
	}
	return nil
}
