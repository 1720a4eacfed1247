package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// epoch is where the fixtures' mock clock starts.
var epoch = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// result is what one walq run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// walq runs walq's main in process, as the binary would.
func walq(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// walqAt runs walq with its clock set to mc and times shown in UTC, so that
// ages and readiness in the output are deterministic.
func walqAt(t testing.TB, mc *clock.Mock, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := testApp(context.Background(), mc, &out, &errb)
	code := a.main(args)
	return result{code, out.String(), errb.String()}
}

func testApp(ctx context.Context, mc *clock.Mock, stdout, stderr io.Writer) *app {
	a := newApp(ctx, strings.NewReader(""), stdout, stderr)
	a.clock, a.loc, a.poll = mc, time.UTC, 5*time.Millisecond
	return a
}

// wantCode fails the test unless r exited with code.
func wantCode(t testing.TB, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
}

// golden compares got with testdata/name.golden, after replacing dir with
// "DIR"; -update rewrites the file.
func golden(t testing.TB, name, dir, got string) {
	t.Helper()
	if dir != "" {
		got = strings.ReplaceAll(got, dir, "DIR")
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got:\n%s--- want:\n%s", path, got, want)
	}
}

// newMock returns a mock clock at epoch.
func newMock() *clock.Mock {
	mc := clock.NewMock()
	mc.Set(epoch)
	return mc
}

// openQueue opens a writer on dir with the mock clock, quiet and without
// background compaction; cleanup closes it.
func openQueue(t testing.TB, dir string, mc *clock.Mock, opts *queue.Options) *queue.Queue {
	t.Helper()
	var o queue.Options
	if opts != nil {
		o = *opts
	}
	o.Clock = mc
	o.Logger = slog.New(slog.DiscardHandler)
	o.CompactRatio = -1
	q, err := queue.Open(dir, &o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// fixture IDs: what fill leaves in each state.
const (
	jobCompleted = 1 // completed at once, with a result
	jobRetried   = 2 // failed once, backed off, completed
	jobDead      = 3 // permanent error
	jobReady     = 4 // binary payload, queue reports
	jobScheduled = 5 // delayed an hour, queue reports
	jobLeased    = 6 // leased, never finished
	jobCancelled = 7
)

// fill gives q one job in every state, advancing mc between steps so that
// every time in the output is distinct. It ends at epoch+10s.
func fill(t testing.TB, q *queue.Queue, mc *clock.Mock) {
	t.Helper()
	ctx := context.Background()
	enq := func(nj queue.NewJob) {
		t.Helper()
		if _, err := q.Enqueue(ctx, nj); err != nil {
			t.Fatal(err)
		}
	}
	lease := func(name string, want uint64) queue.Token {
		t.Helper()
		l, err := q.TryLease(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Job.ID != want {
			t.Fatalf("leased job %d, want %d", l.Job.ID, want)
		}
		return l.Token
	}
	at := func(d time.Duration) { mc.Set(epoch.Add(d)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 3; i++ {
		enq(queue.NewJob{Queue: "emails", Key: fmt.Sprintf("welcome:%d", i),
			Payload: []byte(fmt.Sprintf(`{"to":"user%d@example.com","template":"welcome"}`, i))})
	}
	at(time.Second)
	tok := lease("emails", jobCompleted)
	at(1500 * time.Millisecond)
	must(q.Complete(ctx, tok, []byte("250 2.0.0 OK")))
	at(2 * time.Second)
	tok = lease("emails", jobRetried)
	at(2200 * time.Millisecond)
	must(q.Fail(ctx, tok, errors.New("smtp 451 4.7.1: try again later")))
	at(2500 * time.Millisecond)
	tok = lease("emails", jobDead)
	at(2600 * time.Millisecond)
	must(q.Fail(ctx, tok, queue.Permanent(errors.New("smtp 550 5.1.1: no such user"))))
	at(4 * time.Second)
	tok = lease("emails", jobRetried)
	at(4100 * time.Millisecond)
	must(q.Complete(ctx, tok, nil))
	at(5 * time.Second)
	enq(queue.NewJob{Queue: "reports", Payload: []byte{0x00, 0x01, 0xfe, 0xff, 'r', 'p', 't'}, Priority: 3})
	enq(queue.NewJob{Queue: "reports", Key: "nightly", Payload: []byte("nightly report"), Delay: time.Hour})
	enq(queue.NewJob{Queue: "emails", Key: "welcome:6", Payload: []byte(`{"to":"user6@example.com"}`)})
	enq(queue.NewJob{Queue: "emails", Key: "cancel-me", Payload: []byte("never sent"), Delay: time.Minute})
	at(6 * time.Second)
	lease("emails", jobLeased)
	at(7 * time.Second)
	must(q.Cancel(ctx, jobCancelled))
	at(10 * time.Second)
}

// fixture builds a closed queue directory holding one job in each state
// and returns it with the clock the CLI should use.
func fixture(t testing.TB) (string, *clock.Mock) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	q := openQueue(t, dir, mc, nil)
	fill(t, q, mc)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, mc
}

// hashDir returns every file of dir with a hash of its bytes and its
// modification time.
func hashDir(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fmt.Sprintf("%x %v %v", sha256.Sum256(b), info.ModTime().UnixNano(), info.Mode())
	}
	return out
}

func sameDir(t testing.TB, before, after map[string]string, what string) {
	t.Helper()
	for name, h := range before {
		if after[name] != h {
			t.Errorf("%s changed %s", what, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s created %s", what, name)
		}
	}
}

// syncBuffer is a goroutine-safe buffer that closes found once its
// contents contain want.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
}

func newSyncBuffer(want string) *syncBuffer {
	return &syncBuffer{want: want, found: make(chan struct{})}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.want != "" && strings.Contains(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.found) })
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
