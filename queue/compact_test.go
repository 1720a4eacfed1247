package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// compactOpts are small-segment options for compaction tests.
func compactOpts(mc *clock.Mock) *Options {
	return &Options{Clock: mc, SegmentSize: 16 << 10, CompactRatio: -1, KeyRetention: time.Minute}
}

func newMock() *clock.Mock {
	mc := clock.NewMock()
	mc.Set(time.Unix(1_700_000_000, 0))
	return mc
}

// copyDir copies every regular file of src into a new directory: taken
// while a queue is open, it is the image a crash would leave (every call
// that returned was durable).
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

// fullListing returns every job with payload and result, for comparing
// states across reopens.
func fullListing(t *testing.T, q *Queue) []*Job {
	t.Helper()
	ctx := context.Background()
	js, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range js {
		if js[i], err = q.Get(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// mixedWorkload leaves jobs in every state but leased, spread over many
// segments, with most of the log dead.
func mixedWorkload(t *testing.T, q *Queue, mc *clock.Mock, rounds int) {
	t.Helper()
	ctx := context.Background()
	payload := make([]byte, 200)
	for i := 0; i < rounds; i++ {
		copy(payload, fmt.Sprintf("job %d", i))
		r, err := q.Enqueue(ctx, NewJob{Payload: payload, Key: fmt.Sprintf("k%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		l, err := q.TryLease(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		switch i % 10 {
		case 0:
			err = q.Fail(ctx, l.Token, Permanent(errors.New("bad input")))
		case 1:
			err = q.Fail(ctx, l.Token, errors.New("flaky"))
		default:
			err = q.Complete(ctx, l.Token, []byte(fmt.Sprintf("result %d", r.ID)))
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if _, err := q.Enqueue(ctx, NewJob{Queue: "later", Payload: payload, Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		mc.Add(time.Second)
	}
	if err := q.Pause(ctx, "later"); err != nil {
		t.Fatal(err)
	}
}

func TestCompactKeepsStateAcrossReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMock()
	dir := t.TempDir()
	q, err := Open(dir, compactOpts(mc))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	mixedWorkload(t, q, mc, 600)
	before := fullListing(t, q)
	segs := q.log.Segments()
	st, err := q.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SegmentsRemoved == 0 || st.SizeAfter >= st.SizeBefore || st.Purged == 0 || st.Carried == 0 {
		t.Fatalf("compaction did too little: %+v (segments before: %d)", st, segs)
	}
	// Compaction changes nothing but what retention forgets: completed
	// jobs that finished a minute or more ago.
	var want []*Job
	for _, j := range before {
		if j.State == StateCompleted && !j.FinishedAt.Add(time.Minute).After(mc.Now()) {
			continue
		}
		want = append(want, j)
	}
	if len(want) != len(before)-st.Purged {
		t.Fatalf("purged %d jobs, retention explains %d", st.Purged, len(before)-len(want))
	}
	if got := fullListing(t, q); !reflect.DeepEqual(got, want) {
		t.Fatalf("state changed by compaction (purged %d)", st.Purged)
	}
	// Retention purged the completed jobs older than a minute: the rest
	// of the listing is the same across a reopen.
	after := fullListing(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(dir, compactOpts(mc))
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if q2.log.FirstIndex() == 1 {
		t.Fatal("log front was not truncated")
	}
	if got := fullListing(t, q2); !reflect.DeepEqual(got, after) {
		t.Fatal("state differs after reopening a compacted log")
	}
	// The compacted queue works on: new IDs do not reuse old ones.
	r, err := q2.Enqueue(ctx, NewJob{Payload: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range before {
		if j.ID >= r.ID {
			t.Fatalf("new job %d reuses or precedes old ID %d", r.ID, j.ID)
		}
	}
	if err := q2.check(); err != nil {
		t.Fatal(err)
	}
}

func TestCompactCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"carry", "checkpoint", "truncate", "partial-truncate", "done"} {
		t.Run("step="+step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			mc := newMock()
			dir := t.TempDir()
			opts := compactOpts(mc)
			opts.KeyRetention = 24 * time.Hour // nothing purged: every job carried
			var image string
			hit := 0
			inject(t, dir, &hooks{compact: func(s string) error {
				want := step
				if step == "partial-truncate" {
					want = "truncate"
				}
				if s != want {
					return nil
				}
				hit++
				if step == "carry" && hit < 2 { // crash after some carries
					return nil
				}
				image = copyDir(t, dir)
				return errors.New("injected crash")
			}})
			q, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			mixedWorkload(t, q, mc, 400)
			want := fullListing(t, q)
			_, err = q.Compact(ctx)
			if step == "done" {
				if err != nil {
					t.Fatal(err)
				}
				image = copyDir(t, dir)
			} else if err == nil {
				t.Fatalf("hook at %q did not fire", step)
			}
			if step == "partial-truncate" {
				// A crash while removing old segments leaves a suffix.
				segs, err := filepath.Glob(filepath.Join(image, "0*"))
				if err != nil || len(segs) < 3 {
					t.Fatalf("want several segments, have %v (%v)", segs, err)
				}
				if err := os.Remove(segs[0]); err != nil {
					t.Fatal(err)
				}
			}
			q2, err := Open(image, &Options{Clock: mc, SegmentSize: 16 << 10, CompactRatio: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close()
			if got := fullListing(t, q2); !reflect.DeepEqual(got, want) {
				t.Fatalf("crash at %q changed the state", step)
			}
			if err := q2.check(); err != nil {
				t.Fatal(err)
			}
			// Compaction after recovery finishes the job.
			if _, err := q2.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			if got := fullListing(t, q2); !reflect.DeepEqual(got, want) {
				t.Fatal("compaction after recovery changed the state")
			}
		})
	}
}

// TestCompactBoundsDisk pushes more than 20 segments' worth of steady work
// (enqueue, lease, complete) through the queue and checks that the log stays
// within CompactRatio × live bytes plus a few segments.
func TestCompactBoundsDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := newMock()
	opts := compactOpts(mc)
	opts.CompactRatio = 2
	opts.KeyRetention = time.Second
	opts.MaintenanceInterval = time.Second
	q, err := Open(noBackgroundDir(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	seg := int64(q.log.SegmentSize())
	payload := make([]byte, 256)
	var written int64
	compactions := 0
	for written < 20*seg {
		r, err := q.Enqueue(ctx, NewJob{Payload: payload, Key: fmt.Sprintf("key-%d", written)})
		if err != nil {
			t.Fatal(err)
		}
		l, err := q.TryLease(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(err)
		}
		written += int64(len(payload)) + 150
		mc.Add(100 * time.Millisecond)
		// The background compactor's two triggers, run in line so that
		// the bound can be checked after every step: the log outgrew
		// the live data, or a maintenance interval passed.
		q.mu.Lock()
		due := q.compactDue() || r.ID%uint64(opts.MaintenanceInterval/(100*time.Millisecond)) == 0
		q.mu.Unlock()
		if due {
			if _, err := q.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			compactions++
		}
		st, err := q.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if bound := 2*st.Log.LiveBytes + 4*seg; st.Log.Size > bound {
			t.Fatalf("after job %d: log is %d bytes, bound %d (live %d)", r.ID, st.Log.Size, bound, st.Log.LiveBytes)
		}
	}
	if compactions == 0 {
		t.Fatal("no compaction was due")
	}
	t.Logf("%d compactions for %d bytes of work", compactions, written)
}
