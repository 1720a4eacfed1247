package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// This file is the edge between queue and the packages below it (recovery,
// index, log), which make no compatibility promise: their errors are
// converted here into queue's sentinels and types, with their texts
// stripped of the lower packages' prefixes so that a message says "walq:"
// once.

// lowerError is an error from below queue as queue returns it.
type lowerError struct {
	msg string
	// conv is what the error is in queue's terms: a sentinel, a
	// *CorruptError or a *LockedError; nil if none fits.
	conv error
	// err is the lower package's error. It stays reachable for errors.Is
	// with causes from outside walq (syscall.ENOSPC, fs.ErrNotExist) and
	// for walq's own tools; programs use queue's types.
	err error
}

func (e *lowerError) Error() string { return e.msg }

func (e *lowerError) Unwrap() []error {
	if e.conv == nil {
		return []error{e.err}
	}
	return []error{e.conv, e.err}
}

// fromLower converts err, from a package below queue, into queue's terms;
// what says where it happened ("compact", "read payload"), or is empty.
// Errors that are queue's own already pass through.
func fromLower(what string, err error) error {
	if err == nil {
		return nil
	}
	var le *lowerError
	if errors.As(err, &le) && what == "" {
		return err
	}
	msg := "walq: "
	if what != "" {
		msg += what + ": "
	}
	return &lowerError{msg: msg + bare(err.Error()), conv: convert(err), err: err}
}

// convert returns the queue sentinel or type that err, from below queue,
// amounts to, or nil.
func convert(err error) error {
	var locked *wlog.LockedError
	var corrupt *wlog.CorruptError
	switch {
	case errors.As(err, &locked):
		return &LockedError{Dir: locked.Dir, PID: locked.PID}
	case errors.As(err, &corrupt):
		c := &CorruptError{Segment: corrupt.Segment, Offset: corrupt.Offset, Index: corrupt.Index,
			Record: corrupt.Record, Reason: corrupt.Reason, Err: corrupt.Err}
		if cause := convert(corrupt.Err); cause != nil {
			c.Err = cause
		}
		return c
	}
	for _, m := range []struct{ lower, ours error }{
		{wlog.ErrVersion, ErrVersion},
		{wlog.ErrNotLog, ErrNotQueue},
		{wlog.ErrFailed, ErrFailed},
		{wlog.ErrClosed, ErrClosed},
		{wlog.ErrTooLarge, ErrTooLarge},
		{wlog.ErrReadOnly, ErrReadOnly},
		{wlog.ErrCorrupt, ErrCorrupt},
		{index.ErrInconsistent, ErrInconsistent},
		{ErrClosed, ErrClosed},
	} {
		if errors.Is(err, m.lower) {
			return m.ours
		}
	}
	return nil
}

// prefixes are the texts with which walq's packages begin their errors.
var prefixes = strings.NewReplacer("walq/log: ", "", "walq/index: ", "", "walq/recovery: ", "", "walq: ", "")

// bare removes walq's package prefixes ("walq: ", "walq/log: " …) from an
// error text, so that the caller can prefix it once.
func bare(s string) string { return prefixes.Replace(s) }

// openError converts an error of Open for dir.
func openError(dir string, err error) error {
	conv := convert(err)
	var locked *LockedError
	if errors.As(conv, &locked) {
		locked.Dir = dir
		locked.InProcess = openInProcess(dir)
		return &lowerError{msg: locked.Error(), conv: locked, err: err}
	}
	if conv == nil && errors.Is(err, syscall.ENOTDIR) {
		conv = ErrNotQueue
	}
	return &lowerError{msg: "walq: open " + dir + ": " + bare(err.Error()), conv: conv, err: err}
}

// writers holds the directories that Queues of this process have open (or
// are opening) for writing, by absolute path, so that a second Open of one
// is told apart from another process's lock.
var writers struct {
	sync.Mutex
	dirs map[string]int
}

// addWriter records that dir is being opened for writing, and returns the
// function that forgets it.
func addWriter(dir string) func() {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return func() {}
	}
	writers.Lock()
	defer writers.Unlock()
	if writers.dirs == nil {
		writers.dirs = make(map[string]int)
	}
	writers.dirs[abs]++
	return func() {
		writers.Lock()
		defer writers.Unlock()
		if writers.dirs[abs]--; writers.dirs[abs] <= 0 {
			delete(writers.dirs, abs)
		}
	}
}

// openInProcess reports whether a Queue of this process has dir open for
// writing, under this path or another (a symbolic link).
func openInProcess(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil {
		return false
	}
	writers.Lock()
	defer writers.Unlock()
	for d := range writers.dirs {
		if other, err := os.Stat(d); err == nil && os.SameFile(st, other) {
			return true
		}
	}
	return false
}
