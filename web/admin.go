package web

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/walq/walq/queue"
)

// AdminSocket is the name of the Unix socket ServeAdmin creates in the
// queue's directory; the walq command's change commands look for it when
// the directory is locked by the app.
const AdminSocket = "admin.sock"

// Admin is an admin endpoint: the JSON API (and the pages), writes
// enabled, on a Unix socket only the app's user can connect to.
type Admin struct {
	path string
	srv  *http.Server
	done chan error

	once sync.Once
	err  error
}

// ServeAdmin serves q's JSON API with writes enabled on the Unix socket
// AdminSocket in q's directory, created with permissions 0600 so that only
// the app's user (and root) can connect: the file's permissions are the
// authentication. With it the walq command's change commands (requeue,
// cancel, purge, enqueue, compact, pause, resume) work while the app holds
// the directory, each as one call of q's API in the app. q must be open
// for writing. A socket left by a process that died is replaced: the
// caller holds the directory's lock, so no other process serves it. Close
// stops serving and removes the socket.
func ServeAdmin(q *queue.Queue) (*Admin, error) {
	if q.Options().ReadOnly {
		return nil, fmt.Errorf("web: admin socket: %w", queue.ErrReadOnly)
	}
	path := filepath.Join(q.Dir(), AdminSocket)
	// Bind under a temporary name, restrict it, then rename it into
	// place: the socket is never reachable with looser permissions.
	tmp := filepath.Join(q.Dir(), fmt.Sprintf(".%s.%d.tmp", AdminSocket, os.Getpid()))
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("web: admin socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("web: admin socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Admin, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("web: admin socket: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	a := &Admin{path: path, done: make(chan error, 1),
		srv: &http.Server{Handler: Handler(q, &Options{Write: true}), ReadHeaderTimeout: 10 * time.Second}}
	go func() { a.done <- a.srv.Serve(ln) }()
	return a, nil
}

// Path returns the socket's path.
func (a *Admin) Path() string { return a.path }

// Close stops serving at once (requests in progress are cut off; each
// change they made is durable or not, as an interrupted API call's) and
// removes the socket file. Call it before closing the queue. Calling it
// again returns the first call's error.
func (a *Admin) Close() error {
	a.once.Do(func() { a.err = a.close() })
	return a.err
}

func (a *Admin) close() error {
	err := a.srv.Close()
	if rerr := os.Remove(a.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	if serr := <-a.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
