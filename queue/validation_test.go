package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPayloadTooLarge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{MaxPayload: 16})
	big := []byte(strings.Repeat("x", 17))
	fits := []byte(strings.Repeat("x", 16))
	lastIndex := func() uint64 {
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Log.LastIndex
	}
	start := lastIndex()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Enqueue", func() error { _, err := q.Enqueue(ctx, NewJob{Payload: big}); return err }},
		{"EnqueueBatch", func() error {
			_, err := q.EnqueueBatch(ctx, []NewJob{{Payload: fits}, {Payload: big}, {Payload: fits}})
			return err
		}},
	} {
		err := tc.call()
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "MaxPayload") {
			t.Fatalf("%s(17 bytes, limit 16) = %v, want ErrTooLarge naming MaxPayload", tc.name, err)
		}
	}
	if all, _ := q.Jobs(ctx, JobFilter{}); len(all) != 0 || lastIndex() != start {
		t.Fatalf("refused enqueues left %d jobs, log index %d (was %d)", len(all), lastIndex(), start)
	}
	id := enqueueT(t, q, NewJob{Payload: fits})
	if id != 1 {
		t.Fatalf("first accepted job got ID %d: refused ones used IDs", id)
	}

	l := leaseT(t, q, "")
	if err := q.Complete(ctx, l.Token, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Complete(17-byte result) = %v, want ErrTooLarge", err)
	}
	if _, err := q.CompleteAndEnqueue(ctx, l.Token, nil, []NewJob{{Payload: big}}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("CompleteAndEnqueue(17-byte follow-up) = %v, want ErrTooLarge", err)
	}
	if j := getT(t, q, id); j.State != StateLeased {
		t.Fatalf("refused completions left the job %s", j.State)
	}
	if err := q.Complete(ctx, l.Token, fits); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyPayload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mc := startClock()
			dir := t.TempDir()
			q := openTest(t, dir, &Options{Clock: mc})
			id := enqueueT(t, q, NewJob{Payload: tc.payload})
			emptyNonNil := func(where string, b []byte) {
				t.Helper()
				if b == nil || len(b) != 0 {
					t.Errorf("%s: payload %#v, want empty and non-nil", where, b)
				}
			}
			emptyNonNil("Get", getT(t, q, id).Payload)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = openTest(t, dir, &Options{Clock: mc})
			emptyNonNil("Get after reopen", getT(t, q, id).Payload)
			emptyNonNil("Lease after reopen", leaseT(t, q, "").Job.Payload)
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	enqueueT(t, q, NewJob{})
	const unknown = 999
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := q.Get(ctx, unknown); return err }},
		{"Wait", func() error { _, err := q.Wait(ctx, unknown); return err }},
		{"Cancel", func() error { return q.Cancel(ctx, unknown) }},
		{"Requeue", func() error { return q.Requeue(ctx, []uint64{unknown}, RequeueOptions{}) }},
		{"Purge", func() error { return q.Purge(ctx, []uint64{unknown}) }},
		{"Get(0)", func() error { _, err := q.Get(ctx, 0); return err }},
	} {
		if err := tc.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s = %v, want ErrNotFound", tc.name, err)
		}
	}
	if err := q.Complete(ctx, Token{Job: unknown, Attempt: 1}, nil); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Complete(unknown job) = %v, want ErrLeaseLost", err)
	}
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		field string
		opts  Options
	}{
		{"MaxAttempts", Options{MaxAttempts: -1}},
		{"LeaseDuration", Options{LeaseDuration: -time.Second}},
		{"SyncInterval", Options{SyncInterval: -time.Second}},
		{"KeyRetention", Options{KeyRetention: -time.Second}},
		{"MaintenanceInterval", Options{MaintenanceInterval: -time.Second}},
		{"DeadMaxAge", Options{DeadMaxAge: -time.Second}},
		{"DeadMaxCount", Options{DeadMaxCount: -1}},
		{"MaxPayload", Options{MaxPayload: -1}},
		{"SegmentSize", Options{SegmentSize: -1}},
		{"Durability", Options{Durability: 7}},
		{"Backoff.Jitter", Options{Backoff: Backoff{Jitter: 2}}},
		{"Backoff.Jitter", Options{Backoff: Backoff{Jitter: -0.1}}},
		{"Backoff.Jitter", Options{Backoff: Backoff{Jitter: math.NaN()}}},
		{"Backoff.Factor", Options{Backoff: Backoff{Factor: 0.5}}},
		{"Backoff", Options{Backoff: Backoff{Factor: math.NaN()}}},
		{"Backoff", Options{Backoff: Backoff{Base: -time.Second}}},
		{"Backoff", Options{Backoff: Backoff{Cap: -time.Second}}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "q")
			q, err := Open(dir, &tc.opts)
			if err == nil {
				q.Close()
				t.Fatalf("Open(%+v) succeeded", tc.opts)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options."+tc.field) {
				t.Fatalf("Open = %v, want ErrInvalid naming Options.%s", err, tc.field)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Open with invalid options created %s (%v)", dir, err)
			}
		})
	}
}

func TestOpenAppliesDefaults(t *testing.T) {
	t.Parallel()
	opts := &Options{Logger: openTestLogger()}
	q, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !reflect.DeepEqual(*opts, Options{Logger: opts.Logger}) {
		t.Errorf("Open changed the caller's options: %+v", *opts)
	}
	o := q.Options()
	if o.MaxAttempts != 5 || o.LeaseDuration != 30*time.Second || o.KeyRetention != 24*time.Hour ||
		o.MaxPayload != 16<<20 || o.Durability != Sync || o.Clock == nil || o.Rand == nil ||
		o.Backoff != (Backoff{Base: time.Second, Factor: 2, Cap: time.Hour}) {
		t.Errorf("defaults %+v", o)
	}
}

func TestInvalidNewJob(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	for _, tc := range []struct {
		field string
		job   NewJob
	}{
		{"NewJob.Delay", NewJob{Delay: -time.Second}},
		{"NewJob.MaxAttempts", NewJob{MaxAttempts: -1}},
		{"NewJob.MaxAttempts", NewJob{MaxAttempts: math.MaxInt32 + 1}},
		{"NewJob.Timeout", NewJob{Timeout: -time.Second}},
		{"NewJob.Queue", NewJob{Queue: strings.Repeat("q", 256)}},
		{"NewJob.Key", NewJob{Key: strings.Repeat("k", 1025)}},
		{"NewJob.Backoff", NewJob{Backoff: &Backoff{Base: -time.Second}}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			_, err := q.Enqueue(ctx, tc.job)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Enqueue = %v, want ErrInvalid naming %s", err, tc.field)
			}
			_, err = q.EnqueueBatch(ctx, []NewJob{{}, tc.job})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "job 1") {
				t.Fatalf("EnqueueBatch = %v, want ErrInvalid naming job 1", err)
			}
		})
	}
	if all, _ := q.Jobs(ctx, JobFilter{}); len(all) != 0 {
		t.Fatalf("invalid jobs enqueued %d jobs", len(all))
	}
	// The limits themselves are fine.
	enqueueT(t, q, NewJob{Queue: strings.Repeat("q", 255), Key: strings.Repeat("k", 1024)})
}

// TestEnqueueBatchLeavesInput: the caller's slice is the caller's; filling in
// a default there is a data race when a batch is shared between goroutines.
func TestEnqueueBatchLeavesInput(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	jobs := []NewJob{{Payload: []byte("a")}}
	if _, err := q.EnqueueBatch(t.Context(), jobs); err != nil {
		t.Fatal(err)
	}
	if jobs[0].Queue != "" {
		t.Errorf("EnqueueBatch set the caller's NewJob.Queue to %q", jobs[0].Queue)
	}
	l := leaseT(t, q, "")
	then := []NewJob{{Payload: []byte("b")}}
	if _, err := q.CompleteAndEnqueue(t.Context(), l.Token, nil, then); err != nil {
		t.Fatal(err)
	}
	if then[0].Queue != "" {
		t.Errorf("CompleteAndEnqueue set the caller's NewJob.Queue to %q", then[0].Queue)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	ids := []uint64{1}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Enqueue", func() error { _, err := q.Enqueue(ctx, NewJob{}); return err }},
		{"EnqueueBatch", func() error { _, err := q.EnqueueBatch(ctx, []NewJob{{}}); return err }},
		{"Lease", func() error { _, err := q.Lease(ctx, ""); return err }},
		{"TryLease", func() error { _, err := q.TryLease(ctx, ""); return err }},
		{"LeaseN", func() error { _, err := q.LeaseN(ctx, "", 2); return err }},
		{"TryLeaseN", func() error { _, err := q.TryLeaseN(ctx, "", 2); return err }},
		{"Complete", func() error { return q.Complete(ctx, l.Token, nil) }},
		{"CompleteAndEnqueue", func() error { _, err := q.CompleteAndEnqueue(ctx, l.Token, nil, []NewJob{{}}); return err }},
		{"CompleteBatch", func() error { _, err := q.CompleteBatch(ctx, []Completion{{Token: l.Token}}); return err }},
		{"Fail", func() error { return q.Fail(ctx, l.Token, errors.New("x")) }},
		{"Extend", func() error { _, err := q.Extend(ctx, l.Token, time.Second); return err }},
		{"Release", func() error { return q.Release(ctx, l.Token) }},
		{"Get", func() error { _, err := q.Get(ctx, 1); return err }},
		{"Wait", func() error { _, err := q.Wait(ctx, 1); return err }},
		{"Jobs", func() error { _, err := q.Jobs(ctx, JobFilter{}); return err }},
		{"Stats", func() error { _, err := q.Stats(ctx); return err }},
		{"Dead", func() error { _, err := q.Dead(ctx, DeadFilter{}); return err }},
		{"Requeue", func() error { return q.Requeue(ctx, ids, RequeueOptions{}) }},
		{"RequeueDead", func() error { _, err := q.RequeueDead(ctx, DeadFilter{}, RequeueOptions{}); return err }},
		{"Purge", func() error { return q.Purge(ctx, ids) }},
		{"PurgeDead", func() error { _, err := q.PurgeDead(ctx, DeadFilter{}); return err }},
		{"Cancel", func() error { return q.Cancel(ctx, 1) }},
		{"Pause", func() error { return q.Pause(ctx, "") }},
		{"Resume", func() error { return q.Resume(ctx, "") }},
		{"Compact", func() error { _, err := q.Compact(ctx); return err }},
	} {
		if err := tc.call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tc.name, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	writeFile := func(t *testing.T, dir, name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"unrelated file", func(t *testing.T, dir string) { writeFile(t, dir, "notes.txt", "mine") }, ErrNotQueue},
		{"unknown FORMAT", func(t *testing.T, dir string) { writeFile(t, dir, "FORMAT", "sqlite 3\n") }, ErrNotQueue},
		{"newer version", func(t *testing.T, dir string) { writeFile(t, dir, "FORMAT", "walq 9\n") }, ErrVersion},
	} {
		for _, ro := range []bool{false, true} {
			t.Run(tc.name+"/readonly="+strconv.FormatBool(ro), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				tc.setup(t, dir)
				before := listDir(t, dir)
				q, err := Open(dir, &Options{ReadOnly: ro, Logger: openTestLogger()})
				if err == nil {
					q.Close()
					t.Fatal("Open succeeded")
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("Open = %v, want %v", err, tc.want)
				}
				if after := listDir(t, dir); !reflect.DeepEqual(after, before) {
					t.Errorf("the refused Open changed the directory: %v, was %v", after, before)
				}
			})
		}
	}

	t.Run("open in this process", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		q := openTest(t, dir, nil)
		for _, path := range []string{dir, link} {
			q2, err := Open(path, &Options{Logger: openTestLogger()})
			if err == nil {
				q2.Close()
				t.Fatalf("second Open(%s) succeeded", path)
			}
			var le *LockedError
			if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || !le.InProcess ||
				!strings.Contains(err.Error(), "already open in this process") || strings.Contains(err.Error(), "pid") {
				t.Fatalf("second Open(%s) = %v, want ErrLocked saying it is already open in this process", path, err)
			}
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		openTest(t, dir, nil) // the lock went with Close
	})

	t.Run("open in another process", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		pid := holdInChild(t, dir)
		q, err := Open(dir, &Options{Logger: openTestLogger()})
		if err == nil {
			q.Close()
			t.Fatal("Open of a directory another process holds succeeded")
		}
		var le *LockedError
		if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.InProcess || le.PID != pid ||
			!strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) || strings.Count(err.Error(), "walq") != 1 {
			t.Fatalf("Open = %v (%+v), want ErrLocked naming pid %d, with one walq prefix", err, le, pid)
		}
	})

	t.Run("regular file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{file, filepath.Join(file, "sub")} {
			for _, ro := range []bool{false, true} {
				q, err := Open(path, &Options{ReadOnly: ro, Logger: openTestLogger()})
				if err == nil {
					q.Close()
					t.Fatalf("Open(%s, read-only %v) succeeded", path, ro)
				}
				if !errors.Is(err, ErrNotQueue) || !strings.Contains(err.Error(), "not a directory") {
					t.Errorf("Open(%s, read-only %v) = %v, want ErrNotQueue saying it is not a directory", path, ro, err)
				}
			}
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "mine" {
			t.Fatalf("the file is now %q, %v", b, err)
		}
	})

	t.Run("read-only needs a queue", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "missing")
		if q, err := Open(dir, &Options{ReadOnly: true}); err == nil {
			q.Close()
			t.Fatal("read-only Open of a missing directory succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read-only Open created %s", dir)
		}
	})
}

// listDir names the files of dir with their sizes.
func listDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = info.Size()
	}
	return out
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mc := startClock()
	dir := t.TempDir()
	w := openTest(t, dir, &Options{Clock: mc})
	enqueueT(t, w, NewJob{Payload: []byte("ready")})
	done := enqueueT(t, w, NewJob{Queue: "w", Payload: []byte("done")})
	if err := w.Complete(ctx, leaseT(t, w, "w").Token, []byte("result")); err != nil {
		t.Fatal(err)
	}
	dead := enqueueT(t, w, NewJob{Queue: "w"})
	if err := w.Fail(ctx, leaseT(t, w, "w").Token, Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	leased := enqueueT(t, w, NewJob{Queue: "w"})
	l := leaseT(t, w, "w")
	want := stateOf(t, w)
	files := listDir(t, dir)

	r := openTest(t, dir, &Options{Clock: mc, ReadOnly: true})
	if got := stateOf(t, r); !reflect.DeepEqual(got, want) {
		t.Fatalf("read-only view:\n got %+v\nwant %+v", got, want)
	}
	if j := getT(t, r, leased); j.State != StateLeased {
		t.Fatalf("read-only open voided a lease: %s", j.State)
	}
	if j := getT(t, r, done); string(j.Result) != "result" {
		t.Fatalf("read-only Get result %q", j.Result)
	}
	if res, err := r.Wait(ctx, done); err != nil || string(res) != "result" {
		t.Fatalf("read-only Wait = %q, %v", res, err)
	}
	if ds, err := r.Dead(ctx, DeadFilter{}); err != nil || len(ds) != 1 || ds[0].ID != dead {
		t.Fatalf("read-only Dead = %v, %v", ds, err)
	}

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Enqueue", func() error { _, err := r.Enqueue(ctx, NewJob{}); return err }},
		{"EnqueueBatch", func() error { _, err := r.EnqueueBatch(ctx, []NewJob{{}}); return err }},
		{"Lease", func() error { _, err := r.Lease(ctx, ""); return err }},
		{"TryLease", func() error { _, err := r.TryLease(ctx, ""); return err }},
		{"LeaseN", func() error { _, err := r.LeaseN(ctx, "", 2); return err }},
		{"TryLeaseN", func() error { _, err := r.TryLeaseN(ctx, "", 2); return err }},
		{"Complete", func() error { return r.Complete(ctx, l.Token, nil) }},
		{"CompleteAndEnqueue", func() error { _, err := r.CompleteAndEnqueue(ctx, l.Token, nil, nil); return err }},
		{"CompleteBatch", func() error { _, err := r.CompleteBatch(ctx, []Completion{{Token: l.Token}}); return err }},
		{"Fail", func() error { return r.Fail(ctx, l.Token, errors.New("x")) }},
		{"Extend", func() error { _, err := r.Extend(ctx, l.Token, 0); return err }},
		{"Release", func() error { return r.Release(ctx, l.Token) }},
		{"Cancel", func() error { return r.Cancel(ctx, 1) }},
		{"Requeue", func() error { return r.Requeue(ctx, []uint64{dead}, RequeueOptions{}) }},
		{"RequeueDead", func() error { _, err := r.RequeueDead(ctx, DeadFilter{}, RequeueOptions{}); return err }},
		{"Purge", func() error { return r.Purge(ctx, []uint64{done}) }},
		{"PurgeDead", func() error { _, err := r.PurgeDead(ctx, DeadFilter{}); return err }},
		{"Pause", func() error { return r.Pause(ctx, "") }},
		{"Resume", func() error { return r.Resume(ctx, "") }},
		{"Compact", func() error { _, err := r.Compact(ctx); return err }},
		// Changing calls refuse even when they would have nothing to do.
		{"RequeueDead matching nothing", func() error {
			_, err := r.RequeueDead(ctx, DeadFilter{Queue: "none"}, RequeueOptions{})
			return err
		}},
		{"PurgeDead matching nothing", func() error { _, err := r.PurgeDead(ctx, DeadFilter{Queue: "none"}); return err }},
	} {
		if err := tc.call(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("read-only %s = %v, want ErrReadOnly", tc.name, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, files) {
		t.Errorf("the read-only queue changed the directory: %v, was %v", got, files)
	}
	// The writer is unaffected.
	if err := w.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
}

// holdInChild opens dir for writing in a child process, which holds it
// until the test ends, and returns the child's pid.
func holdInChild(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WALQ_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	return cmd.Process.Pid
}

// TestHoldChild is holdInChild's child: it opens WALQ_HOLD_DIR, says so,
// and closes it when its standard input ends.
func TestHoldChild(t *testing.T) {
	dir := os.Getenv("WALQ_HOLD_DIR")
	if dir == "" {
		t.Skip("run by holdInChild")
	}
	q, err := Open(dir, &Options{Logger: openTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("holding")
	io.Copy(io.Discard, os.Stdin)
	q.Close()
}
