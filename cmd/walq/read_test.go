package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestReadGolden checks the human and JSON output of the read commands
// against testdata/*.golden.
func TestReadGolden(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"stats", []string{"stats", dir}},
		{"stats.json", []string{"stats", dir, "--json"}},
		{"jobs", []string{"jobs", dir}},
		{"jobs.json", []string{"jobs", "--json", dir}},
		{"jobs_emails_limit", []string{"jobs", dir, "--queue", "emails", "--limit", "2"}},
		{"jobs_scheduled", []string{"jobs", dir, "--state", "scheduled"}},
		{"jobs_key", []string{"jobs", dir, "--key", "nightly"}},
		{"jobs_key_none.json", []string{"jobs", dir, "--key", "no-such-key", "--json"}},
		{"show_retried", []string{"show", dir, fmt.Sprint(jobRetried)}},
		{"show_retried.json", []string{"show", dir, fmt.Sprint(jobRetried), "--json"}},
		{"show_binary", []string{"show", dir, fmt.Sprint(jobReady)}},
		{"show_leased", []string{"show", dir, fmt.Sprint(jobLeased)}},
		{"dead", []string{"dead", dir}},
		{"dead.json", []string{"dead", dir, "--json"}},
		{"log", []string{"log", dir}},
		{"log.jsonl", []string{"log", dir, "--json", "--from", "10"}},
		{"log_job", []string{"log", dir, "--job", fmt.Sprint(jobDead)}},
		{"check", []string{"check", dir}},
		{"check.json", []string{"check", dir, "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := walqAt(t, mc, tc.args...)
			wantCode(t, r, 0)
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
			if strings.Contains(tc.name, "json") {
				mustJSON(t, r.stdout)
			}
			golden(t, tc.name, dir, r.stdout)
		})
	}
}

// mustJSON fails unless s is one JSON document or JSON Lines.
func mustJSON(t *testing.T, s string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON: %v\n%s", err, s)
		}
	}
}

// TestFlagsAfterDir checks that flags may follow DIR.
func TestFlagsAfterDir(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	before := walqAt(t, mc, "jobs", "--state", "dead", "--json", dir)
	after := walqAt(t, mc, "jobs", dir, "--state", "dead", "--json")
	eq := walqAt(t, mc, "jobs", dir, "--state=dead", "--json")
	wantCode(t, before, 0)
	if before.stdout != after.stdout || before.stdout != eq.stdout {
		t.Fatalf("flag position changes the output:\n%s\n%s\n%s", before.stdout, after.stdout, eq.stdout)
	}
	var out jobListJSON
	if err := json.Unmarshal([]byte(before.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Jobs) != 1 || out.Jobs[0].ID != jobDead || out.Jobs[0].State != "dead" {
		t.Fatalf("jobs --state dead: %+v", out.Jobs)
	}
}

// TestShowPayloadOut checks that --payload-out saves the exact bytes.
func TestShowPayloadOut(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	file := filepath.Join(t.TempDir(), "payload.bin")
	r := walqAt(t, mc, "show", dir, fmt.Sprint(jobReady), "--payload-out", file)
	wantCode(t, r, 0)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "\x00\x01\xfe\xffrpt" {
		t.Fatalf("payload file holds %q", b)
	}
	r = walqAt(t, mc, "show", dir, fmt.Sprint(jobRetried), "--payload-out", "-")
	wantCode(t, r, 0)
	if r.stdout != `{"to":"user2@example.com","template":"welcome"}` {
		t.Fatalf("--payload-out - printed %q", r.stdout)
	}
}

// readCommands are the read-only invocations run against a live queue.
func readCommands(dir string) [][]string {
	return [][]string{
		{"stats", dir}, {"stats", dir, "--json"},
		{"jobs", dir, "--limit", "0"}, {"jobs", dir, "--json"},
		{"show", dir, "1"}, {"show", dir, "1", "--json"},
		{"dead", dir}, {"dead", dir, "--json"},
		{"log", dir}, {"log", dir, "--json"},
		{"check", dir}, {"check", dir, "--json"},
		{"schedules", dir}, {"schedules", dir, "--json"},
	}
}

// TestReadOnlyWhileRunning runs every read command while a writer holds
// the queue open: they succeed, take no lock, and change no byte; and they
// keep working while the writer appends.
func TestReadOnlyWhileRunning(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	fill(t, q, mc)

	before := hashDir(t, dir)
	for _, args := range readCommands(dir) {
		r := walqAt(t, mc, args...)
		wantCode(t, r, 0)
		if args[0] == "check" && !strings.Contains(r.stdout, "OK") && !strings.Contains(r.stdout, `"ok": true`) {
			t.Errorf("check on a healthy live queue: %s", r)
		}
	}
	sameDir(t, before, hashDir(t, dir), "read commands")

	// The writer keeps appending while the read commands run.
	ctx := context.Background()
	const more = 150
	var wg sync.WaitGroup
	wg.Add(1)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range more {
			if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "live", Payload: []byte(strings.Repeat("x", i))}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	cmds := readCommands(dir)
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			r := walqAt(t, mc, cmds[i%len(cmds)]...)
			if r.code != 0 {
				t.Fatalf("%v while the writer appends: %s", cmds[i%len(cmds)], r)
			}
			continue
		}
		break
	}
	wg.Wait()
	r := walqAt(t, mc, "stats", dir, "--json")
	wantCode(t, r, 0)
	var st statsJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Queues) != 3 || st.Queues[1].Name != "live" || st.Queues[1].Ready != more {
		t.Fatalf("stats after the writer finished: %+v", st.Queues)
	}
}

// TestLogFollow tails a live queue and sees a record appended after it
// started; cancelling its context (Ctrl-C) ends it with exit 0.
func TestLogFollow(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	fill(t, q, mc)

	for _, asJSON := range []bool{false, true} {
		key := fmt.Sprintf("follow-me-%v", asJSON)
		out := newSyncBuffer(key)
		started := newSyncBuffer("cancelled") // the fixture's last record
		ctx, cancel := context.WithCancel(context.Background())
		a := testApp(ctx, mc, teeWriter{out, started}, out)
		args := []string{"log", dir, "--follow"}
		if asJSON {
			args = append(args, "--json")
		}
		code := make(chan int, 1)
		go func() { code <- a.main(args) }()
		select {
		case <-started.found:
		case <-time.After(10 * time.Second):
			t.Fatalf("log --follow printed nothing: %s", out)
		}
		if _, err := q.Enqueue(context.Background(), queue.NewJob{Key: key}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-out.found:
		case <-time.After(10 * time.Second):
			t.Fatalf("log --follow did not show the new record:\n%s", out)
		}
		cancel()
		if c := <-code; c != 0 {
			t.Fatalf("log --follow exited %d: %s", c, out)
		}
		if asJSON {
			mustJSON(t, out.String())
		}
	}
}

// teeWriter writes to two writers.
type teeWriter struct{ a, b *syncBuffer }

func (w teeWriter) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}
