package recovery_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
	"github.com/walq/walq/recovery"
)

// quiet is the logger tests use unless they look at what is logged.
var quiet = slog.New(slog.DiscardHandler)

// t0 is the time the fixture records are stamped around.
var t0 = time.Unix(1_700_000_000, 0)

func ns(d time.Duration) int64 { return t0.Add(d).UnixNano() }

// payloadOf returns job id's payload: 256 bytes that name the job.
func payloadOf(id uint64) []byte {
	p := bytes.Repeat([]byte{byte(id)}, 256)
	binary.BigEndian.PutUint64(p, id)
	return p
}

func enqueued(id uint64, maxAttempts int64) wlog.Record {
	return wlog.Record{Kind: wlog.KindEnqueued, Job: id, At: ns(0), Queue: "default",
		Payload: payloadOf(id), RunAt: ns(0), MaxAttempts: maxAttempts}
}

func leased(id uint64, attempt int64) wlog.Record {
	return wlog.Record{Kind: wlog.KindLeased, Job: id, At: ns(time.Second), Attempt: attempt, Deadline: ns(time.Minute)}
}

// writeLog appends each of entries as one log entry to a new log in dir
// and returns the size of every entry, by index.
func writeLog(t testing.TB, dir string, o *wlog.Options, entries ...[]wlog.Record) map[uint64]int {
	t.Helper()
	c := wlog.Options{Logger: quiet, Durability: wlog.None}
	if o != nil {
		c = *o
		c.Logger = quiet
	}
	l, err := wlog.Open(dir, &c)
	if err != nil {
		t.Fatalf("log.Open: %v", err)
	}
	sizes := map[uint64]int{}
	for _, recs := range entries {
		i, err := l.Append(recs)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		data, err := l.Read(i)
		if err != nil {
			t.Fatalf("Read(%d): %v", i, err)
		}
		sizes[i] = len(data)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return sizes
}

// open runs recovery.Open and, on cleanup, checks the index's invariants
// and closes the log.
func open(t testing.TB, dir string, o *recovery.Options) (*wlog.Log, *index.Index, *recovery.Report) {
	t.Helper()
	if o == nil {
		o = &recovery.Options{}
	}
	if o.Log.Logger == nil {
		o.Log.Logger = quiet
	}
	l, x, rep, err := recovery.Open(dir, o)
	if err != nil {
		t.Fatalf("recovery.Open(%s): %v", dir, err)
	}
	if err := x.Check(); err != nil {
		t.Errorf("index invariants after open: %v", err)
	}
	t.Cleanup(func() {
		if err := x.Check(); err != nil {
			t.Errorf("index invariants at cleanup: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l, x, rep
}

// jobView is what a reopen must preserve of a job.
type jobView struct {
	ID             uint64
	State          index.State
	Queue          string
	Attempt        int32
	RunAt          int64
	Deadline       int64
	Error          string
	Finished       int64
	History        []wlog.Attempt
	Payload, Reslt index.Loc
}

func view(x *index.Index) []jobView {
	var vs []jobView
	for _, j := range x.Jobs() {
		v := jobView{ID: j.ID, State: j.State, Queue: j.Queue.Name, Attempt: j.Attempt, RunAt: j.RunAt,
			Deadline: j.Deadline(), Error: j.Error(), Finished: j.Finished(), History: j.History(), Payload: j.Payload}
		if j.X != nil {
			v.Reslt = j.X.Result
		}
		vs = append(vs, v)
	}
	return vs
}

func wantJobs(t *testing.T, rep *recovery.Report, want map[index.State]int) {
	t.Helper()
	for _, s := range index.States() {
		if rep.Jobs[s] != want[s] {
			t.Errorf("Report.Jobs[%s] = %d, want %d (all: %v)", s, rep.Jobs[s], want[s], rep.Jobs)
		}
	}
}

func TestOpenEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		opts *recovery.Options
	}{
		{"empty-dir", func(t *testing.T) string { return t.TempDir() }, nil},
		{"missing-dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "a", "b") }, nil},
		{"nil-options", func(t *testing.T) string { return t.TempDir() }, nil},
		{"with-now", func(t *testing.T) string { return t.TempDir() }, &recovery.Options{Now: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir(t)
			var (
				l   *wlog.Log
				x   *index.Index
				rep *recovery.Report
			)
			if tt.name == "nil-options" {
				var err error
				l, x, rep, err = recovery.Open(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			} else {
				l, x, rep = open(t, dir, tt.opts)
			}
			if x.Len() != 0 || x.Records() != 0 || len(x.Queues()) != 0 || x.NextID() != 1 {
				t.Errorf("index not empty: Len %d Records %d queues %d NextID %d", x.Len(), x.Records(), len(x.Queues()), x.NextID())
			}
			if rep == nil {
				t.Fatal("nil report")
			}
			if rep.Entries != 0 || rep.Records != 0 || rep.Bytes != 0 || rep.Voided != 0 || rep.PoisonPills != 0 || rep.Repaired != nil {
				t.Errorf("report of an empty open: %+v", *rep)
			}
			if rep.FirstIndex != 1 || rep.LastIndex != 0 {
				t.Errorf("FirstIndex %d LastIndex %d, want 1 0", rep.FirstIndex, rep.LastIndex)
			}
			if rep.Jobs == nil {
				t.Errorf("Report.Jobs is nil")
			}
			wantJobs(t, rep, nil)
			// The log is open for appends.
			if _, err := l.Append([]wlog.Record{enqueued(1, 3)}); err != nil {
				t.Errorf("Append after open: %v", err)
			}
		})
	}
}

// TestReplay writes a log through the log package and checks that Open
// folds every record and reports what it replayed.
func TestReplay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	complete := wlog.Record{Kind: wlog.KindCompleted, Job: 1, At: ns(2 * time.Second), Attempt: 1, Result: []byte("done")}
	entries := [][]wlog.Record{
		{enqueued(1, 3), enqueued(2, 1), enqueued(3, 3)},
		{leased(1, 1)},
		{complete, enqueued(4, 3)}, // a completion with a follow-up job
		{leased(2, 1), {Kind: wlog.KindDead, Job: 2, At: ns(3 * time.Second), Attempt: 1, Error: "permanent"}},
		{{Kind: wlog.KindCancelled, Job: 3, At: ns(4 * time.Second)}},
		{{Kind: wlog.KindPaused, Queue: "default"}},
		{{Kind: wlog.KindCheckpoint, NextID: 10}},
	}
	sizes := writeLog(t, dir, nil, entries...)
	l, x, rep := open(t, dir, &recovery.Options{Now: t0.Add(time.Hour)})
	records := 0
	var size int64
	for _, e := range entries {
		records += len(e)
	}
	for _, n := range sizes {
		size += int64(len(binary.AppendUvarint(nil, uint64(n))) + n) // the frame's length prefix and the entry
	}
	if rep.Entries != len(entries) || rep.Records != records || rep.Bytes != size {
		t.Errorf("Entries %d Records %d Bytes %d, want %d %d %d", rep.Entries, rep.Records, rep.Bytes, len(entries), records, size)
	}
	if rep.FirstIndex != 1 || rep.LastIndex != uint64(len(entries)) {
		t.Errorf("FirstIndex %d LastIndex %d, want 1 %d", rep.FirstIndex, rep.LastIndex, len(entries))
	}
	if x.Records() != records {
		t.Errorf("index applied %d records, want %d", x.Records(), records)
	}
	wantJobs(t, rep, map[index.State]int{index.Pending: 1, index.Completed: 1, index.Dead: 1, index.Cancelled: 1})
	if rep.Voided != 0 || rep.PoisonPills != 0 || rep.Duration <= 0 {
		t.Errorf("Voided %d PoisonPills %d Duration %v", rep.Voided, rep.PoisonPills, rep.Duration)
	}
	if x.NextID() != 10 || !x.Queue("default").Paused {
		t.Errorf("NextID %d paused %v, want 10 true", x.NextID(), x.Queue("default").Paused)
	}
	// Payload and result locations point at the bytes in the log.
	for id := uint64(1); id <= 4; id++ {
		if got := readLoc(t, l, x.Job(id).Payload); !bytes.Equal(got, payloadOf(id)) {
			t.Errorf("job %d: payload at %+v is not the job's", id, x.Job(id).Payload)
		}
	}
	if got := readLoc(t, l, x.Job(1).X.Result); string(got) != "done" {
		t.Errorf("job 1: result %q, want done", got)
	}
	if got := x.Job(4).Payload.Index; got != 3 {
		t.Errorf("follow-up job's origin entry %d, want 3", got)
	}
	// Due pending jobs are ready at Now.
	if x.Queue("default").Next() != x.Job(4) {
		t.Errorf("pending job 4 is not ready")
	}
}

func readLoc(t *testing.T, l *wlog.Log, loc index.Loc) []byte {
	t.Helper()
	data, err := l.Read(loc.Index)
	if err != nil {
		t.Fatalf("Read(%d): %v", loc.Index, err)
	}
	return data[loc.Off : loc.Off+loc.Len]
}

// TestVoidLeases checks that a writer's open voids the leases of the
// previous process durably: an expired attempt that counts, or the
// dead-letter queue for a job with no attempts left (the poison pill).
func TestVoidLeases(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	failed := wlog.Record{Kind: wlog.KindFailed, Job: 3, At: ns(2 * time.Second), Attempt: 1, RunAt: ns(0), Error: "try again"}
	entries := [][]wlog.Record{
		{enqueued(1, 3), enqueued(2, 1), enqueued(3, 2), enqueued(4, 3), enqueued(5, 3)},
		{leased(1, 1), leased(2, 1), leased(3, 1)},
		{failed},
		{leased(3, 2)},
		{leased(5, 1), {Kind: wlog.KindCompleted, Job: 5, At: ns(3 * time.Second), Attempt: 1}},
	}
	writeLog(t, dir, nil, entries...)
	now := t0.Add(time.Hour)
	var logged bytes.Buffer
	l, x, rep := open(t, dir, &recovery.Options{Now: now,
		Log: wlog.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))}})
	if rep.Voided != 3 || rep.PoisonPills != 2 {
		t.Errorf("Voided %d PoisonPills %d, want 3 2", rep.Voided, rep.PoisonPills)
	}
	wantJobs(t, rep, map[index.State]int{index.Pending: 2, index.Dead: 2, index.Completed: 1})
	if !strings.Contains(logged.String(), "voided=3") || !strings.Contains(logged.String(), "poison_pills=2") {
		t.Errorf("open logged %q, want a warning with the counts", logged.String())
	}
	tests := []struct {
		id      uint64
		state   index.State
		attempt int32
		runAt   int64
		outcome wlog.Kind
		errText string
	}{
		{id: 1, state: index.Pending, attempt: 1, runAt: now.UnixNano(), outcome: wlog.KindExpired, errText: "lease lost"},
		{id: 2, state: index.Dead, attempt: 1, runAt: ns(0), outcome: wlog.KindDead, errText: "poison pill"},
		{id: 3, state: index.Dead, attempt: 2, runAt: ns(0), outcome: wlog.KindDead, errText: "poison pill"},
		{id: 4, state: index.Pending, attempt: 0, runAt: ns(0)},
		{id: 5, state: index.Completed, attempt: 1, runAt: ns(0), outcome: wlog.KindCompleted},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("job=%d", tt.id), func(t *testing.T) {
			j := x.Job(tt.id)
			if j.State != tt.state || j.Attempt != tt.attempt || j.RunAt != tt.runAt {
				t.Errorf("%s attempt %d runAt %d, want %s attempt %d runAt %d",
					j.State, j.Attempt, j.RunAt, tt.state, tt.attempt, tt.runAt)
			}
			h := j.History()
			if tt.outcome == 0 {
				if len(h) != 0 {
					t.Errorf("history %+v, want none", h)
				}
				return
			}
			last := h[len(h)-1]
			if last.Outcome != tt.outcome || !strings.Contains(last.Error, tt.errText) || !strings.Contains(j.Error(), tt.errText) {
				t.Errorf("last attempt %+v, error %q: want outcome %s and %q", last, j.Error(), tt.outcome, tt.errText)
			}
			if tt.errText != "" && last.Ended != now.UnixNano() {
				t.Errorf("voided attempt ended at %d, want the open's Now %d", last.Ended, now.UnixNano())
			}
			if tt.state == index.Dead && j.Finished() != now.UnixNano() {
				t.Errorf("poison pill finished at %d, want %d", j.Finished(), now.UnixNano())
			}
		})
	}
	if got := x.Queue("default").Ready(); got != 2 {
		t.Errorf("%d jobs ready, want 2 (voided job 1 and job 4)", got)
	}
	// The voiding is one durable entry after the replayed log.
	if got := l.LastIndex(); got != uint64(len(entries))+1 {
		t.Fatalf("LastIndex %d, want %d (one voiding entry)", got, len(entries)+1)
	}
	var kinds []string
	if err := l.Replay(uint64(len(entries))+1, func(_ uint64, _ int, r *wlog.Record) error {
		kinds = append(kinds, fmt.Sprintf("%s/%d", r.Kind, r.Job))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(kinds)
	if want := []string{"dead/2", "dead/3", "expired/1"}; !slices.Equal(kinds, want) {
		t.Errorf("voiding entry holds %v, want %v", kinds, want)
	}
	before := view(x)
	l.Close()

	// Reopening (later) voids nothing more and finds the same state.
	_, y, rep2 := open(t, dir, &recovery.Options{Now: now.Add(time.Hour)})
	if rep2.Voided != 0 || rep2.PoisonPills != 0 {
		t.Errorf("second open voided %d (%d poison pills), want 0", rep2.Voided, rep2.PoisonPills)
	}
	if rep2.Entries != len(entries)+1 {
		t.Errorf("second open replayed %d entries, want %d", rep2.Entries, len(entries)+1)
	}
	if after := view(y); !reflect.DeepEqual(before, after) {
		t.Errorf("state changed across reopen:\nbefore %+v\n after %+v", before, after)
	}
}

// hashDir returns every file's name, mode, size, modification time and
// content hash.
func hashDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := ""
		if !d.IsDir() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		m[path] = fmt.Sprintf("%v %d %v %s", info.Mode(), info.Size(), info.ModTime().UnixNano(), h)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadOnly checks that a read-only open replays without voiding leases
// and changes no byte of the directory, even while a writer holds it.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		withWriter bool
	}{
		{"alone", false},
		{"beside-writer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeLog(t, dir, nil, []wlog.Record{enqueued(1, 1), enqueued(2, 3)}, []wlog.Record{leased(1, 1), leased(2, 1)})
			if tt.withWriter {
				w, err := wlog.Open(dir, &wlog.Options{Logger: quiet})
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			before := hashDir(t, dir)
			_, x, rep := open(t, dir, &recovery.Options{Now: t0.Add(time.Hour), Log: wlog.Options{ReadOnly: true}})
			if rep.Voided != 0 || rep.PoisonPills != 0 {
				t.Errorf("read-only open voided %d leases", rep.Voided)
			}
			wantJobs(t, rep, map[index.State]int{index.Leased: 2})
			if j := x.Job(1); j.State != index.Leased || j.Deadline() != ns(time.Minute) {
				t.Errorf("job 1: %s deadline %d, want leased until %d", j.State, j.Deadline(), ns(time.Minute))
			}
			if after := hashDir(t, dir); !reflect.DeepEqual(before, after) {
				t.Errorf("read-only open changed the directory:\nbefore %v\n after %v", before, after)
			}
		})
	}
}

// TestInconsistent checks that a record the fold refuses makes Open fail
// with ErrInconsistent, naming where the record is, and leaves nothing open.
func TestInconsistent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		bad  wlog.Record
	}{
		{"completed-unknown-job", wlog.Record{Kind: wlog.KindCompleted, Job: 99, Attempt: 1}},
		{"completed-pending-job", wlog.Record{Kind: wlog.KindCompleted, Job: 1, Attempt: 0}},
		{"duplicate-enqueue", enqueued(1, 3)},
		{"leased-wrong-attempt", leased(1, 2)},
		{"requeued-pending-job", wlog.Record{Kind: wlog.KindRequeued, Job: 1}},
	}
	for _, tt := range tests {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/readonly=%v", tt.name, readOnly), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				writeLog(t, dir, nil, []wlog.Record{enqueued(1, 3)},
					[]wlog.Record{enqueued(2, 3), tt.bad, enqueued(3, 3)})
				before := hashDir(t, dir)
				_, _, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet, ReadOnly: readOnly}})
				if !errors.Is(err, index.ErrInconsistent) {
					t.Fatalf("Open = %v, want ErrInconsistent", err)
				}
				var ae *index.ApplyError
				if !errors.As(err, &ae) || ae.Pos != (index.Pos{Index: 2, Slot: 1}) || ae.Kind != tt.bad.Kind || ae.Job != tt.bad.Job {
					t.Errorf("error %v does not locate the record at index 2 slot 1", err)
				}
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("error %q does not name the directory", err)
				}
				after := hashDir(t, dir)
				if !readOnly {
					// A writer takes the lock and writes its pid into it.
					delete(before, filepath.Join(dir, "LOCK"))
					delete(after, filepath.Join(dir, "LOCK"))
				}
				if !reflect.DeepEqual(before, after) {
					t.Errorf("failed open changed the directory:\nbefore %v\n after %v", before, after)
				}
				// Nothing is left open: the lock is free.
				l, err := wlog.Open(dir, &wlog.Options{Logger: quiet})
				if err != nil {
					t.Fatalf("log.Open after a failed recovery: %v", err)
				}
				l.Close()
			})
		}
	}
}

// frames returns the byte offsets of the entries (frames) in a segment
// file: each frame is a uvarint length and that many bytes.
func frames(t *testing.T, path string) (data []byte, offs []int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); {
		n, k := binary.Uvarint(data[off:])
		if k <= 0 {
			t.Fatalf("%s: bad frame at %d", path, off)
		}
		offs = append(offs, off)
		off += k + int(n)
	}
	return data, offs
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	var segs []string
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if len(e.Name()) == 20 && !strings.HasPrefix(e.Name(), "broken") {
			segs = append(segs, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(segs)
	return segs
}

// writeJobs writes n single-job entries to a log with small segments.
func writeJobs(t *testing.T, dir string, n int) {
	t.Helper()
	var entries [][]wlog.Record
	for id := uint64(1); id <= uint64(n); id++ {
		entries = append(entries, []wlog.Record{enqueued(id, 3)})
	}
	writeLog(t, dir, &wlog.Options{SegmentSize: 2048}, entries...)
}

// TestCorruptSegment follows etcd's shape: corrupt an old segment, assert
// the error, repair (Salvage keeps the valid prefix), reopen, append more,
// and read everything back.
func TestCorruptSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeJobs(t, dir, 30)
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	// Flip the last byte of the second entry of the first segment: inside
	// job 2's payload.
	data, offs := frames(t, segs[0])
	if len(offs) < 3 {
		t.Fatalf("first segment holds %d entries, want at least 3", len(offs))
	}
	data[offs[2]-1] ^= 0x40
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{false, true} {
		_, _, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet, ReadOnly: readOnly}})
		if !errors.Is(err, wlog.ErrCorrupt) {
			t.Fatalf("Open(readonly=%v) = %v, want ErrCorrupt", readOnly, err)
		}
		var ce *wlog.CorruptError
		if !errors.As(err, &ce) || ce.Segment != segs[0] || ce.Index != 2 {
			t.Errorf("Open(readonly=%v): error %v does not locate segment %s index 2", readOnly, err, segs[0])
		}
	}
	// Repair: keep the valid prefix (entry 1).
	srep, err := wlog.Salvage(dir, false)
	if err != nil {
		t.Fatalf("Salvage: %v", err)
	}
	if srep.KeptLast != 1 {
		t.Fatalf("Salvage kept up to %d, want 1", srep.KeptLast)
	}
	l, x, rep := open(t, dir, nil)
	if rep.Entries != 1 || x.Len() != 1 || x.Job(1) == nil {
		t.Fatalf("after salvage: %d entries, %d jobs, want 1 1", rep.Entries, x.Len())
	}
	// Append more, reopen, read everything back.
	for id := uint64(2); id <= 5; id++ {
		if _, err := l.Append([]wlog.Record{enqueued(id, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l2, y, rep := open(t, dir, nil)
	if rep.Entries != 5 || y.Len() != 5 {
		t.Fatalf("after append: %d entries, %d jobs, want 5 5", rep.Entries, y.Len())
	}
	for id := uint64(1); id <= 5; id++ {
		if got := readLoc(t, l2, y.Job(id).Payload); !bytes.Equal(got, payloadOf(id)) {
			t.Errorf("job %d: payload does not read back", id)
		}
	}
}

// TestTornTail checks that a torn last entry is cut and reported, and its
// records are not replayed.
func TestTornTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cut  func(data []byte, last int) []byte
	}{
		{"half-entry", func(data []byte, last int) []byte { return data[:last+(len(data)-last)/2] }},
		{"length-only", func(data []byte, last int) []byte { return data[:last+1] }},
		{"zeroed", func(data []byte, last int) []byte {
			clear(data[last+3:])
			return data
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeLog(t, dir, nil, []wlog.Record{enqueued(1, 3)}, []wlog.Record{enqueued(2, 3), enqueued(3, 3)})
			seg := segments(t, dir)[0]
			data, offs := frames(t, seg)
			if err := os.WriteFile(seg, tt.cut(data, offs[len(offs)-1]), 0o644); err != nil {
				t.Fatal(err)
			}
			_, x, rep := open(t, dir, nil)
			if rep.Repaired == nil || rep.Repaired.Segment != seg || rep.Repaired.Offset != int64(offs[1]) {
				t.Errorf("Repaired = %+v, want a cut of %s at %d", rep.Repaired, seg, offs[1])
			}
			if rep.Entries != 1 || x.Len() != 1 || x.Job(2) != nil {
				t.Errorf("replayed %d entries and %d jobs, want 1 1", rep.Entries, x.Len())
			}
		})
	}
}

// TestTruncatedFront replays a log whose front was removed by compaction:
// jobs created before the first entry must be restated by carry records.
func TestTruncatedFront(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		carry   bool
		wantErr bool
	}{
		{"carried", true, false},
		{"creation-lost", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, err := wlog.Open(dir, &wlog.Options{Logger: quiet, SegmentSize: 2048, Durability: wlog.None})
			if err != nil {
				t.Fatal(err)
			}
			mustAppend := func(recs ...wlog.Record) uint64 {
				i, err := l.Append(recs)
				if err != nil {
					t.Fatal(err)
				}
				return i
			}
			mustAppend(enqueued(1, 3), enqueued(2, 3))
			for id := uint64(3); id <= 20; id++ { // filler: fills segments
				mustAppend(enqueued(id, 3))
				mustAppend(wlog.Record{Kind: wlog.KindCancelled, Job: id, At: ns(0)},
					wlog.Record{Kind: wlog.KindPurged, Job: id, At: ns(0)})
			}
			mustAppend(leased(1, 1))
			if tt.carry {
				for id := uint64(1); id <= 2; id++ {
					st, dl, att := index.Pending, int64(0), int64(0)
					if id == 1 {
						st, dl, att = index.Leased, ns(time.Minute), 1
					}
					mustAppend(wlog.Record{Kind: wlog.KindCarry, Job: id, At: ns(0), Created: ns(0), Queue: "default",
						Payload: payloadOf(id), RunAt: ns(0), MaxAttempts: 3, Attempt: att, Deadline: dl, State: uint8(st),
						History: []wlog.Attempt{{Started: ns(time.Second)}}[:att]})
				}
			}
			last := mustAppend(wlog.Record{Kind: wlog.KindCheckpoint, NextID: 21})
			if _, err := l.TruncateFront(last - 3); err != nil {
				t.Fatal(err)
			}
			first := l.FirstIndex()
			l.Close()
			if first <= 2 {
				t.Fatalf("FirstIndex %d after truncation: the fixture did not cut job 1's creation", first)
			}
			if tt.wantErr {
				_, _, _, err := recovery.Open(dir, &recovery.Options{Log: wlog.Options{Logger: quiet}})
				if !errors.Is(err, index.ErrInconsistent) {
					t.Fatalf("Open = %v, want ErrInconsistent", err)
				}
				return
			}
			_, x, rep := open(t, dir, &recovery.Options{Now: t0.Add(time.Hour)})
			if rep.FirstIndex != first || x.Len() != 2 || x.NextID() != 21 {
				t.Errorf("FirstIndex %d Len %d NextID %d, want %d 2 21", rep.FirstIndex, x.Len(), x.NextID(), first)
			}
			if rep.Voided != 1 || x.Job(1).State != index.Pending || x.Job(1).Attempt != 1 {
				t.Errorf("carried lease not voided: Voided %d, job 1 %s attempt %d", rep.Voided, x.Job(1).State, x.Job(1).Attempt)
			}
		})
	}
}
