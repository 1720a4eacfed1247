package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// demoArgs runs a small, fast demo.
func demoArgs(dir string) []string {
	return []string{"demo", dir, "--count", "40", "--workers", "4", "--seed", "3", "--backoff", "1ms", "--latency", "1ms"}
}

// TestDemo runs the demo end to end twice with the same seed: it succeeds,
// leaves a queue the other commands inspect, and reports the same outcome.
func TestDemo(t *testing.T) {
	t.Parallel()
	var summaries []string
	for range 2 {
		dir := filepath.Join(t.TempDir(), "demo")
		r := walq(t, "", demoArgs(dir)...)
		wantCode(t, r, 0)
		for _, want := range []string{"queue directory  " + dir, "deduplicated", "done in", "walq stats " + dir, "walq dead " + dir} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "\r") {
			t.Errorf("demo redraws its progress line on a non-terminal")
		}
		m := regexp.MustCompile(`enqueued +(\d+) jobs from 40 calls`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("no summary:\n%s", r.stdout)
		}
		s := walq(t, "", "stats", dir, "--json")
		wantCode(t, s, 0)
		var st statsJSON
		if err := json.Unmarshal([]byte(s.stdout), &st); err != nil {
			t.Fatal(err)
		}
		if got := st.Total.Completed + st.Total.Dead; len(st.Queues) != 1 || strconv.Itoa(got) != m[1] || st.Total.Dead == 0 {
			t.Errorf("stats after the demo: %+v, summary says %s jobs", st, m[1])
		}
		wantCode(t, walq(t, "", "check", dir), 0)
		summaries = append(summaries, r.stdout[strings.Index(r.stdout, "\n  enqueued"):strings.Index(r.stdout, "\ninspect")])
	}
	if summaries[0] != summaries[1] {
		t.Errorf("the same seed gave different outcomes:\n%s\n%s", summaries[0], summaries[1])
	}
}

// TestDemoInterrupt stops the demo as Ctrl-C would: it exits 130, gives
// its leases back and leaves a queue that checks clean.
func TestDemoInterrupt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	out := newSyncBuffer("[")
	ctx, cancel := context.WithCancel(context.Background())
	a := testApp(ctx, newMock(), out, out)
	code := make(chan int, 1)
	go func() {
		code <- a.main([]string{"demo", dir, "--count", "200", "--latency", "20ms", "--workers", "2"})
	}()
	select {
	case <-out.found:
	case <-time.After(10 * time.Second):
		t.Fatalf("the demo printed no progress:\n%s", out)
	}
	cancel()
	if c := <-code; c != 130 {
		t.Fatalf("interrupted demo exited %d:\n%s", c, out)
	}
	if !strings.Contains(out.String(), "interrupted after") || !strings.Contains(out.String(), "walq stats "+dir) {
		t.Errorf("interrupted demo output:\n%s", out)
	}
	r := walq(t, "", "stats", dir, "--json")
	wantCode(t, r, 0)
	var st statsJSON
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.Total.Leased != 0 {
		t.Errorf("the interrupted demo left %d jobs leased", st.Total.Leased)
	}
}

// TestDemoRefusesUsedDir checks that the demo never writes into a
// directory that holds something.
func TestDemoRefusesUsedDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := walq(t, "", "demo", dir)
	wantCode(t, r, 1)
	if !strings.Contains(r.stderr, "is not empty") {
		t.Errorf("demo in a used directory: %s", r)
	}
}
