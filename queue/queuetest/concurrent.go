package queuetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// testConcurrentExactlyOnce: producers racing on the same keys and
// consumers racing on the same jobs, some of them failing attempts: every
// key makes one job, every job completes exactly once, with its own result,
// and none is lost.
func testConcurrentExactlyOnce(t *testing.T, h *Harness) {
	const producers, consumers, keyed, unkeyed = 4, 4, 50, 25
	v := open(t, h, Config{MaxAttempts: 1000})

	var (
		mu        sync.Mutex
		byKey     = map[string]uint64{}        // the job each key got
		payload   = map[uint64]string{}        // each job's payload
		completed = map[uint64]int{}           // successful Complete calls per job
		leased    = map[queue.Token]struct{}{} // every token handed out
	)
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range keyed + unkeyed {
				nj := queue.NewJob{Queue: "cc", Payload: []byte(fmt.Sprintf("p%d-%d", p, i))}
				if i < keyed {
					k := (i + p*7) % keyed // the producers take the keys in different orders
					nj.Key, nj.Payload = fmt.Sprintf("key-%d", k), []byte(fmt.Sprintf("key-%d", k))
				}
				res, err := v.e.Enqueue(v.ctx, nj)
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				mu.Lock()
				if nj.Key != "" {
					if id, ok := byKey[nj.Key]; ok && id != res.ID {
						t.Errorf("key %s made jobs %d and %d", nj.Key, id, res.ID)
					}
					byKey[nj.Key] = res.ID
				}
				payload[res.ID] = string(nj.Payload)
				mu.Unlock()
			}
		}()
	}

	ctx, stop := context.WithCancel(v.ctx)
	defer stop()
	var cwg sync.WaitGroup
	for c := range consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for {
				l, err := v.e.Lease(ctx, "cc")
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Lease: %v", err)
					}
					return
				}
				mu.Lock()
				if _, dup := leased[l.Token]; dup {
					t.Errorf("token %+v handed out twice", l.Token)
				}
				leased[l.Token] = struct{}{}
				mu.Unlock()
				if r.IntN(4) == 0 {
					if err := v.e.Fail(v.ctx, l.Token, queue.RetryAfter(0, errors.New("flaky"))); err != nil {
						t.Errorf("Fail(job %d): %v", l.Job.ID, err)
					}
					continue
				}
				if err := v.e.Complete(v.ctx, l.Token, l.Job.Payload); err != nil {
					t.Errorf("Complete(job %d): %v", l.Job.ID, err)
					continue
				}
				mu.Lock()
				completed[l.Job.ID]++
				mu.Unlock()
			}
		}()
	}
	pwg.Wait()
	if t.Failed() {
		stop()
		cwg.Wait()
		return
	}
	if want := keyed + producers*unkeyed; len(payload) != want {
		t.Errorf("%d distinct jobs, want %d", len(payload), want)
	}
	wctx, cancel := v.patience()
	defer cancel()
	for id, p := range payload {
		r, err := v.e.Wait(wctx, id)
		if err != nil || string(r) != p {
			t.Errorf("Wait(job %d) = %q, %v; want its payload %q", id, r, err, p)
		}
	}
	stop()
	cwg.Wait()
	for id := range payload {
		if n := completed[id]; n != 1 {
			t.Errorf("job %d completed %d times, want once", id, n)
		}
	}
	if len(completed) != len(payload) {
		t.Errorf("%d jobs completed, %d enqueued", len(completed), len(payload))
	}
	if st := v.stats("cc"); st.Completed != len(payload) || st.Ready+st.Leased+st.Scheduled+st.Dead != 0 {
		t.Errorf("stats after the run: %+v, want %d completed and nothing else", st, len(payload))
	}
}

// testWorker: the worker runtime runs over the engine: results, retries,
// permanent failures, each job's outcome reported once.
func testWorker(t *testing.T, h *Harness) {
	const jobs = 40
	v := open(t, h, Config{MaxAttempts: 3})
	var mu sync.Mutex
	outcomes := map[uint64][]string{}
	rt, err := worker.New(v.e, &worker.Options{Concurrency: 4, Logger: slog.New(slog.DiscardHandler),
		OnDurable: func(job *queue.Job, result []byte, err error) {
			mu.Lock()
			defer mu.Unlock()
			o := "ok:" + string(result)
			switch {
			case queue.IsPermanent(err):
				o = "dead:" + errors.Unwrap(err).Error()
			case err != nil:
				o = "retry"
			}
			outcomes[job.ID] = append(outcomes[job.ID], o)
		}})
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	err = rt.Handle("wk", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		switch p := string(job.Payload); {
		case p == "perm":
			return nil, queue.Permanent(errors.New("never"))
		case p == "flaky" && job.Attempt == 1:
			return nil, queue.RetryAfter(0, errors.New("once"))
		default:
			return []byte("did " + p), nil
		}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{"plain", "flaky", "perm"}
	var all []queue.Enqueued
	for i := range jobs {
		all = append(all, v.enqueue(queue.NewJob{Queue: "wk", Payload: []byte(kinds[i%3])}))
	}
	if err := rt.Start(v.ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := v.patience()
	defer cancel()
	for i, res := range all {
		r, err := v.e.Wait(ctx, res.ID)
		switch kinds[i%3] {
		case "perm":
			if !errors.Is(err, queue.ErrDead) {
				t.Errorf("Wait(perm job %d) = %v, want ErrDead", res.ID, err)
			}
		default:
			if err != nil || string(r) != "did "+kinds[i%3] {
				t.Errorf("Wait(%s job %d) = %q, %v", kinds[i%3], res.ID, r, err)
			}
		}
	}
	if err := rt.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, res := range all {
		want := map[string][]string{
			"plain": {"ok:did plain"},
			"flaky": {"retry", "ok:did flaky"},
			"perm":  {"dead:never"},
		}[kinds[i%3]]
		if got := outcomes[res.ID]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("OnDurable for %s job %d: %q, want %q", kinds[i%3], res.ID, got, want)
		}
	}
}

// testWorkerStop: Stop hands a running job back uncounted when its
// deadline passes.
func testWorkerStop(t *testing.T, h *Harness) {
	v := open(t, h, Config{MaxAttempts: 1})
	rt, err := worker.New(v.e, &worker.Options{Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	if err := rt.Handle("ws", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	res := v.enqueue(queue.NewJob{Queue: "ws"})
	if err := rt.Start(v.ctx); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithCancel(v.ctx)
	cancel()
	wantErr(t, "Stop with an ended context", rt.Stop(ctx), context.Canceled)
	if j := v.state(res.ID, queue.StateReady); j.Attempt != 0 {
		t.Fatalf("job after Stop: attempt %d, want 0 (the attempt was not counted)", j.Attempt)
	}
	if l := v.lease("ws"); l.Token.Attempt != 1 {
		t.Fatalf("attempt after Stop = %d, want 1", l.Token.Attempt)
	}
}
