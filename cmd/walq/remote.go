package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/web"
)

// When an app holds a directory's lock, a change command cannot open it;
// if the app serves its admin socket (web.ServeAdmin), the command sends
// the change there instead, as one call of the queue's API in the app, and
// prints what that call did exactly as it prints its own changes.

// adminHint says how to make change commands work beside a running app.
const adminHint = "to run change commands while it runs, have the app serve its admin socket (web.ServeAdmin; see 'walq web --help')"

// isLocked reports an open that failed because another process holds the
// directory.
func isLocked(err error) bool {
	var locked *wlog.LockedError
	return errors.As(err, &locked)
}

// remote is the admin socket of the process that holds a directory.
type remote struct {
	dir    string
	client *http.Client
}

// adminOf returns the admin socket of dir when err says another process
// holds it and that process serves one; otherwise err, with the hint on
// how to enable the socket when the directory is locked.
func (a *app) adminOf(dir string, err error) (*remote, error) {
	if !isLocked(err) {
		return nil, err
	}
	path := filepath.Join(dir, web.AdminSocket)
	if st, serr := os.Stat(path); serr != nil || st.Mode().Type() != os.ModeSocket {
		return nil, explain(err, "%s; %s", err.Error(), adminHint)
	}
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "unix", path)
	}}
	return &remote{dir: dir, client: &http.Client{Transport: tr}}, nil
}

// call posts a change to the app and decodes its answer into out.
func (r *remote) call(ctx context.Context, action string, req web.ActionRequest, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://walq/api/"+action, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(hr)
	if err != nil {
		return fmt.Errorf("%s is in use by another process, and its admin socket does not answer: %w", r.dir, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("admin socket of %s: %w", r.dir, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e web.ErrorJSON
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			return fmt.Errorf("admin socket of %s: %s", r.dir, resp.Status)
		}
		return errors.New(oneLine(errors.New(e.Error)))
	}
	return json.Unmarshal(b, out)
}

// change sends a requeue, cancel or purge to the app and reports it as
// the command would have.
func (a *app) remoteChange(r *remote, action string, req web.ActionRequest, c change) error {
	var out web.ChangeJSON
	if err := r.call(a.ctx, action, req, &out); err != nil {
		return err
	}
	return a.report(c, out.IDs)
}
