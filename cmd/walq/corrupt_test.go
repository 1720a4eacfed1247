package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/queue"
)

// corruptQueue builds a closed queue spread over several small segments
// and flips one byte in the middle of the first (oldest) one.
func corruptQueue(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, &queue.Options{SegmentSize: 4096})
	for i := range 120 {
		nj := queue.NewJob{Queue: "emails", Payload: []byte(fmt.Sprintf("%03d %s", i, strings.Repeat("payload ", 10)))}
		if _, err := q.Enqueue(context.Background(), nj); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	segs, err := segmentFiles(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("want 3 segments or more, got %v (%v)", segs, err)
	}
	r := walq(t, "", "check", dir)
	wantCode(t, r, 0)
	if !strings.HasSuffix(r.stdout, "OK\n") {
		t.Fatalf("check before the damage: %s", r)
	}
	path := filepath.Join(dir, segs[0].name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCheckAndSalvage follows the corruption path: check finds it (exit
// 1), read commands refuse with its location, salvage without --yes
// changes nothing, salvage --yes keeps the valid prefix, and the queue
// opens and checks clean again.
func TestCheckAndSalvage(t *testing.T) {
	t.Parallel()
	dir := corruptQueue(t)
	first := "00000000000000000001"

	r := walq(t, "", "check", dir)
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "CORRUPT: segment "+first+" offset ") || !strings.Contains(r.stdout, "walq salvage") {
		t.Errorf("check on a damaged log: %s", r)
	}
	r = walq(t, "", "check", dir, "--json")
	wantCode(t, r, 1)
	var res checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	c := res.Corruption
	if res.OK || c == nil || filepath.Base(c.Segment) != first || c.Offset <= 0 || c.Index < 2 {
		t.Fatalf("check --json: %+v %+v", res, c)
	}

	r = walq(t, "", "stats", dir)
	wantCode(t, r, 1)
	want := fmt.Sprintf("corrupt log at segment %s offset %d index %d", filepath.Join(dir, first), c.Offset, c.Index)
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "walq salvage") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stats on a damaged log: want %q in %s", want, r)
	}
	wantCode(t, walq(t, "", "log", dir), 1)

	segsBefore := segmentHashes(t, dir)
	r = walq(t, "", "salvage", dir)
	wantCode(t, r, 0)
	for _, want := range []string{"corruption: corrupt log at segment", fmt.Sprintf("entries up to index %d", c.Index-1),
		"Nothing changed", "walq salvage " + dir + " --yes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("salvage dry run lacks %q: %s", want, r)
		}
	}
	if got := segmentHashes(t, dir); fmt.Sprint(got) != fmt.Sprint(segsBefore) {
		t.Fatalf("salvage without --yes changed the segments")
	}

	r = walq(t, "", "salvage", dir, "--yes", "--json")
	wantCode(t, r, 0)
	var sv salvageJSON
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
		t.Fatal(err)
	}
	if !sv.Applied || sv.KeptLastIndex != c.Index-1 || len(sv.Saved) == 0 || len(sv.DroppedSegments) < 2 {
		t.Errorf("salvage --yes: %+v", sv)
	}
	for _, name := range sv.Saved {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("saved file: %v", err)
		}
	}

	r = walq(t, "", "check", dir)
	wantCode(t, r, 0)
	if !strings.HasSuffix(r.stdout, "OK\n") || !strings.Contains(r.stdout, "broken-") {
		t.Errorf("check after salvage: %s", r)
	}
	r = walq(t, "", "salvage", dir)
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "nothing to salvage") {
		t.Errorf("salvage of a whole log: %s", r)
	}
	// The salvaged queue takes new work.
	wantCode(t, walq(t, "", "enqueue", dir, "--data", "after salvage"), 0)
	wantCode(t, walq(t, "", "check", dir), 0)
}

// TestCheckTornTail checks that a torn tail (the last write cut short) is
// not corruption: check says OK and notes the bytes a writer will cut.
func TestCheckTornTail(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	segs, err := segmentFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, segs[len(segs)-1].name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x40, 1, 2, 3}) // a frame of 64 bytes, 3 of them written
	f.Close()
	r := walqAt(t, mc, "check", dir)
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "4 bytes after its last whole entry") || !strings.HasSuffix(r.stdout, "OK\n") {
		t.Errorf("check with a torn tail: %s", r)
	}
}

func segmentHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	all := hashDir(t, dir)
	delete(all, "LOCK") // salvage takes the lock, rewriting the pid in it
	return all
}

// segmentFile is a segment file of a queue directory (see log/doc.go: named
// by its first log index in 20 digits).
type segmentFile struct {
	name string
	size int64
}

// segmentFiles lists dir's segment files, oldest first.
func segmentFiles(dir string) ([]segmentFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []segmentFile
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil || len(e.Name()) != 20 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, segmentFile{e.Name(), info.Size()})
	}
	return out, nil
}

// unreplayableQueue builds a closed queue over several small segments and
// appends, with the log package, a 'completed' record for job 2320, whose
// creation is not in the log, then two more jobs: every checksum is valid,
// but the log does not replay. It returns the directory and the bad
// entry's index.
func unreplayableQueue(t *testing.T) (string, uint64) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	q := openQueue(t, dir, newMock(), &queue.Options{SegmentSize: 4096})
	for i := range 60 {
		nj := queue.NewJob{Queue: "emails", Payload: []byte(fmt.Sprintf("%03d %s", i, strings.Repeat("payload ", 10)))}
		if _, err := q.Enqueue(context.Background(), nj); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := wlog.Open(dir, &wlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := l.Append([]wlog.Record{{Kind: wlog.KindCompleted, Job: 2320, At: epoch.UnixNano(), Attempt: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(61); id <= 62; id++ {
		if _, err := l.Append([]wlog.Record{{Kind: wlog.KindEnqueued, Job: id, At: epoch.UnixNano(), Queue: "emails",
			Payload: []byte("after"), RunAt: epoch.UnixNano(), MaxAttempts: 3}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, bad
}

// TestCheckAndSalvageUnreplayable: a log whose checksums are all valid but
// whose records do not replay is a problem for check (exit 1, naming the
// record and how far the log replays), and salvage cuts it back to the
// last entry that replays, moving the rest aside; the queue then opens.
func TestCheckAndSalvageUnreplayable(t *testing.T) {
	t.Parallel()
	dir, bad := unreplayableQueue(t)
	where := fmt.Sprintf("index %d slot 0", bad)

	r := walq(t, "", "check", dir)
	wantCode(t, r, 1)
	for _, want := range []string{"PROBLEM:", "every checksum is valid", where, "job 2320",
		fmt.Sprintf("replays up to index %d", bad-1), "walq salvage " + dir} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q: %s", want, r)
		}
	}
	r = walq(t, "", "check", dir, "--json")
	wantCode(t, r, 1)
	var res checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	f := res.ReplayFailure
	if res.OK || res.Corruption != nil || f == nil || f.Index != bad || f.Slot != 0 || f.Job != 2320 ||
		f.Kind != "completed" || f.ReplayableTo != bad-1 || !strings.Contains(f.Reason, "unknown job") {
		t.Fatalf("check --json: %+v %+v", res, f)
	}

	before := segmentHashes(t, dir)
	r = walq(t, "", "salvage", dir)
	wantCode(t, r, 0)
	for _, want := range []string{"replay:", where, "job 2320", fmt.Sprintf("entries up to index %d", bad-1),
		"Nothing changed", "walq salvage " + dir + " --yes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("salvage dry run lacks %q: %s", want, r)
		}
	}
	if got := segmentHashes(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("salvage without --yes changed the directory")
	}

	r = walq(t, "", "salvage", dir, "--yes", "--json")
	wantCode(t, r, 0)
	var sv salvageJSON
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
		t.Fatal(err)
	}
	if !sv.Applied || sv.KeptLastIndex != bad-1 || sv.Corruption != nil || sv.ReplayFailure == nil ||
		sv.ReplayFailure.Index != bad || len(sv.Saved) == 0 {
		t.Errorf("salvage --yes: %+v", sv)
	}
	r = walq(t, "", "check", dir)
	wantCode(t, r, 0)
	if !strings.HasSuffix(r.stdout, "OK\n") || !strings.Contains(r.stdout, "60 jobs") {
		t.Errorf("check after salvage: %s", r)
	}
	wantCode(t, walq(t, "", "enqueue", dir, "--data", "after salvage"), 0)
	wantCode(t, walq(t, "", "check", dir), 0)
}

// TestCheckNoReplayablePrefix: in a log whose front was truncated without
// the carry records compaction writes, the first entry is already a record
// for a job whose creation is gone and nothing restates it: no prefix
// replays; check says so and salvage would keep no entry.
func TestCheckNoReplayablePrefix(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "q")
	l, err := wlog.Open(dir, &wlog.Options{Logger: slog.New(slog.DiscardHandler), SegmentSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	at := epoch.UnixNano()
	for id := uint64(1); id <= 20; id++ {
		if _, err := l.Append([]wlog.Record{{Kind: wlog.KindEnqueued, Job: id, At: at, Queue: "emails",
			Payload: []byte(strings.Repeat("x", 100)), RunAt: at, MaxAttempts: 3}}); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 20; id++ {
		if _, err := l.Append([]wlog.Record{{Kind: wlog.KindLeased, Job: id, At: at, Attempt: 1, Deadline: at + 1e9}}); err != nil {
			t.Fatal(err)
		}
	}
	// Only leases are left: records for jobs whose creation is gone.
	bad, err := l.TruncateFront(l.LastIndex())
	if err != nil || bad <= 20 {
		t.Fatalf("TruncateFront: first %d, %v (want a lease record to open the log)", bad, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := walq(t, "", "check", dir)
	wantCode(t, r, 1)
	for _, want := range []string{fmt.Sprintf("leased record at index %d slot 0 for job %d", bad, bad-20), "no prefix of the log replays"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q: %s", want, r)
		}
	}
	r = walq(t, "", "salvage", dir)
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, fmt.Sprintf("keep:       entries up to index %d", bad-1)) {
		t.Errorf("salvage dry run: %s", r)
	}
}

// TestCheckAgreesWithSalvage damages the first, a middle and the last
// segment of a log in turn (and the only segment of another) and checks
// that check and salvage agree on where the damage is and what is intact
// (issue 13, bug 2: check reported nothing intact when the damage was in
// the last segment).
func TestCheckAgreesWithSalvage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		segSize int
		which   func(n int) int // the segment to damage, of n
	}{
		{"first of several", 4096, func(int) int { return 0 }},
		{"middle of several", 4096, func(n int) int { return n / 2 }},
		{"last of several", 4096, func(n int) int { return n - 1 }},
		{"only segment", 0, func(int) int { return 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "q")
			q := openQueue(t, dir, newMock(), &queue.Options{SegmentSize: tc.segSize})
			for i := range 120 {
				nj := queue.NewJob{Queue: "emails", Payload: []byte(fmt.Sprintf("%03d %s", i, strings.Repeat("payload ", 10)))}
				if _, err := q.Enqueue(context.Background(), nj); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			segs, err := segmentFiles(dir)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, segs[tc.which(len(segs))].name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}

			r := walq(t, "", "check", dir, "--json")
			wantCode(t, r, 1)
			var ck checkJSON
			if err := json.Unmarshal([]byte(r.stdout), &ck); err != nil {
				t.Fatal(err)
			}
			r = walq(t, "", "salvage", dir, "--json")
			wantCode(t, r, 0)
			var sv salvageJSON
			if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil {
				t.Fatal(err)
			}
			if ck.Corruption == nil || sv.Corruption == nil || *ck.Corruption != *sv.Corruption {
				t.Fatalf("check and salvage disagree on the corruption: %+v vs %+v", ck.Corruption, sv.Corruption)
			}
			kept := ck.Corruption.Index - 1
			if ck.KeepLastIndex == nil || *ck.KeepLastIndex != sv.KeptLastIndex || sv.KeptLastIndex != kept {
				t.Errorf("check keeps %v, salvage %d; want %d", ck.KeepLastIndex, sv.KeptLastIndex, kept)
			}
			if ck.FirstIndex != 1 || ck.LastIndex != kept || ck.Entries != int(kept) || ck.Records != int(kept) ||
				ck.Segments != len(segs) || ck.SizeBytes == 0 {
				t.Errorf("check's intact prefix: %+v; want entries 1 to %d in %d segments", ck, kept, len(segs))
			}
			r = walq(t, "", "check", dir)
			want := fmt.Sprintf("entries 1 to %d, %d records: intact up to the corruption", kept, kept)
			if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, fmt.Sprintf("would keep entries up to index %d", kept)) {
				t.Errorf("check: want %q: %s", want, r)
			}
			r = walq(t, "", "salvage", dir)
			if !strings.Contains(r.stdout, fmt.Sprintf("keep:       entries up to index %d\n", kept)) {
				t.Errorf("salvage: %s", r)
			}
		})
	}
}

// TestTornTailSameVerdict checks that check and salvage say the same of a
// torn tail: not corruption, nothing to salvage, in the same words.
func TestTornTailSameVerdict(t *testing.T) {
	t.Parallel()
	dir, mc := fixture(t)
	segs, err := segmentFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, segs[len(segs)-1].name), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x40, 1, 2, 3}) // a frame of 64 bytes, 3 of them written
	f.Close()
	ck := walqAt(t, mc, "check", dir)
	wantCode(t, ck, 0)
	before := segmentHashes(t, dir)
	for _, args := range [][]string{{"salvage", dir}, {"salvage", dir, "--yes"}} {
		sv := walqAt(t, mc, args...)
		wantCode(t, sv, 0)
		if !strings.HasPrefix(sv.stdout, "nothing to salvage") {
			t.Errorf("%v on a torn tail: %s", args, sv)
		}
		note := sv.stdout[strings.Index(sv.stdout, "note: "):]
		if !strings.Contains(ck.stdout, note) || !strings.Contains(note, "4 bytes after its last whole entry") {
			t.Errorf("check and salvage word the torn tail differently:\n%s\n%s", ck.stdout, sv.stdout)
		}
	}
	if got := segmentHashes(t, dir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("salvage changed a log whose only damage is a torn tail")
	}
	var c checkJSON
	var s salvageJSON
	json.Unmarshal([]byte(walqAt(t, mc, "check", dir, "--json").stdout), &c)
	json.Unmarshal([]byte(walqAt(t, mc, "salvage", dir, "--json").stdout), &s)
	if c.TornTail == nil || s.TornTail == nil || *c.TornTail != *s.TornTail || s.Corruption != nil || s.Applied || c.KeepLastIndex != nil {
		t.Errorf("check and salvage --json on a torn tail: %+v %+v / %+v", c, c.TornTail, s)
	}
}

// TestPartialReads checks --partial on a damaged log (corrupt, or whose
// records do not replay): the read commands show what salvage would keep,
// exactly as they show the salvaged log, marked as partial in text and
// JSON; the directory is not changed and the temporary copy is removed.
// Without --partial they refuse, naming the flag.
func TestPartialReads(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where the copies of the prefix go
	mc := newMock()
	corrupt := corruptQueue(t)
	unreplayable, _ := unreplayableQueue(t)
	for name, dir := range map[string]string{"corrupt": corrupt, "unreplayable": unreplayable} {
		t.Run(name, func(t *testing.T) {
			salvaged := filepath.Join(t.TempDir(), "salvaged")
			copyDir(t, dir, salvaged)
			wantCode(t, walqAt(t, mc, "salvage", salvaged, "--yes"), 0)
			before := hashDir(t, dir)
			for _, args := range [][]string{
				{"stats"}, {"stats", "--json"}, {"jobs", "--limit", "0"}, {"jobs", "--json", "--limit", "0"},
				{"show", "3"}, {"show", "3", "--json"}, {"dead"}, {"dead", "--json"}, {"log"}, {"log", "--json"},
			} {
				cmd := append([]string{args[0], dir}, args[1:]...)
				r := walqAt(t, mc, cmd...)
				if args[0] != "log" || name == "corrupt" {
					wantCode(t, r, 1)
					if !strings.Contains(r.stderr, "--partial") {
						t.Errorf("%v on a damaged log does not mention --partial: %s", args, r)
					}
				}
				r = walqAt(t, mc, append(cmd, "--partial")...)
				wantCode(t, r, 0)
				want := walqAt(t, mc, append([]string{args[0], salvaged}, args[1:]...)...)
				wantCode(t, want, 0)
				got := strings.ReplaceAll(r.stdout, dir, "DIR")
				wantOut := strings.ReplaceAll(want.stdout, salvaged, "DIR")
				if args[0] == "log" && name == "unreplayable" {
					// log does not replay: it shows every entry before
					// the corruption, and this log has none.
					wantOut = strings.ReplaceAll(walqAt(t, mc, cmd...).stdout, dir, "DIR")
				} else {
					got = dropPartial(t, got, strings.Contains(strings.Join(args, " "), "--json"))
				}
				if got != wantOut {
					t.Errorf("%v --partial differs from the salvaged log:\n--- got:\n%s--- want:\n%s", args, got, wantOut)
				}
			}
			sameDir(t, before, hashDir(t, dir), "--partial")
		})
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "walq-partial-*")); len(left) > 0 {
		t.Errorf("copies left behind: %v", left)
	}
	wantCode(t, walqAt(t, mc, "log", corrupt, "--partial", "--follow"), 2)
}

// dropPartial removes the partial marker from output, failing if it is
// missing: the first line of text, the "partial" member of JSON, the
// first line of JSON Lines.
func dropPartial(t *testing.T, s string, isJSON bool) string {
	t.Helper()
	first, rest, _ := strings.Cut(s, "\n")
	switch {
	case !isJSON:
		if !strings.HasPrefix(first, "PARTIAL: only log entries up to index ") {
			t.Errorf("no partial marker in:\n%s", s)
		}
		return rest
	case strings.HasPrefix(first, `{"partial":`):
		return rest
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	p, ok := m["partial"].(map[string]any)
	if !ok || p["last_index"] == nil || p["reason"] == "" {
		t.Errorf("no partial member in:\n%s", s)
	}
	i := strings.Index(s, ",\n  \"partial\": {")
	j := strings.Index(s[i+1:], "\n  }") + i + 1
	if i < 0 || j < i {
		t.Fatalf("partial member not where expected:\n%s", s)
	}
	return s[:i] + s[j+len("\n  }"):]
}

// copyDir copies the files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
