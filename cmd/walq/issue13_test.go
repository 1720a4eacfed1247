package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/bench"
	"github.com/walq/walq/queue"
)

// TestEnqueueReportsRealQueue checks that enqueue names the queue the job
// is in: the holder's queue for a duplicate key, and the default queue
// for --queue "" (issue 13, bug 3).
func TestEnqueueReportsRealQueue(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	// welcome:1 is held by job 1, in queue emails.
	r := walqAt(t, mc, "enqueue", dir, "--key", "welcome:1", "--queue", "other", "--data", "x", "--json")
	wantCode(t, r, 0)
	var res enqueueJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res != (enqueueJSON{ID: jobCompleted, Queue: "emails", Duplicate: true}) {
		t.Errorf("duplicate enqueue --json: %+v", res)
	}
	r = walqAt(t, mc, "enqueue", dir, "--key", "welcome:1", "--queue", "other", "--data", "x")
	wantCode(t, r, 0)
	if want := "duplicate: key \"welcome:1\" is held by job 1 in queue emails; nothing enqueued\n"; r.stdout != want {
		t.Errorf("duplicate enqueue: want %q, got %s", want, r)
	}
	r = walqAt(t, mc, "enqueue", dir, "--queue", "", "--data", "x", "--json")
	wantCode(t, r, 0)
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Queue != "default" || res.Duplicate {
		t.Errorf("enqueue --queue \"\" --json: %+v", res)
	}
	r = walqAt(t, mc, "enqueue", dir, "--queue", "", "--data", "y")
	wantCode(t, r, 0)
	if want := fmt.Sprintf("enqueued job %d in queue default\n", res.ID+1); r.stdout != want {
		t.Errorf("enqueue --queue \"\": want %q, got %s", want, r)
	}
}

// TestShowAfterRequeue checks that a requeued job shows no finished_at
// (it is not finished) and that its attempts end in "requeued", an
// outcome cmd/walq/README.md documents (issue 13, bug 4).
func TestShowAfterRequeue(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	wantCode(t, walqAt(t, mc, "requeue", dir, fmt.Sprint(jobDead)), 0)
	r := walqAt(t, mc, "show", dir, fmt.Sprint(jobDead), "--json")
	wantCode(t, r, 0)
	var show showJSON
	if err := json.Unmarshal([]byte(r.stdout), &show); err != nil {
		t.Fatal(err)
	}
	if show.State != "ready" || show.FinishedAt != nil || show.RunAt == nil {
		t.Errorf("requeued job: state %s finished_at %v run_at %v", show.State, show.FinishedAt, show.RunAt)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	i := strings.Index(doc, "`outcome` is")
	if i < 0 {
		t.Fatal("README.md does not list the attempt outcomes")
	}
	doc = doc[i : i+strings.Index(doc[i:], ";")]
	for _, at := range show.Attempts {
		if !strings.Contains(doc, "`"+at.Outcome+"`") {
			t.Errorf("attempt outcome %q is not in README.md's list: %s", at.Outcome, doc)
		}
	}
	if len(show.Attempts) == 0 || show.Attempts[len(show.Attempts)-1].Outcome != "requeued" {
		t.Errorf("attempts after requeue: %+v", show.Attempts)
	}
}

// TestStatsOldestReadyNull checks that stats --json gives null, not 0, for
// a queue with no ready job, where the table shows "-".
func TestStatsOldestReadyNull(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	r := walqAt(t, mc, "stats", dir, "--json")
	wantCode(t, r, 0)
	var out struct {
		Queues []map[string]any `json:"queues"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	for _, q := range out.Queues {
		v, ok := q["oldest_ready_seconds"]
		if !ok {
			t.Errorf("queue %v has no oldest_ready_seconds", q["name"])
			continue
		}
		if q["ready"].(float64) == 0 && v != nil {
			t.Errorf("queue %v has no ready job but oldest_ready_seconds %v", q["name"], v)
		}
		if q["ready"].(float64) > 0 && v == nil {
			t.Errorf("queue %v has ready jobs but oldest_ready_seconds null", q["name"])
		}
	}
}

// TestPayloadOutRefusesOverwrite checks that show --payload-out keeps an
// existing file unless --force.
func TestPayloadOutRefusesOverwrite(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := walqAt(t, mc, "show", dir, fmt.Sprint(jobReady), "--payload-out", file)
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, file+" exists") || !strings.Contains(r.stderr, "--force") || r.stdout != "" {
		t.Errorf("payload-out over a file: %s", r)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Fatalf("payload-out overwrote the file: %q", b)
	}
	r = walqAt(t, mc, "show", dir, fmt.Sprint(jobReady), "--payload-out", file, "--force")
	wantCode(t, r, 0)
	if b, _ := os.ReadFile(file); string(b) != "\x00\x01\xfe\xffrpt" {
		t.Fatalf("payload-out --force wrote %q", b)
	}
}

// TestVersion checks walq version and walq --version.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := walq(t, "", args...)
		wantCode(t, r, 0)
		if !strings.HasPrefix(r.stdout, "walq ") || !strings.Contains(r.stdout, " go1.") || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("walq %v: %s", args, r)
		}
	}
	r := walq(t, "", "version", "--json")
	wantCode(t, r, 0)
	var v versionJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Module != "github.com/walq/walq" || v.Version == "" {
		t.Errorf("version --json: %+v %v", v, err)
	}
}

// TestOneLine checks that an error's nested package prefixes are printed
// once, at the start.
func TestOneLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"walq: lease expired: walq: lease lost: job 3":              "lease expired: lease lost: job 3",
		"walq: open D: walq/log: directory D is locked (pid 4)":     "open D: directory D is locked (pid 4)",
		"walq/recovery: replay D: walq/index: bad record (walq: x)": "replay D: bad record (x)",
	} {
		if got := oneLine(errors.New(in)); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCarryRecordStates checks that walq log names a carry record's state
// with the documented job states (ready, scheduled, …), never the log's
// internal "pending".
func TestCarryRecordStates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, &queue.Options{SegmentSize: 4096})
	for i := range 80 {
		nj := queue.NewJob{Queue: "emails", Payload: []byte(fmt.Sprintf("%03d %s", i, strings.Repeat("payload ", 10)))}
		if i%2 == 1 {
			nj.Delay = time.Hour
		}
		if _, err := q.Enqueue(t.Context(), nj); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, walqAt(t, mc, "compact", dir), 0)
	r := walqAt(t, mc, "log", dir, "--json")
	wantCode(t, r, 0)
	states := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var rec recordJSON
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind == "carry" {
			states[rec.State]++
		}
	}
	if states["ready"] == 0 || states["scheduled"] == 0 || len(states) != 2 {
		t.Errorf("carry records' states: %v; want ready and scheduled", states)
	}
	r = walqAt(t, mc, "log", dir)
	wantCode(t, r, 0)
	if strings.Contains(r.stdout, "state=pending") || !strings.Contains(r.stdout, "state=scheduled") {
		t.Errorf("walq log shows carry states other than the documented ones:\n%s", r.stdout)
	}
}

// TestUnknownQueueFilter checks that a --queue filter naming no queue
// says so and names the queues there are, on stderr, while the output
// stays what it was (empty).
func TestUnknownQueueFilter(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	for _, args := range [][]string{
		{"jobs", dir, "--queue", "nosuch"},
		{"jobs", dir, "--queue", "nosuch", "--json"},
		{"dead", dir, "--queue", "nosuch"},
		{"requeue", dir, "--all", "--queue", "nosuch"},
		{"purge", dir, "--dead", "--queue", "nosuch", "--dry-run"},
		{"purge", dir, "--dead", "--queue", "nosuch"},
	} {
		r := walqAt(t, mc, args...)
		wantCode(t, r, 0)
		want := `walq: note: there is no queue named "nosuch" in ` + dir + "; its queues are emails, reports\n"
		if dropWarnings(r.stderr) != want {
			t.Errorf("walq %v: want stderr %q, got %s", args[:1], want, r)
		}
	}
	r := walqAt(t, mc, "jobs", dir, "--queue", "reports")
	wantCode(t, r, 0)
	if r.stderr != "" {
		t.Errorf("jobs --queue reports: %s", r)
	}
}

// TestBenchTableNoTargets checks that walq bench's table reports figures
// and ratios to the machine's own limits, and judges nothing against
// walq's targets (which belong in BENCHMARKS.md): a report that misses
// them all prints no MISSED.
func TestBenchTableNoTargets(t *testing.T) {
	t.Parallel()
	rep := &bench.Report{
		Date:    time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: bench.Machine{OS: "linux", Arch: "amd64", CPUs: 2, GoVersion: "go1.26", Dir: "/tmp/b"},
		Runs:    1, Quick: true,
		Baseline: bench.Baseline{FsyncRate: bench.Stat{Median: 1000, Samples: []float64{1000}},
			FsyncP50: time.Millisecond, FsyncP99: 3 * time.Millisecond, WriteBandwidth: bench.Stat{Median: 500e6, Samples: []float64{500e6}}},
		Results: []bench.Result{
			{Workload: "W1", Title: "durable enqueue, 1 producer", Target: "walq", Durability: "sync", Unit: "jobs/s",
				Stat: bench.Stat{Median: 450, Samples: []float64{450}}},
			{Workload: "W2", Title: "durable enqueue, 64 producers", Target: "walq", Durability: "sync", Unit: "jobs/s",
				Stat: bench.Stat{Median: 5000, Samples: []float64{5000}}},
			{Workload: "W6", Title: "heap bytes per pending job", Target: "walq", Durability: "sync", Unit: "B/job", LowerIsBetter: true,
				Stat: bench.Stat{Median: 284, Samples: []float64{284}}, RSSPerJob: 301, Pending: 200000},
		},
	}
	var theirs strings.Builder
	rep.WriteTable(&theirs)
	if !strings.Contains(theirs.String(), "MISSED") {
		t.Fatalf("the fixture report misses no target; the test proves nothing:\n%s", theirs.String())
	}
	var out strings.Builder
	rep.WriteMachineTable(&out)
	got := out.String()
	for _, bad := range []string{"MISSED", "met", "targets ("} {
		if strings.Contains(got, bad) {
			t.Errorf("bench table judges targets (%q):\n%s", bad, got)
		}
	}
	for _, want := range []string{"0.45× fsync", "5.00× fsync", "at 200,000 pending jobs", "BENCHMARKS.md"} {
		if !strings.Contains(got, want) {
			t.Errorf("bench table lacks %q:\n%s", want, got)
		}
	}
	golden(t, "bench_table", "", got)
}
