package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

// TestAdminSocket runs the change commands against a directory an app
// holds: the app serves its admin socket, and each command goes through it
// and prints what it prints when it holds the lock itself.
func TestAdminSocket(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	fill(t, q, mc)
	admin, err := web.ServeAdmin(q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	st, err := os.Stat(filepath.Join(dir, web.AdminSocket))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v, want a socket with 0600", st.Mode())
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"requeue", dir, fmt.Sprint(jobDead)}, 0, fmt.Sprintf("requeued 1 job: %d\n", jobDead)},
		{[]string{"requeue", dir, fmt.Sprint(jobReady)}, 1, fmt.Sprintf("walq: job %d is ready; only dead jobs can be requeued; nothing changed\n", jobReady)},
		{[]string{"cancel", dir, fmt.Sprint(jobScheduled)}, 0, fmt.Sprintf("cancelled 1 job: %d\n", jobScheduled)},
		{[]string{"pause", dir, "emails"}, 0, "paused queue emails\n"},
		{[]string{"resume", dir, "emails"}, 0, "resumed queue emails\n"},
		{[]string{"pause", dir, "reports", "--json"}, 0, "{\n  \"queue\": \"reports\",\n  \"paused\": true\n}\n"},
		{[]string{"enqueue", dir, "--queue", "emails", "--key", "k9", "--data", "hi"}, 0, "enqueued job 8 in queue emails\n"},
		{[]string{"enqueue", dir, "--key", "k9", "--data", "hi"}, 0, "duplicate: key \"k9\" is held by job 8 in queue emails; nothing enqueued\n"},
		{[]string{"purge", dir, fmt.Sprint(jobCancelled), "--json"}, 0, fmt.Sprintf("{\n  \"dry_run\": false,\n  \"count\": 1,\n  \"ids\": [\n    %d\n  ]\n}\n", jobCancelled)},
		{[]string{"compact", dir, "--json"}, 0, `"segments_removed"`},
		// The socket in the directory bothers no reader.
		{[]string{"check", dir}, 0, "OK"},
		{[]string{"stats", dir}, 0, "emails"},
	} {
		r := walqAt(t, mc, tc.args...)
		got := r.stdout
		if r.code != 0 {
			got = r.stderr
		}
		if r.code != tc.code || !strings.Contains(got, tc.out) {
			t.Errorf("walq %v: %s\nwant exit %d and %q", tc.args, r, tc.code, tc.out)
		}
	}
	ctx := context.Background()
	for id, want := range map[uint64]queue.JobState{jobDead: queue.StateReady, jobScheduled: queue.StateCancelled, jobReady: queue.StateReady} {
		if j, err := q.Get(ctx, id); err != nil || j.State != want {
			t.Errorf("job %d: %v %v, want %s", id, j.State, err, want)
		}
	}
	if stats, _ := q.Stats(ctx); !stats.Queues["reports"].Paused || stats.Queues["emails"].Paused {
		t.Errorf("paused: emails %v reports %v", stats.Queues["emails"].Paused, stats.Queues["reports"].Paused)
	}
	j, err := q.Get(ctx, jobDead)
	if err != nil || j.History[len(j.History)-1].Outcome != "requeued" {
		t.Errorf("the requeue is not in the job's history: %+v %v", j, err)
	}
	// Closed, the socket is gone and the commands say how to enable it.
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, web.AdminSocket)); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	r := walqAt(t, mc, "requeue", dir, "--all")
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another process") || !strings.Contains(r.stderr, "web.ServeAdmin") {
		t.Errorf("without the socket: %s", r)
	}
}

// TestWebAPIShapes checks that the dashboard's JSON API answers in the
// shapes of walq's --json output, byte for byte.
func TestWebAPIShapes(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	q, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	h := web.Handler(q, nil)
	for _, tc := range []struct {
		cli  []string
		path string
	}{
		{[]string{"stats", dir, "--json"}, "/api/stats"},
		{[]string{"jobs", dir, "--json", "--limit", "0"}, "/api/jobs?limit=1000"},
		{[]string{"jobs", dir, "--json", "--state", "ready"}, "/api/jobs?state=ready"},
		{[]string{"dead", dir, "--json"}, "/api/dead"},
	} {
		r := walqAt(t, mc, tc.cli...)
		wantCode(t, r, 0)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Body.String() != r.stdout {
			t.Errorf("GET %s differs from walq %v:\n--- api:\n%s--- walq:\n%s", tc.path, tc.cli, rec.Body, r.stdout)
		}
	}
	// show --json has the job's log records besides; the rest is the same.
	r := walqAt(t, mc, "show", dir, fmt.Sprint(jobCompleted), "--json")
	wantCode(t, r, 0)
	var cli, api map[string]any
	json.Unmarshal([]byte(r.stdout), &cli)
	delete(cli, "records")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/api/jobs/%d", jobCompleted), nil))
	json.Unmarshal(rec.Body.Bytes(), &api)
	if !reflect.DeepEqual(cli, api) {
		t.Errorf("api/jobs/%d differs from show --json:\n%v\n%v", jobCompleted, api, cli)
	}
}

// TestWebCommand serves a directory with walq web and reads the
// dashboard from it.
func TestWebCommand(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := newSyncBuffer("Ctrl-C stops")
	var errb syncBuffer
	a := testApp(ctx, mc, out, &errb)
	code := make(chan int, 1)
	go func() { code <- a.main([]string{"web", dir, "--addr", "127.0.0.1:0"}) }()
	select {
	case <-out.found:
	case c := <-code:
		t.Fatalf("walq web exited %d: %s %s", c, out, errb.String())
	}
	url := strings.Fields(strings.SplitN(out.String(), " at ", 2)[1])[0]
	resp, err := http.Get(url + "api/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := walqAt(t, mc, "stats", dir, "--json")
	if string(body) != r.stdout {
		t.Errorf("walq web's api/stats:\n%s\nwant\n%s", body, r.stdout)
	}
	resp, err = http.Post(url+"api/compact", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only walq web accepted a change: %s", resp.Status)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("walq web exited %d: %s", c, errb.String())
	}
	if !strings.Contains(out.String(), "http://127.0.0.1:") || !strings.Contains(out.String(), "read-only") {
		t.Errorf("output: %s", out)
	}
}
