package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/walq/walq/web"
)

var webCmd = &command{
	name:    "web",
	args:    "DIR",
	group:   "Inspect (read-only, safe while an app runs)",
	summary: "serve a dashboard of the queue in a browser",
	help: `Serve the walq dashboard (package web) for DIR: every named queue's counts
and recent throughput and latency, jobs by state, a job's timeline and
payload, the dead-letter queue. It binds 127.0.0.1 unless --addr says
otherwise and has no login: anyone who can reach the address sees the
jobs. Without --write it opens DIR read-only, like the other inspect
commands, and follows the log live while an app writes it (it opens the
log again when it changes, at most once a second). With --write it takes
the write lock, as the change commands do, and its pages can requeue,
cancel, purge, pause, resume and compact.

An app can mount the same dashboard on its own server (web.Handler) and
serve an admin socket in DIR (web.ServeAdmin) through which walq's change
commands work while it runs.`,
	example: `walq web /var/lib/myapp/queue
walq web /var/lib/myapp/queue --addr 127.0.0.1:9000 --write`,
	run: runWeb,
}

func runWeb(a *app, c *command, args []string) error {
	fs := flagSet(c)
	addr := fs.String("addr", "127.0.0.1:8080", "listen on this `host:port`")
	write := fs.Bool("write", false, "take the write lock and enable changes from the pages")
	dir, err := a.parseDir(c, fs, args)
	if err != nil {
		return err
	}
	var h http.Handler
	mode := "read-only, following the log"
	if *write {
		q, err := a.openWriter(dir)
		if isLocked(err) {
			return explain(err, "%s is in use by another process; walq web --write needs the write lock: drop --write to watch it read-only, or mount web.Handler with Options.Write in the app", dir)
		}
		if err != nil {
			return err
		}
		defer q.Close()
		h, mode = web.Handler(q, &web.Options{Write: true}), "read-write"
	} else {
		if err := checkQueueDir(a, dir); err != nil {
			return err
		}
		f, err := web.Follow(dir, &web.Options{Clock: a.clock})
		if err != nil {
			return openError(dir, err)
		}
		defer f.Close()
		h = f
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if host, _, err := net.SplitHostPort(*addr); err == nil {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			fmt.Fprintf(a.stderr, "walq: warning: %s is reachable from other machines and the dashboard has no login\n", ln.Addr())
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(a.stdout, "serving %s at http://%s/ (%s); Ctrl-C stops\n", dir, ln.Addr(), mode)
	select {
	case err := <-done:
		return err
	case <-a.ctx.Done():
	}
	// Event streams never end by themselves: give requests a moment,
	// then cut them off.
	ctx, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
