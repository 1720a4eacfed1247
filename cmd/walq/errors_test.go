package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrors checks every error path: exit code 2 for usage mistakes, 1
// for runtime errors, and one clear line on stderr, never a stack trace.
func TestErrors(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "missing")
	empty := filepath.Join(tmp, "empty")
	other := filepath.Join(tmp, "other")
	file := filepath.Join(tmp, "file")
	for _, d := range []string{empty, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{file, filepath.Join(other, "notes.txt")} {
		if err := os.WriteFile(f, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"stauts", dir}, 2, `unknown command "stauts"`},
		{"flag before command", []string{"--json", "stats", dir}, 2, "flags go after the command"},
		{"help unknown command", []string{"help", "nope"}, 2, `unknown command "nope"`},
		{"unknown flag", []string{"stats", dir, "--bogus"}, 2, "unknown flag --bogus"},
		{"flag without value", []string{"jobs", dir, "--limit"}, 2, "needs a value"},
		{"bad number", []string{"jobs", dir, "--limit", "many"}, 2, `invalid value "many" for --limit`},
		{"missing dir", []string{"stats"}, 2, "missing DIR"},
		{"extra argument", []string{"stats", dir, "extra"}, 2, `unexpected argument "extra"`},
		{"bad state", []string{"jobs", dir, "--state", "done"}, 2, `invalid value "done" for --state: want one of ready, scheduled`},
		{"negative limit", []string{"dead", dir, "--limit", "-1"}, 2, "want 0 or more"},
		{"bad job ID", []string{"show", dir, "abc"}, 2, `"abc" is not a job ID`},
		{"zero job ID", []string{"cancel", dir, "0"}, 2, `"0" is not a job ID`},
		{"no job ID", []string{"show", dir}, 2, "missing job ID"},
		{"malformed duration", []string{"purge", dir, "--dead", "--older-than", "5x"}, 2,
			`invalid value "5x" for --older-than: "5x" is not a duration`},
		{"malformed delay", []string{"enqueue", dir, "--delay", "soon", "--data", "x"}, 2, `"soon" is not a duration`},
		{"purge without target", []string{"purge", dir}, 2, "say what to purge"},
		{"purge filter without dead", []string{"purge", dir, "--older-than", "1h"}, 2, "add --dead"},
		{"requeue without target", []string{"requeue", dir}, 2, "--all"},
		{"requeue IDs and all", []string{"requeue", dir, "3", "--all"}, 2, "not both"},
		{"enqueue without payload", []string{"enqueue", dir}, 2, "no payload"},
		{"enqueue two payloads", []string{"enqueue", dir, "--data", "x", "-"}, 2, "one payload source"},
		{"bad priority", []string{"enqueue", dir, "--priority", "abc", "--data", "x"}, 2,
			`invalid value "abc" for --priority: want a whole number`},
		{"priority out of range", []string{"enqueue", dir, "--priority", "3000000000", "--data", "x"}, 2,
			"--priority 3000000000 is out of range: want -2147483648 to 2147483647"},
		{"bad max attempts", []string{"enqueue", dir, "--max-attempts", "abc", "--data", "x"}, 2,
			`invalid value "abc" for --max-attempts: want a whole number`},
		{"bad log job", []string{"log", dir, "--job", "abc"}, 2, `invalid value "abc" for --job: want a job ID`},
		{"negative log from", []string{"log", dir, "--from", "-1"}, 2, `invalid value "-1" for --from: want a log index`},
		{"bad after", []string{"jobs", dir, "--after", "abc"}, 2, `invalid value "abc" for --after: want a job ID`},
		{"negative job ID", []string{"show", dir, "-5"}, 2, `"-5" is not a job ID`},
		{"command typo", []string{"stat", dir}, 2, `unknown command "stat"; did you mean "stats"?`},
		{"flag typo", []string{"jobs", dir, "--stat", "dead"}, 2, `unknown flag --stat; did you mean --state?`},

		{"missing dir stats", []string{"stats", missing}, 1, missing + " does not exist"},
		{"missing dir log", []string{"log", missing}, 1, missing + " does not exist"},
		{"missing dir check", []string{"check", missing}, 1, missing + " does not exist"},
		{"missing dir requeue", []string{"requeue", missing, "--all"}, 1, missing + " does not exist"},
		{"missing dir enqueue", []string{"enqueue", missing, "--data", "x"}, 1, missing + " does not exist"},
		{"missing dir salvage", []string{"salvage", missing}, 1, missing + " does not exist"},
		{"file as dir", []string{"jobs", file}, 1, "is not a directory"},
		{"file as dir create", []string{"enqueue", file, "--create", "--data", "x"}, 1, "is not a directory"},
		{"empty dir", []string{"stats", empty}, 1, empty + " is not a walq queue"},
		{"empty dir cancel", []string{"cancel", empty, "1"}, 1, empty + " is not a walq queue"},
		{"other dir", []string{"dead", other}, 1, other + " is not a walq queue"},
		{"other dir salvage", []string{"salvage", other}, 1, other + " is not a walq queue"},
		{"other dir create", []string{"enqueue", other, "--create", "--data", "x"}, 1, other + " is not a walq queue"},
		{"unknown job show", []string{"show", dir, "999"}, 1, "job 999 not found in " + dir},
		{"unknown job cancel", []string{"cancel", dir, "999"}, 1, "job 999 not found"},
		{"unknown job requeue", []string{"requeue", dir, "999"}, 1, "job 999 not found"},
		{"unknown job purge", []string{"purge", dir, "998", "999"}, 1, "not found"},
		{"cancel completed", []string{"cancel", dir, fmt.Sprint(jobCompleted)}, 1, "only ready or scheduled jobs can be cancelled"},
		{"requeue completed", []string{"requeue", dir, fmt.Sprint(jobCompleted)}, 1, "only dead jobs can be requeued"},
		{"purge ready", []string{"purge", dir, fmt.Sprint(jobReady)}, 1, "only finished jobs"},
		{"payload out unwritable", []string{"show", dir, "1", "--payload-out", filepath.Join(missing, "x")}, 1, "--payload-out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hashDir(t, dir)
			r := walqAt(t, mc, tc.args...)
			wantCode(t, r, tc.code)
			r.stderr = dropWarnings(r.stderr)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q: %s", tc.want, r)
			}
			if tc.args != nil && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want one line on stderr: %s", r)
			}
			if tc.code == 1 && !strings.HasPrefix(r.stderr, "walq: ") {
				t.Errorf("stderr does not start with \"walq: \": %s", r)
			}
			if strings.Contains(r.stderr, "parse error") || strings.Count(r.stderr, "walq: ") > 1 {
				t.Errorf("stderr does not say what is accepted, or repeats its prefix: %s", r)
			}
			if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
				t.Errorf("stack trace on stderr: %s", r)
			}
			if tc.code == 2 || readOnly[tc.args[0]] {
				// Changing commands open the queue for writing before
				// they fail (which voids the fixture's lease).
				sameDir(t, before, hashDir(t, dir), tc.name)
			}
		})
	}
	// Nothing above created the missing directory, or touched the others.
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a command created %s", missing)
	}
	for _, d := range []string{empty, other} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name() != "notes.txt" {
				t.Errorf("a command created %s in %s", e.Name(), d)
			}
		}
	}
}

// dropWarnings removes the warnings a writer's open may print (here: the
// fixture's lease, voided by the first changing command).
func dropWarnings(s string) string {
	var keep []string
	for _, line := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(line, "walq: warning: ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}

// readOnly names the commands that must never change a byte.
var readOnly = map[string]bool{"stats": true, "jobs": true, "show": true, "dead": true, "log": true, "check": true}

// TestLocked checks that changing commands refuse a directory another
// process holds, naming its pid, while read commands still work.
func TestLocked(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	fill(t, q, mc)
	want := fmt.Sprintf("walq: %s is in use by another process (pid %d); stop it or use read-only commands", dir, os.Getpid())
	for _, args := range [][]string{
		{"enqueue", dir, "--data", "x"},
		{"cancel", dir, fmt.Sprint(jobScheduled)},
		{"requeue", dir, "--all"},
		{"requeue", dir, fmt.Sprint(jobDead)},
		{"purge", dir, "--dead"},
		{"compact", dir},
		{"salvage", dir},
		{"salvage", dir, "--yes"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := walqAt(t, mc, args...)
			wantCode(t, r, 1)
			if !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want %q, got %s", want, r)
			}
		})
	}
	wantCode(t, walqAt(t, mc, "stats", dir), 0)
}

// TestHelp checks the command list and that every command has --help with
// an example.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := walq(t, "", args...)
		wantCode(t, r, 0)
		for _, c := range commands() {
			if !strings.Contains(r.stdout, "  "+c.name+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c.name, r.stdout)
			}
		}
	}
	r := walq(t, "")
	wantCode(t, r, 2)
	if !strings.Contains(r.stderr, "walq demo") {
		t.Errorf("bare walq: %s", r)
	}
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}, {c.name, "somedir", "--help"}} {
			r := walq(t, "", args...)
			wantCode(t, r, 0)
			for _, want := range []string{"Usage: walq " + c.name, "Example:\n  walq " + c.name} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%v lacks %q:\n%s", args, want, r.stdout)
				}
			}
		}
	}
	golden(t, "help", "", walq(t, "", "help").stdout)
	golden(t, "help_jobs", "", walq(t, "", "jobs", "--help").stdout)
}

// TestBench runs walq bench's smallest real measurement (W1 in quick mode)
// and checks that it reports a verified, positive throughput as JSON, and
// that bad flags are usage errors that say what is accepted.
func TestBench(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "--durability", "fast"},
		{"bench", "--workloads", "W99"},
		{"bench", "--runs", "-1"},
	} {
		r := walq(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, args[2]) {
			t.Errorf("%v: want a non-zero exit naming %q, got %s", args, args[2], r)
		}
	}
	if testing.Short() {
		t.Skip("skipping a benchmark run in -short mode")
	}
	r := walq(t, "", "bench", "--quick", "--workloads", "W1", "--json", t.TempDir())
	wantCode(t, r, 0)
	var rep struct {
		Results []struct {
			Workload, Target, Durability string
			Median                       float64
			Samples                      []float64
		}
		Baseline struct{ FsyncRate struct{ Median float64 } }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("walq bench --json: %v\n%s", err, r)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("want one result, got %+v", rep.Results)
	}
	res := rep.Results[0]
	if res.Workload != "W1" || res.Target != "walq" || res.Durability != "sync" || res.Median <= 0 || len(res.Samples) != 1 {
		t.Errorf("W1 result: %+v", res)
	}
	if rep.Baseline.FsyncRate.Median <= 0 {
		t.Errorf("no fsync baseline: %+v", rep.Baseline)
	}
	if !strings.Contains(r.stderr, "baselines:") {
		t.Errorf("no progress on stderr: %s", r)
	}
}
