package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walq/walq/index"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/recovery"
)

// TestCheckCheckpoint checks that walq check compares the index checkpoint
// with a full replay: a matching one is OK, a damaged one (which Open
// ignores) is a note, and one that matches the log but gives another
// state is a problem.
func TestCheckCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := queue.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs := make([]queue.NewJob, 1500)
	for i := range jobs {
		jobs[i] = queue.NewJob{Payload: []byte("p")}
	}
	if _, err := q.EnqueueBatch(context.Background(), jobs); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil { // writes the checkpoint
		t.Fatal(err)
	}
	path := filepath.Join(dir, recovery.CheckpointName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no checkpoint after Close: %v", err)
	}
	check := func(code int) checkJSON {
		t.Helper()
		r := walq(t, "", "check", dir, "--json")
		wantCode(t, r, code)
		var res checkJSON
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatal(err)
		}
		if res.Checkpoint == nil {
			t.Fatalf("check --json reports no checkpoint: %s", r)
		}
		return res
	}
	if res := check(0); !res.OK || !res.Checkpoint.Usable || !res.Checkpoint.Matches || res.Checkpoint.Jobs != 1500 {
		t.Fatalf("intact checkpoint: %+v", res.Checkpoint)
	}

	damaged := bytes.Clone(good)
	damaged[len(damaged)-2] ^= 1
	if err := os.WriteFile(path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	res := check(0)
	if !res.OK || res.Checkpoint.Usable || !strings.Contains(strings.Join(res.Notes, "\n"), "checkpoint is not used") {
		t.Fatalf("damaged checkpoint: %+v, notes %q", res.Checkpoint, res.Notes)
	}

	// A checkpoint that names the log's entry correctly but holds a
	// different state: only a comparison with a full replay finds it.
	x, meta, err := index.ReadCheckpoint(bytes.NewReader(good), int64(len(good)), 0)
	if err != nil {
		t.Fatal(err)
	}
	x.Job(7).Priority = 99
	var lie bytes.Buffer
	if _, err := x.WriteCheckpoint(&lie, meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, lie.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := check(1); res.OK || !res.Checkpoint.Usable || res.Checkpoint.Matches {
		t.Fatalf("lying checkpoint: %+v", res.Checkpoint)
	}
	r := walq(t, "", "check", dir)
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "PROBLEM:") || !strings.Contains(r.stdout, "gives another state than a full replay") {
		t.Fatalf("check: %s", r)
	}
}
