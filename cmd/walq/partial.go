package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/recovery"
)

// A corrupt log (or one whose records do not replay) cannot be opened as
// a queue. With --partial the read commands show its valid prefix
// instead: the entries 'walq salvage' would keep, marked as partial. The
// directory itself is never written: log reads the prefix in place
// (wlog.OpenPrefix); stats, jobs, show and dead open a queue on a copy of
// the prefix in a temporary directory, removed when walq exits.

// partialJSON marks output that shows only the valid prefix of a damaged
// log.
type partialJSON struct {
	// LastIndex is the last log entry shown; later ones are not.
	LastIndex uint64 `json:"last_index"`
	// Reason is why the log stops there: the corruption, or the record
	// that does not replay.
	Reason string `json:"reason"`
}

// partialText is the line that marks partial text output.
func partialText(p *partialJSON) string {
	return fmt.Sprintf("PARTIAL: only log entries up to index %d are shown; the log stops there: %s", p.LastIndex, p.Reason)
}

// partialFlag defines --partial on a read command.
func partialFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("partial", false, "if the log is damaged, read its valid prefix (what 'walq salvage' keeps), marked as partial")
}

// markPartial prints the partial marker before text output.
func (a *app) markPartial(p *partialJSON) {
	if p != nil {
		fmt.Fprintln(a.stdout, paint(a.stdout, red, partialText(p)))
	}
}

// readView is a queue opened for a read command: the directory itself,
// or a copy of its valid prefix.
type readView struct {
	q *queue.Queue
	// dir is where the queue was opened: the directory, or the copy.
	dir     string
	partial *partialJSON
	tmp     string // the copy to remove, if any
	// stopWatch stops removeOnBrokenPipe's watch over tmp.
	stopWatch func()
}

func (v *readView) close() {
	v.q.Close()
	if v.tmp != "" {
		v.stopWatch()
		os.RemoveAll(v.tmp)
	}
}

// removeOnBrokenPipe removes tmp and exits as SIGPIPE would if a reader
// of walq's output goes away first ("walq jobs --partial | head"): the
// default SIGPIPE would end walq before it could remove its copy. The
// returned function stops watching.
func removeOnBrokenPipe(tmp string) (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, syscall.SIGPIPE)
	go func() {
		select {
		case <-ch:
			os.RemoveAll(tmp)
			os.Exit(128 + int(syscall.SIGPIPE))
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// openRead opens dir read-only; if that fails because the log is damaged
// and partial is set, it opens a copy of the log's valid prefix instead.
func (a *app) openRead(dir string, partial bool) (*readView, error) {
	q, err := a.openReadOnly(dir)
	if err == nil {
		return &readView{q: q, dir: dir}, nil
	}
	if !damaged(err) {
		return nil, err
	}
	if !partial {
		return nil, fmt.Errorf("%w; --partial reads the valid prefix", err)
	}
	return a.openPrefixCopy(dir)
}

// damaged reports an open error about the log's contents: corruption, or
// records that do not replay.
func damaged(err error) bool {
	return errors.Is(err, wlog.ErrCorrupt) && !errors.Is(err, wlog.ErrVersion) || errors.Is(err, queue.ErrInconsistent)
}

// openPrefixCopy copies the valid prefix of dir's log into a temporary
// directory, cuts it further to the prefix that replays (as salvage
// would, on the copy), and opens a read-only queue there.
func (a *app) openPrefixCopy(dir string) (*readView, error) {
	l, pr, err := wlog.OpenPrefix(dir)
	if err != nil {
		return nil, openError(dir, err)
	}
	l.Close()
	tmp, err := os.MkdirTemp("", "walq-partial-")
	if err != nil {
		return nil, err
	}
	v := &readView{dir: tmp, tmp: tmp, stopWatch: removeOnBrokenPipe(tmp)}
	if err := copyPrefix(dir, tmp, pr); err != nil {
		v.stopWatch()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("copy the valid prefix of %s: %w", dir, err)
	}
	rep, err := recovery.Salvage(tmp, false)
	if err != nil {
		v.stopWatch()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("cut the copy of %s to the prefix that replays: %s", dir, oneLine(err))
	}
	v.partial = &partialJSON{LastIndex: rep.KeptLast}
	switch {
	case rep.Unreplayable != nil:
		v.partial.Reason = "the next record does not replay: " + oneLine(rep.Unreplayable)
	case pr.Corruption != nil:
		v.partial.Reason = corruptText(pr.Corruption)
	}
	if v.q, err = queue.Open(tmp, &queue.Options{ReadOnly: true, Clock: a.clock, Logger: a.logger()}); err != nil {
		v.stopWatch()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("open the valid prefix of %s: %s", dir, oneLine(err))
	}
	return v, nil
}

// copyPrefix copies dir's FORMAT file and its segments up to the cut that
// pr reports (the cut segment up to the cut's offset) into dst.
func copyPrefix(dir, dst string, pr *wlog.PrefixReport) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var segs []string
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && len(e.Name()) == 20 && !e.IsDir() {
			segs = append(segs, e.Name())
		}
	}
	sort.Strings(segs) // 20 zero-padded digits sort as numbers
	if err := copyFile(filepath.Join(dir, "FORMAT"), filepath.Join(dst, "FORMAT"), -1); err != nil {
		return err
	}
	cut := filepath.Base(pr.Segment)
	for _, name := range segs {
		limit := int64(-1)
		if pr.Segment != "" && name == cut {
			limit = pr.Offset
		}
		if err := copyFile(filepath.Join(dir, name), filepath.Join(dst, name), limit); err != nil {
			return err
		}
		if name == cut {
			break
		}
	}
	return nil
}

// copyFile copies src to dst, at most limit bytes (all if negative).
func copyFile(src, dst string, limit int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	var r io.Reader = in
	if limit >= 0 {
		r = io.LimitReader(in, limit)
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
