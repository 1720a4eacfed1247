package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
)

// readOnlyHint names the commands that work while an app holds the lock.
const readOnlyHint = "stop it or use read-only commands (stats, jobs, show, dead, log, check)"

// openReadOnly opens a queue directory for inspection: no lock, no writes.
// The queue's clock is the app's, so readiness and ages agree with what
// walq prints.
func (a *app) openReadOnly(dir string) (*queue.Queue, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		q, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: a.clock, Logger: a.logger()})
		if err == nil {
			return q, nil
		}
		if !vanished(err) || attempt == 3 {
			return nil, openError(dir, err)
		}
	}
}

// vanished reports an error from a segment file that disappeared while
// walq read the directory: the writer's compaction removed it. Reading
// again sees the new set of segments.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

// openLog opens a queue directory's log for reading only.
func (a *app) openLog(dir string) (*wlog.Log, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	l, err := wlog.Open(dir, &wlog.Options{ReadOnly: true, Logger: a.logger()})
	if err != nil {
		return nil, openError(dir, err)
	}
	return l, nil
}

// openWriter opens an existing queue directory for changing it, taking the
// write lock. The background compactor stays off: a command changes what it
// says and nothing else (walq compact compacts).
func (a *app) openWriter(dir string) (*queue.Queue, error) {
	if err := checkQueueDir(a, dir); err != nil {
		return nil, err
	}
	return a.openWriterUnchecked(dir)
}

// openWriterUnchecked opens dir for writing, creating a queue there if the
// directory is new or empty.
func (a *app) openWriterUnchecked(dir string) (*queue.Queue, error) {
	q, err := queue.Open(dir, &queue.Options{Clock: a.clock, Logger: a.logger(), CompactRatio: -1})
	if err != nil {
		return nil, openError(dir, err)
	}
	return q, nil
}

// checkQueueDir makes sure dir exists and is a walq queue before a writer
// opens it, so that a typo never creates a directory and an empty
// directory is never turned into a queue by accident. It reads the format
// marker and the tail through a read-only log open, which writes nothing.
func checkQueueDir(a *app, dir string) error {
	l, err := a.openLog(dir)
	if err != nil {
		return err
	}
	return l.Close()
}

// checkDir reports a missing directory, or a file where one is expected.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", dir)
	case err != nil:
		return fmt.Errorf("cannot open %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory (want a walq queue directory)", dir)
	}
	return nil
}

// explained is an error reworded for people: Error is the new text, and
// errors.Is and errors.As still see the original.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

func explain(err error, format string, args ...any) error {
	return &explained{msg: fmt.Sprintf(format, args...), err: err}
}

// openError turns an error from opening dir into one line that says what
// is wrong and what to do.
func openError(dir string, err error) error {
	var locked *wlog.LockedError
	var corrupt *wlog.CorruptError
	switch {
	case errors.As(err, &locked):
		if locked.PID > 0 {
			return explain(err, "%s is in use by another process (pid %d); %s", dir, locked.PID, readOnlyHint)
		}
		return explain(err, "%s is in use by another process; %s", dir, readOnlyHint)
	case errors.Is(err, wlog.ErrVersion):
		return explain(err, "%s was written by a newer walq; upgrade walq to open it", dir)
	case errors.As(err, &corrupt):
		return explain(err, "%s: %s; 'walq check %s' shows details, 'walq salvage %s' keeps the valid prefix",
			dir, corruptText(corrupt), dir, dir)
	case errors.Is(err, wlog.ErrNotLog):
		return explain(err, "%s is not a walq queue (it has no FORMAT file)", dir)
	case errors.Is(err, queue.ErrInconsistent):
		return explain(err, "%s: the log's records do not fit together (%s); run 'walq check %s'", dir, oneLine(err), dir)
	case errors.Is(err, fs.ErrPermission):
		return explain(err, "cannot open %s: permission denied", dir)
	}
	return explain(err, "cannot open %s: %s", dir, oneLine(err))
}

// corruptText describes a corruption by its location, without the
// package prefix.
func corruptText(c *wlog.CorruptError) string {
	s := "corrupt log at"
	if c.Segment != "" {
		s += " segment " + c.Segment
	}
	if c.Offset >= 0 {
		s += fmt.Sprintf(" offset %d", c.Offset)
	}
	if c.Index != 0 {
		s += fmt.Sprintf(" index %d", c.Index)
	}
	if c.Record >= 0 {
		s += fmt.Sprintf(" record %d", c.Record)
	}
	s += ": " + c.Reason
	if c.Err != nil {
		s += ": " + oneLine(c.Err)
	}
	return s
}

// jobError explains an error about one job (id 0 when the error names
// the job itself).
func jobError(dir string, id uint64, err error) error {
	switch {
	case errors.Is(err, queue.ErrNotFound) && id != 0:
		return fmt.Errorf("job %d not found in %s (never enqueued, or purged)", id, dir)
	case errors.Is(err, queue.ErrNotFound):
		return fmt.Errorf("%s in %s (never enqueued, or purged)", oneLine(err), dir)
	case errors.Is(err, queue.ErrState):
		return errors.New(oneLine(err))
	}
	return err
}
