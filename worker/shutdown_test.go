package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// What the shutdown test's handler does, by payload.
const (
	finishes   = "finishes"   // returns once the test lets it, before Stop's deadline
	honoursCtx = "honoursCtx" // returns ctx.Err() when its context ends
	ignoresCtx = "ignoresCtx" // never returns while the test runs
	prefetched = "prefetched" // leased ahead; must never start once Stop began
)

func TestGracefulStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		running []string // one per handler, all running when Stop is called
		expired bool     // Stop's context has ended before Stop is called
		want    error    // what Stop returns
	}{
		{"all finish in time", []string{finishes, finishes}, false, nil},
		{"unfinished handlers are cancelled", []string{finishes, honoursCtx, ignoresCtx}, false, context.Canceled},
		{"deadline already passed", []string{honoursCtx, ignoresCtx}, true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, nil)
			sub := q.Subscribe(256)
			all := q.Subscribe(256) // read only at the end, to count completions
			n := len(tc.running)

			// n running jobs, then n more that the fetcher leases ahead
			// (Prefetch defaults to Concurrency) and that stay queued
			// behind the running ones.
			var batch []queue.NewJob
			for _, p := range tc.running {
				batch = append(batch, queue.NewJob{Queue: "mail", Payload: []byte(p)})
			}
			for range n {
				batch = append(batch, queue.NewJob{Queue: "mail", Payload: []byte(prefetched)})
			}
			res, err := q.EnqueueBatch(t.Context(), batch)
			if err != nil {
				t.Fatal(err)
			}
			ids := make(map[string][]uint64)
			for i, r := range res {
				p := string(batch[i].Payload)
				ids[p] = append(ids[p], r.ID)
			}

			started := make(chan string, 2*n)
			finish := make(chan struct{})
			stuck := make(chan struct{})
			t.Cleanup(func() { close(stuck) })
			causes := make(chan error, n)
			var prefetchedRan atomic.Int32
			rt := startRuntime(t, q, &Options{Concurrency: n}, map[string]Handler{
				"mail": func(ctx context.Context, job *queue.Job) ([]byte, error) {
					started <- string(job.Payload)
					switch string(job.Payload) {
					case finishes:
						<-finish
						return []byte("sent"), nil
					case honoursCtx:
						<-ctx.Done()
						causes <- context.Cause(ctx)
						return nil, ctx.Err()
					case ignoresCtx:
						<-stuck
						return []byte("too late"), nil
					}
					prefetchedRan.Add(1)
					return nil, nil
				},
			})
			for i := range n {
				if p := receive(t, started, fmt.Sprintf("handler %d starting", i)); p == prefetched {
					t.Fatalf("a prefetched job started while %d handlers were busy", n)
				}
			}
			for _, id := range ids[prefetched] {
				if j := getJob(t, q, id); j.State != queue.StateLeased {
					t.Fatalf("job %d is %s, want leased ahead", id, j.State)
				}
			}

			stopCtx, cancelStop := context.WithCancel(context.Background())
			defer cancelStop()
			if tc.expired {
				cancelStop()
			}
			stopped := make(chan error, 1)
			go func() { stopped <- rt.Stop(stopCtx) }()
			waitFetchStopped(t, rt)

			if !tc.expired {
				// Stop waits for the handlers that finish in time:
				// their jobs complete, and the free workers hand back
				// the prefetched jobs, uncounted.
				select {
				case err := <-stopped:
					t.Fatalf("Stop returned %v while handlers were running", err)
				default:
				}
				close(finish)
				for _, id := range ids[finishes] {
					if r, err := waitResult(t, q, id); err != nil || string(r) != "sent" {
						t.Fatalf("job %d: Wait = %q, %v; want its result", id, r, err)
					}
				}
				eventsFor(t, sub, queue.EventReleased, ids[prefetched])
				if len(ids[honoursCtx])+len(ids[ignoresCtx]) > 0 {
					select {
					case err := <-stopped:
						t.Fatalf("Stop returned %v before its deadline with handlers still running", err)
					default:
					}
					cancelStop()
				}
			}

			if err := receive(t, stopped, "Stop returning"); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Stop = %v, want %v", err, tc.want)
			}
			for range ids[honoursCtx] {
				if c := receive(t, causes, "cancelled handler"); !errors.Is(c, errShutdown) {
					t.Errorf("cancelled handler's context cause %v, want %v", c, errShutdown)
				}
			}
			if k := prefetchedRan.Load(); k != 0 {
				t.Errorf("%d prefetched job(s) ran after Stop began", k)
			}

			for p, want := range map[string]string{
				finishes:   "completed/1/completed",
				honoursCtx: "ready/0/released",
				ignoresCtx: "ready/0/released",
				prefetched: "ready/0/released",
			} {
				for _, id := range ids[p] {
					j := getJob(t, q, id)
					if got := fmt.Sprintf("%s/%d/%s", j.State, j.Attempt, strings.Join(outcomes(j), ",")); got != want {
						t.Errorf("%s job %d: state/attempts/history %s, want %s", p, id, got, want)
					}
				}
			}
			// Never completed twice: one completed event per finished
			// job, and none for the others.
			completions := map[uint64]int{}
			for {
				select {
				case ev := <-all.C:
					if ev.Kind == queue.EventCompleted {
						completions[ev.Job]++
					}
					continue
				default:
				}
				break
			}
			for _, id := range ids[finishes] {
				if completions[id] != 1 {
					t.Errorf("job %d completed %d times, want once", id, completions[id])
				}
				delete(completions, id)
			}
			for id, k := range completions {
				t.Errorf("job %d, which did not finish, completed %d times", id, k)
			}
		})
	}
}

// waitFetchStopped waits until Stop has begun: it stops leasing first. The
// runtime offers no event for it; polling its context (safe for concurrent
// use) is an observation, bounded by within.
func waitFetchStopped(t *testing.T, rt *Runtime) {
	t.Helper()
	deadline := time.Now().Add(within)
	for rt.fetchCtx.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("Stop did not stop leasing within %v", within)
		}
		runtime.Gosched()
	}
}
