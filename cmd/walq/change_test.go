package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// jobState returns a job's state as walq jobs --json reports it.
func jobState(t *testing.T, mc *clock.Mock, dir string, id uint64) string {
	t.Helper()
	r := walqAt(t, mc, "jobs", dir, "--json", "--limit", "0")
	wantCode(t, r, 0)
	var out jobListJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	for _, j := range out.Jobs {
		if j.ID == id {
			return j.State
		}
	}
	return "gone"
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	mc := newMock()
	dir := filepath.Join(t.TempDir(), "new")
	r := walqAt(t, mc, "enqueue", dir, "--create", "--queue", "mail", "--key", "k1", "--data", "hello")
	wantCode(t, r, 0)
	if r.stdout != "enqueued job 1 in queue mail\n" {
		t.Errorf("enqueue: %s", r)
	}
	r = walqAt(t, mc, "enqueue", dir, "--queue", "mail", "--key", "k1", "--data", "again", "--json")
	wantCode(t, r, 0)
	var res enqueueJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res != (enqueueJSON{ID: 1, Queue: "mail", Duplicate: true}) {
		t.Errorf("duplicate enqueue: %+v %v %s", res, err, r)
	}
	r = walqAt(t, mc, "enqueue", dir, "--queue", "mail", "--key", "k1", "--data", "again")
	if !strings.Contains(r.stdout, `duplicate: key "k1" is held by job 1`) {
		t.Errorf("duplicate enqueue: %s", r)
	}

	// From standard input, delayed.
	var out, errb strings.Builder
	a := testApp(t.Context(), mc, &out, &errb)
	a.stdin = strings.NewReader("from stdin\x00")
	if code := a.main([]string{"enqueue", dir, "-", "--delay", "1d2h"}); code != 0 {
		t.Fatalf("enqueue -: exit %d: %s", code, errb.String())
	}
	r = walqAt(t, mc, "show", dir, "2", "--json")
	wantCode(t, r, 0)
	var show showJSON
	if err := json.Unmarshal([]byte(r.stdout), &show); err != nil {
		t.Fatal(err)
	}
	if show.State != "scheduled" || show.Payload.Encoding != "base64" || show.Payload.Size != 11 ||
		*show.RunAt != epoch.Add(26*time.Hour).Format(time.RFC3339Nano) || show.Queue != "default" {
		t.Errorf("job from stdin: %+v %+v", show.jobJSON, show.Payload)
	}
	// --create on an existing queue is fine.
	wantCode(t, walqAt(t, mc, "enqueue", dir, "--create", "--data", "x"), 0)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "cancel", dir, fmt.Sprint(jobScheduled))
	wantCode(t, r, 0)
	if r.stdout != "cancelled 1 job: 5\n" {
		t.Errorf("cancel: %s", r)
	}
	if s := jobState(t, mc, dir, jobScheduled); s != "cancelled" {
		t.Errorf("job %d is %s after cancel", jobScheduled, s)
	}
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "requeue", dir, fmt.Sprint(jobDead), "--to", "retry", "--delay", "1m")
	wantCode(t, r, 0)
	if r.stdout != "requeued 1 job: 3\n" {
		t.Errorf("requeue: %s", r)
	}
	if s := jobState(t, mc, dir, jobDead); s != "scheduled" {
		t.Errorf("job %d is %s after requeue", jobDead, s)
	}
	r = walqAt(t, mc, "requeue", dir, "--all")
	wantCode(t, r, 0)
	if r.stdout != "requeued 0 jobs\n" {
		t.Errorf("requeue --all with none dead: %s", r)
	}
}

func TestRequeueAll(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "requeue", dir, "--all", "--queue", "emails")
	wantCode(t, r, 0)
	if r.stdout != "requeued 1 job: 3\n" {
		t.Errorf("requeue --all: %s", r)
	}
	if s := jobState(t, mc, dir, jobDead); s != "ready" {
		t.Errorf("job %d is %s after requeue --all", jobDead, s)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	// The dead job died at epoch+2.6s; the clock is at epoch+10s.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--older-than", "1h"}, "purged 0 dead jobs\n"},
		{[]string{"--queue", "reports"}, "purged 0 dead jobs\n"},
		{[]string{"--error", "timeout"}, "purged 0 dead jobs\n"},
		{[]string{"--older-than", "5s", "--dry-run"}, "would purge 1 dead job: 3 (dry run: nothing changed)\n"},
		{[]string{"--older-than", "5s", "--error", "no such user"}, "purged 1 dead job: 3\n"},
	} {
		r := walqAt(t, mc, append([]string{"purge", dir, "--dead"}, tc.args...)...)
		wantCode(t, r, 0)
		if r.stdout != tc.want {
			t.Errorf("purge --dead %v: want %q, got %s", tc.args, tc.want, r)
		}
	}
	if s := jobState(t, mc, dir, jobDead); s != "gone" {
		t.Errorf("job %d is %s after purge", jobDead, s)
	}
	r := walqAt(t, mc, "purge", dir, fmt.Sprint(jobCompleted), fmt.Sprint(jobCancelled), "--dry-run")
	wantCode(t, r, 0)
	r = walqAt(t, mc, "purge", dir, fmt.Sprint(jobCompleted), fmt.Sprint(jobCancelled))
	wantCode(t, r, 0)
	if r.stdout != "purged 2 jobs: 1, 7\n" || jobState(t, mc, dir, jobCompleted) != "gone" {
		t.Errorf("purge IDs: %s", r)
	}
}

func TestCompact(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "compact", dir, "--json")
	wantCode(t, r, 0)
	var st compactJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	r = walqAt(t, mc, "compact", dir)
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "compacted in ") {
		t.Errorf("compact: %s", r)
	}
	wantCode(t, walqAt(t, mc, "check", dir), 0)
}

// TestChangeCommandsAgree checks the one rule of cancel, requeue and
// purge: every named job is checked first and one that cannot change
// stops them all; --dry-run changes nothing; --json reports the same.
func TestChangeCommandsAgree(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cmd      string
		good     uint64 // a job the command can change
		bad      uint64 // one it cannot
		before   string // good's state before
		after    string // and after
		wantText string
	}{
		{"cancel", jobScheduled, jobCompleted, "scheduled", "cancelled", "only ready or scheduled jobs can be cancelled; nothing changed"},
		{"requeue", jobDead, jobReady, "dead", "ready", "only dead jobs can be requeued; nothing changed"},
		{"purge", jobCancelled, jobReady, "cancelled", "gone", "only finished jobs (dead, completed, cancelled) can be purged; nothing changed"},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			t.Parallel()
			dir, mc := fixture(t)
			good, bad := fmt.Sprint(tc.good), fmt.Sprint(tc.bad)
			r := walqAt(t, mc, tc.cmd, dir, good, bad)
			wantCode(t, r, 1)
			if want := fmt.Sprintf("walq: job %s is ", bad); !strings.HasPrefix(dropWarnings(r.stderr), want) || !strings.Contains(r.stderr, tc.wantText) {
				t.Errorf("%s %s %s: want %q…%q, got %s", tc.cmd, good, bad, want, tc.wantText, r)
			}
			r = walqAt(t, mc, tc.cmd, dir, good, "999")
			wantCode(t, r, 1)
			if !strings.Contains(r.stderr, "job 999 not found in "+dir) || !strings.Contains(r.stderr, "nothing changed") {
				t.Errorf("%s with an unknown ID: %s", tc.cmd, r)
			}
			if s := jobState(t, mc, dir, tc.good); s != tc.before {
				t.Fatalf("job %s is %s after a refused %s; want %s", good, s, tc.cmd, tc.before)
			}
			before := hashDir(t, dir)
			r = walqAt(t, mc, tc.cmd, dir, good, good, "--dry-run", "--json")
			wantCode(t, r, 0)
			var out changeJSON
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatal(err)
			}
			if !out.DryRun || out.Count != 1 || len(out.IDs) != 1 || out.IDs[0] != tc.good {
				t.Errorf("%s --dry-run --json: %+v", tc.cmd, out)
			}
			sameDir(t, before, hashDir(t, dir), tc.cmd+" --dry-run")
			r = walqAt(t, mc, tc.cmd, dir, good, "--json")
			wantCode(t, r, 0)
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatal(err)
			}
			if out.DryRun || out.Count != 1 || out.IDs[0] != tc.good {
				t.Errorf("%s --json: %+v", tc.cmd, out)
			}
			if s := jobState(t, mc, dir, tc.good); s != tc.after {
				t.Errorf("job %s is %s after %s; want %s", good, s, tc.cmd, tc.after)
			}
		})
	}
}
