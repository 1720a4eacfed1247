package main

import (
	"bytes"
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

// TestDemoCommandsRunAsPrinted runs every command the demo prints, as
// printed: spelled as walq was invoked (here "go run ./cmd/walq", as from
// a clone) and with the directory quoted for the shell (issue 13).
func TestDemoCommandsRunAsPrinted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "my demo")
	const prog = "go run ./cmd/walq"
	r := walqAs(t, prog, demoArgs(dir)...)
	wantCode(t, r, 0)
	_, inspect, ok := strings.Cut(r.stdout, "\ninspect what it left in")
	if !ok {
		t.Fatalf("no commands printed:\n%s", r.stdout)
	}
	n := 0
	for _, line := range strings.Split(inspect, "\n")[1:] {
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		cmd, _, _ := strings.Cut(line, "#")
		rest, ok := strings.CutPrefix(cmd, prog+" ")
		if !ok {
			t.Errorf("printed command does not start with %q: %q", prog, line)
			continue
		}
		args := shellWords(t, rest)
		if args[0] == "web" {
			// walq web serves until interrupted: run it interrupted
			// from the start, on a free port.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var out, errb bytes.Buffer
			a := testApp(ctx, newMock(), &out, &errb)
			if code := a.main(append(args, "--addr", "127.0.0.1:0")); code != 0 || !strings.Contains(out.String(), "serving") {
				t.Errorf("printed command %q: exit %d\n%s%s", cmd, code, out.String(), errb.String())
			}
			n++
			continue
		}
		if got := walqAs(t, prog, args...); got.code != 0 {
			t.Errorf("printed command %q: %s", cmd, got)
		}
		n++
	}
	if n < 6 {
		t.Errorf("want 6 commands or more, ran %d:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, "go install ./cmd/walq") {
		t.Errorf("the demo run with go run does not say how to install walq:\n%s", r.stdout)
	}
}

// walqAs runs walq as the binary would when invoked as prog.
func walqAs(t testing.TB, prog string, args ...string) result {
	t.Helper()
	var out, errb strings.Builder
	code := runAs(prog, args, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// shellWords splits s as a POSIX shell would, for the quoting shellQuote
// produces: words separated by spaces, single-quoted runs taken as they
// are.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\'':
			quoted = false
		case quoted:
			cur.WriteByte(c)
		case c == '\'':
			quoted, in = true, true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}
