package web

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Follower serves the dashboard of a queue directory that another process
// may be writing: it opens the directory read-only and opens it again when
// the log has changed, at most once per FollowEvery, when a request comes.
// It is read-only whatever Options.Write says. It is safe for concurrent
// use; Close it when done.
type Follower struct {
	dir   string
	clock clock.Clock
	h     *handler

	mu      sync.Mutex
	cur     *opened
	checked time.Time
	sig     string
	closed  bool
}

// FollowEvery is the least time between two looks at a followed
// directory's files; a look that finds the log changed replays it (a
// read-only Open), which for a large log costs what Open costs.
const FollowEvery = time.Second

// opened is one read-only open, with the requests using it.
type opened struct {
	q       *queue.Queue
	refs    int
	retired bool
}

// Follow opens dir read-only and returns a handler that follows it. opts
// are Handler's; Write is ignored.
func Follow(dir string, opts *Options) (*Follower, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Write = false
	f := &Follower{dir: dir, clock: o.Clock}
	sig, err := signature(dir)
	if err != nil {
		return nil, err
	}
	q, err := openReadOnly(dir, o.Clock)
	if err != nil {
		return nil, err
	}
	f.cur, f.sig, f.checked = &opened{q: q}, sig, time.Now()
	f.h = newHandler(f, &o)
	return f, nil
}

// ServeHTTP serves the dashboard.
func (f *Follower) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.h.ServeHTTP(w, r) }

// Close closes the queue once the requests using it are done; afterwards
// every request fails with queue.ErrClosed.
func (f *Follower) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return f.retire(f.cur)
}

// acquire returns the latest open, first opening the directory again if
// its files changed since the last look.
func (f *Follower) acquire() (queue.Engine, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, nil, queue.ErrClosed
	}
	if time.Since(f.checked) >= FollowEvery {
		f.checked = time.Now()
		if sig, err := signature(f.dir); err == nil && sig != f.sig {
			// A failed reopen (a compaction racing the replay past its
			// retries) keeps serving the last good open; the next look
			// tries again.
			if q, err := openReadOnly(f.dir, f.clock); err == nil {
				f.retire(f.cur)
				f.cur, f.sig = &opened{q: q}, sig
			}
		}
	}
	o := f.cur
	o.refs++
	return o.q, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		o.refs--
		if o.retired && o.refs == 0 {
			o.q.Close()
		}
	}, nil
}

// retire closes o now if no request uses it, else when the last one is
// done. f.mu is held.
func (f *Follower) retire(o *opened) error {
	o.retired = true
	if o.refs == 0 {
		return o.q.Close()
	}
	return nil
}

// signature names the directory's files with their sizes and times: it
// changes whenever the writer appends, compacts or records a failure.
func signature(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a compaction as we looked
		}
		if err != nil {
			return "", err
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%d", e.Name(), info.Size(), info.ModTime().UnixNano()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ";"), nil
}

// openReadOnly opens dir for reading, trying again when a compaction of
// the writer removed a segment file under the replay.
func openReadOnly(dir string, c clock.Clock) (*queue.Queue, error) {
	for attempt := 1; ; attempt++ {
		q, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: c, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return q, err
		}
	}
}
