package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

func TestConcurrency(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    Options
		handler *HandlerOptions
		want    int
	}{
		{"default", Options{}, nil, 4},
		{"one", Options{Concurrency: 1}, nil, 1},
		{"runtime option", Options{Concurrency: 3}, nil, 3},
		{"handler option overrides", Options{Concurrency: 8}, &HandlerOptions{Concurrency: 2}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, nil)
			// More jobs than handlers plus prefetch, so that a runtime
			// that let prefetched jobs run would show it.
			jobs := 3*tc.want + 2
			batch := make([]queue.NewJob, jobs)
			for i := range batch {
				batch[i] = queue.NewJob{Queue: "resize"}
			}
			res, err := q.EnqueueBatch(t.Context(), batch)
			if err != nil {
				t.Fatal(err)
			}

			var (
				mu            sync.Mutex
				running, peak int
			)
			started := make(chan uint64, jobs)
			release := make(chan struct{})
			rt := newRuntime(t, q, &tc.opts)
			err = rt.Handle("resize", func(ctx context.Context, job *queue.Job) ([]byte, error) {
				mu.Lock()
				running++
				peak = max(peak, running)
				mu.Unlock()
				started <- job.ID
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				mu.Lock()
				running--
				mu.Unlock()
				return nil, nil
			}, tc.handler)
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.Start(t.Context()); err != nil {
				t.Fatal(err)
			}

			// Fill every handler, then free them one at a time: each
			// release lets exactly one more job start.
			for i := 0; i < tc.want; i++ {
				receive(t, started, fmt.Sprintf("handler %d of %d starting", i+1, tc.want))
			}
			for i := tc.want; i < jobs; i++ {
				release <- struct{}{}
				receive(t, started, fmt.Sprintf("job %d of %d starting after a release", i+1, jobs))
			}
			for i := 0; i < tc.want; i++ {
				release <- struct{}{}
			}
			for _, r := range res {
				if _, err := waitResult(t, q, r.ID); err != nil {
					t.Fatalf("Wait(%d): %v", r.ID, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if peak != tc.want {
				t.Errorf("at most %d handlers ran at once, want %d", peak, tc.want)
			}
		})
	}
}

func TestResultAndEvents(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	sub := q.Subscribe(64)
	release := make(chan struct{})
	startRuntime(t, q, nil, map[string]Handler{
		"email": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			<-release
			return append([]byte("sent to "), job.Payload...), nil
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "email", Payload: []byte("ada@example.com")})

	// Many waiters, all woken by the one completion.
	const waiters = 10
	results := make(chan string, waiters)
	for range waiters {
		go func() {
			res, err := q.Wait(t.Context(), id)
			results <- fmt.Sprintf("%s %v", res, err)
		}()
	}
	close(release)
	for i := range waiters {
		if got, want := receive(t, results, fmt.Sprintf("waiter %d", i)), "sent to ada@example.com <nil>"; got != want {
			t.Errorf("waiter %d: Wait = %s, want %s", i, got, want)
		}
	}

	// The completion's event is published before Wait wakes, so the
	// three are in the buffer now.
	var got []string
	for _, kind := range []queue.EventKind{queue.EventEnqueued, queue.EventLeased, queue.EventCompleted} {
		ev := nextEvent(t, sub, string(kind), func(ev queue.Event) bool { return ev.Job == id })
		got = append(got, fmt.Sprintf("%s/%s/%d", ev.Kind, ev.Queue, ev.Attempt))
	}
	want := []string{"enqueued/email/0", "leased/email/1", "completed/email/1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestPanicFailsTheAttempt(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	sub := q.Subscribe(64)
	// One worker: the job after the panic runs on the worker that
	// recovered it.
	rt := newRuntime(t, q, &Options{Concurrency: 1})
	if err := rt.Handle("thumbs", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		if string(job.Payload) == "corrupt.png" {
			panic(fmt.Sprintf("decode %s: bad header", job.Payload))
		}
		return []byte("ok"), nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	bad := enqueue(t, q, queue.NewJob{Queue: "thumbs", Payload: []byte("corrupt.png")})
	good := enqueue(t, q, queue.NewJob{Queue: "thumbs", Payload: []byte("cat.png")})
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	ev := nextEvent(t, sub, "retrying after the panic", eventOf(queue.EventRetrying, bad))
	if ev.Attempt != 1 {
		t.Errorf("retrying event: attempt %d, want 1", ev.Attempt)
	}
	if res, err := waitResult(t, q, good); err != nil || string(res) != "ok" {
		t.Fatalf("the job after the panic: Wait = %q, %v; want ok", res, err)
	}
	j := getJob(t, q, bad)
	if j.State != queue.StateScheduled || j.Attempt != 1 {
		t.Errorf("panicked job: %s attempt %d, want scheduled attempt 1", j.State, j.Attempt)
	}
	for _, want := range []string{"panic", "decode corrupt.png: bad header", "worker_test.go"} {
		if !strings.Contains(j.LastError, want) {
			t.Errorf("LastError does not contain %q (the panic, its value, its stack):\n%s", want, j.LastError)
		}
	}
}

func TestHandlerErrorsSteerTheRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		err         error
		maxAttempts int
		wantEvent   queue.EventKind
		wantState   queue.JobState
		wantAttempt int
		wantRunIn   time.Duration // from the failure; checked when scheduled
		wantError   string
	}{
		{"plain error: backoff", errors.New("451 try later"), 0,
			queue.EventRetrying, queue.StateScheduled, 1, time.Second, "451 try later"},
		{"permanent: dead at once", queue.Permanent(errors.New("550 no such user")), 0,
			queue.EventDead, queue.StateDead, 1, 0, "550 no such user"},
		{"wrapped permanent", fmt.Errorf("send: %w", queue.Permanent(errors.New("550 no such user"))), 0,
			queue.EventDead, queue.StateDead, 1, 0, "send: 550 no such user"},
		{"retry after: its delay, attempt counted", queue.RetryAfter(90*time.Second, errors.New("429 slow down")), 0,
			queue.EventRetrying, queue.StateScheduled, 1, 90 * time.Second, "429 slow down"},
		{"retry after on the last attempt: dead", queue.RetryAfter(90*time.Second, errors.New("429 slow down")), 1,
			queue.EventDead, queue.StateDead, 1, 0, "429 slow down"},
		{"snooze: attempt not counted", queue.Snooze(2 * time.Minute), 0,
			queue.EventReleased, queue.StateScheduled, 0, 2 * time.Minute, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, clk := openQueue(t, nil)
			sub := q.Subscribe(64)
			startRuntime(t, q, nil, map[string]Handler{
				"webhooks": func(ctx context.Context, job *queue.Job) ([]byte, error) { return nil, tc.err },
			})
			id := enqueue(t, q, queue.NewJob{Queue: "webhooks", MaxAttempts: tc.maxAttempts})

			ev := nextEvent(t, sub, "the attempt's end", func(ev queue.Event) bool {
				return ev.Job == id && ev.Kind != queue.EventEnqueued && ev.Kind != queue.EventLeased
			})
			if ev.Kind != tc.wantEvent || ev.Attempt != 1 {
				t.Errorf("event %s attempt %d, want %s attempt 1", ev.Kind, ev.Attempt, tc.wantEvent)
			}
			now := clk.Now() // the mock has not moved: the failure happened now
			j := getJob(t, q, id)
			if j.State != tc.wantState || j.Attempt != tc.wantAttempt {
				t.Errorf("job: %s with %d attempt(s) counted, want %s with %d", j.State, j.Attempt, tc.wantState, tc.wantAttempt)
			}
			if tc.wantState == queue.StateScheduled {
				if want := now.Add(tc.wantRunIn); !j.RunAt.Equal(want) || !ev.NextRunAt.Equal(want) {
					t.Errorf("RunAt %v, event NextRunAt %v; want now + %v = %v", j.RunAt, ev.NextRunAt, tc.wantRunIn, want)
				}
			}
			if !strings.Contains(j.LastError, tc.wantError) || (tc.wantError == "" && j.LastError != "") {
				t.Errorf("LastError %q, want it to contain %q", j.LastError, tc.wantError)
			}
			if tc.wantState == queue.StateDead {
				if _, err := waitResult(t, q, id); !errors.Is(err, queue.ErrDead) {
					t.Errorf("Wait = %v, want ErrDead", err)
				}
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    Options
		handler *HandlerOptions
		job     queue.NewJob
		want    time.Duration
	}{
		{"runtime option", Options{Timeout: 5 * time.Second}, nil, queue.NewJob{}, 5 * time.Second},
		{"handler option overrides", Options{Timeout: 5 * time.Second}, &HandlerOptions{Timeout: 7 * time.Second}, queue.NewJob{}, 7 * time.Second},
		{"job overrides", Options{Timeout: 5 * time.Second}, &HandlerOptions{Timeout: 7 * time.Second}, queue.NewJob{Timeout: 3 * time.Second}, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, clk := openQueue(t, nil)
			sub := q.Subscribe(64)
			started := make(chan int, 2)
			stuck := make(chan struct{}) // the first attempt ignores its context and waits for this
			t.Cleanup(func() { close(stuck) })
			rt := newRuntime(t, q, &tc.opts)
			if err := rt.Handle("slow", func(ctx context.Context, job *queue.Job) ([]byte, error) {
				started <- job.Attempt
				if job.Attempt == 1 {
					<-stuck
					return []byte("too late"), nil
				}
				return []byte("in time"), nil
			}, tc.handler); err != nil {
				t.Fatal(err)
			}
			if err := rt.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			nj := tc.job
			nj.Queue = "slow"
			id := enqueue(t, q, nj)

			receive(t, started, "attempt 1 starting")
			clk.Add(tc.want)
			ev := nextEvent(t, sub, "retrying after the timeout", eventOf(queue.EventRetrying, id))
			wantErr := fmt.Sprintf("%v after %v", ErrTimeout, tc.want)
			if !strings.Contains(ev.Error, wantErr) {
				t.Errorf("retrying event error %q, want it to contain %q", ev.Error, wantErr)
			}
			if want := epoch.Add(tc.want + time.Second); !ev.NextRunAt.Equal(want) {
				t.Errorf("NextRunAt %v, want the timeout plus the 1s backoff: %v", ev.NextRunAt, want)
			}
			if j := getJob(t, q, id); j.State != queue.StateScheduled || j.Attempt != 1 || !strings.Contains(j.LastError, ErrTimeout.Error()) {
				t.Errorf("job: %s attempt %d error %q; want scheduled, attempt 1, %q", j.State, j.Attempt, j.LastError, ErrTimeout)
			}

			// The retry runs once the backoff has passed.
			clk.waitTimer(t, ev.NextRunAt)
			clk.Add(ev.NextRunAt.Sub(clk.Now()))
			if a := receive(t, started, "attempt 2 starting"); a != 2 {
				t.Fatalf("started attempt %d, want 2", a)
			}
			if res, err := waitResult(t, q, id); err != nil || string(res) != "in time" {
				t.Fatalf("Wait = %q, %v; want the retry's result", res, err)
			}
			if got := strings.Join(outcomes(getJob(t, q, id)), " "); got != "failed completed" {
				t.Errorf("history %q, want %q", got, "failed completed")
			}
		})
	}
}

// A handler's own deadline (an HTTP client's timeout, say) is a failure
// like any other: its error must be recorded as it is, not replaced by the
// attempt's timeout.
func TestHandlerDeadlineIsNotAttemptTimeout(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	sub := q.Subscribe(64)
	startRuntime(t, q, &Options{Timeout: time.Hour}, map[string]Handler{
		"webhooks": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			return nil, fmt.Errorf("POST https://example.com/hook: %w", context.DeadlineExceeded)
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "webhooks"})
	ev := nextEvent(t, sub, "retrying", eventOf(queue.EventRetrying, id))
	if !strings.Contains(ev.Error, "POST https://example.com/hook") || strings.Contains(ev.Error, ErrTimeout.Error()) {
		t.Errorf("BUG: recorded error %q; want the handler's own error, not %q (worker.go, pool.finish tests "+
			"o.err for context.DeadlineExceeded instead of the attempt context's own Err)", ev.Error, ErrTimeout)
	}
}

func TestHeartbeatKeepsLongJobAlive(t *testing.T) {
	t.Parallel()
	const lease, beat = 30 * time.Second, 10 * time.Second
	q, clk := openQueue(t, &queue.Options{LeaseDuration: lease})
	started := make(chan struct{}, 1)
	finish := make(chan struct{})
	startRuntime(t, q, &Options{Heartbeat: beat, Timeout: time.Hour}, map[string]Handler{
		"reports": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			started <- struct{}{}
			select {
			case <-finish:
				return []byte("report.pdf"), nil
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "reports"})
	receive(t, started, "handler starting")
	clk.waitTickers(t, beat, 1)

	for elapsed := beat; elapsed <= 2*time.Minute; elapsed += beat {
		clk.Add(beat)
		want := epoch.Add(elapsed + lease)
		j := waitJob(t, q, id, "lease extended to "+want.String(), func(j *queue.Job) bool {
			return j.State != queue.StateLeased || j.LeaseDeadline.Equal(want)
		})
		if j.State != queue.StateLeased || j.Attempt != 1 {
			t.Fatalf("after %v: job %s attempt %d (history %v), want still leased, attempt 1", elapsed, j.State, j.Attempt, outcomes(j))
		}
	}
	close(finish)
	if res, err := waitResult(t, q, id); err != nil || string(res) != "report.pdf" {
		t.Fatalf("Wait = %q, %v", res, err)
	}
	j := getJob(t, q, id)
	if len(j.History) != 1 || j.History[0].Outcome != "completed" {
		t.Fatalf("history %v, want one completed attempt", outcomes(j))
	}
	if d := j.History[0].Ended.Sub(j.History[0].Started); d != 2*time.Minute {
		t.Errorf("the attempt ran %v, want 2m", d)
	}
}

func TestLeaseLossCancelsHandler(t *testing.T) {
	t.Parallel()
	// The heartbeat comes too late: the lease runs out at 30s, another
	// worker takes the job, and the heartbeat at 45s finds the lease gone.
	const lease, beat = 30 * time.Second, 45 * time.Second
	q, clk := openQueue(t, &queue.Options{LeaseDuration: lease})
	type seen struct{ err, cause error }
	started := make(chan struct{}, 1)
	lost := make(chan seen, 1)
	startRuntime(t, q, &Options{Concurrency: 1, Heartbeat: beat, Timeout: time.Hour}, map[string]Handler{
		"reports": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			if job.Attempt > 1 {
				return []byte("by the runtime"), nil
			}
			started <- struct{}{}
			<-ctx.Done()
			lost <- seen{ctx.Err(), context.Cause(ctx)}
			return nil, ctx.Err()
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "reports"})
	receive(t, started, "attempt 1 starting")
	clk.waitTickers(t, beat, 1)

	clk.Add(lease + time.Second)
	// Whoever looks first reaps the expired lease and leases the job
	// again: this TryLease, or the runtime's own fetcher.
	var mine *queue.Lease
	if l, err := q.TryLease(t.Context(), "reports"); err == nil {
		mine = l
	} else if !errors.Is(err, queue.ErrNoJob) {
		t.Fatal(err)
	}
	waitJob(t, q, id, "leased again", func(j *queue.Job) bool { return j.State == queue.StateLeased && j.Attempt == 2 })

	clk.Add(beat - lease - time.Second)
	s := receive(t, lost, "attempt 1 seeing its context end")
	if !errors.Is(s.err, context.Canceled) || !errors.Is(s.cause, errLeaseLost) {
		t.Errorf("handler saw Err %v, Cause %v; want context.Canceled, %v", s.err, s.cause, errLeaseLost)
	}

	want := "by the runtime"
	if mine != nil {
		want = "by the test"
		if err := q.Complete(t.Context(), mine.Token, []byte(want)); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := waitResult(t, q, id); err != nil || string(res) != want {
		t.Fatalf("Wait = %q, %v; want %q", res, err, want)
	}
	// The runtime recorded nothing for the lost attempt.
	if got := strings.Join(outcomes(getJob(t, q, id)), " "); got != "expired completed" {
		t.Errorf("history %q, want %q", got, "expired completed")
	}
}

// A job the fetcher leased ahead waits for a free handler. Its lease must
// not run out meanwhile: the job would count an attempt it never ran, and
// its eventual run would be thrown away.
func TestPrefetchedLeaseOutlivesSlowHandler(t *testing.T) {
	t.Parallel()
	const lease, beat = 30 * time.Second, 10 * time.Second
	q, clk := openQueue(t, &queue.Options{LeaseDuration: lease})
	started := make(chan string, 2)
	finish := make(chan struct{})
	var runs atomic.Int32
	startRuntime(t, q, &Options{Concurrency: 1, Heartbeat: beat, Timeout: time.Hour}, map[string]Handler{
		"reports": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			started <- string(job.Payload)
			if string(job.Payload) == "long" {
				<-finish
			} else {
				runs.Add(1)
			}
			return job.Payload, nil
		},
	})
	long := enqueue(t, q, queue.NewJob{Queue: "reports", Payload: []byte("long")})
	short := enqueue(t, q, queue.NewJob{Queue: "reports", Payload: []byte("short"), MaxAttempts: 1})
	if p := receive(t, started, "the long job starting"); p != "long" {
		t.Fatalf("started %q first", p)
	}
	clk.waitTickers(t, beat, 1)
	// A handler is free for the second job only once the first is done:
	// the fetcher leases it ahead.
	waitJob(t, q, short, "leased ahead", func(j *queue.Job) bool { return j.State == queue.StateLeased })
	for elapsed := beat; elapsed <= 2*lease; elapsed += beat {
		clk.Add(beat)
		want := epoch.Add(elapsed + lease)
		waitJob(t, q, long, "lease extended", func(j *queue.Job) bool { return j.LeaseDeadline.Equal(want) })
	}
	close(finish)
	if _, err := waitResult(t, q, long); err != nil {
		t.Fatal(err)
	}
	res, err := waitResult(t, q, short)
	if err != nil || string(res) != "short" || runs.Load() != 1 {
		j := getJob(t, q, short)
		t.Errorf("BUG: prefetched job: Wait = %q, %v after %d run(s), history %v; want completed by its one run. "+
			"worker.go: leases waiting in pool.jobs get no heartbeat, so one that waits longer than the lease "+
			"duration has expired by the time it runs", res, err, runs.Load(), outcomes(j))
	}
}

// A handler that exits its goroutine (runtime.Goexit, as t.FailNow does)
// did not succeed: the attempt must not be recorded as completed.
func TestGoexitIsNotSuccess(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	sub := q.Subscribe(64)
	startRuntime(t, q, nil, map[string]Handler{
		"jobs": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			if job.Attempt == 1 {
				runtime.Goexit()
			}
			return []byte("ok"), nil
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "jobs"})
	ev := nextEvent(t, sub, "the attempt's end", func(ev queue.Event) bool {
		return ev.Job == id && (ev.Kind == queue.EventCompleted || ev.Kind == queue.EventRetrying)
	})
	if ev.Kind != queue.EventRetrying {
		t.Errorf("BUG: a handler that called runtime.Goexit was recorded as %s; want a failed attempt "+
			"(worker.go, pool.run: recover() returns nil for Goexit, so the zero outcome reads as success)", ev.Kind)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, *queue.Job) ([]byte, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, q *queue.Queue) error
		want error
	}{
		{"negative concurrency", func(t *testing.T, q *queue.Queue) error {
			_, err := New(q, &Options{Concurrency: -1})
			return err
		}, queue.ErrInvalid},
		{"negative timeout", func(t *testing.T, q *queue.Queue) error {
			_, err := New(q, &Options{Timeout: -time.Second})
			return err
		}, queue.ErrInvalid},
		{"nil handler", func(t *testing.T, q *queue.Queue) error {
			return newRuntime(t, q, nil).Handle("a", nil, nil)
		}, queue.ErrInvalid},
		{"invalid queue name", func(t *testing.T, q *queue.Queue) error {
			return newRuntime(t, q, nil).Handle("a b", noop, nil)
		}, queue.ErrInvalid},
		{"negative handler concurrency", func(t *testing.T, q *queue.Queue) error {
			return newRuntime(t, q, nil).Handle("a", noop, &HandlerOptions{Concurrency: -1})
		}, queue.ErrInvalid},
		{"second handler for a queue", func(t *testing.T, q *queue.Queue) error {
			rt := newRuntime(t, q, nil)
			if err := rt.Handle("a", noop, nil); err != nil {
				return err
			}
			return rt.Handle("a", noop, nil)
		}, queue.ErrInvalid},
		{"handle after start", func(t *testing.T, q *queue.Queue) error {
			return startRuntime(t, q, nil, nil).Handle("a", noop, nil)
		}, ErrStopped},
		{"start twice", func(t *testing.T, q *queue.Queue) error {
			return startRuntime(t, q, nil, nil).Start(t.Context())
		}, ErrStopped},
		{"stop before start, then start", func(t *testing.T, q *queue.Queue) error {
			rt := newRuntime(t, q, nil)
			if err := rt.Stop(t.Context()); err != nil {
				return err
			}
			return rt.Start(t.Context())
		}, ErrStopped},
		{"stop twice", func(t *testing.T, q *queue.Queue) error {
			rt := startRuntime(t, q, nil, nil)
			if err := rt.Stop(t.Context()); err != nil {
				return err
			}
			return rt.Stop(t.Context())
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, nil)
			if err := tc.run(t, q); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("got %v, want %v", err, tc.want)
				if tc.name == "stop before start, then start" {
					t.Errorf("BUG: worker.go, Runtime.Start checks r.started but not r.stopped, so a runtime " +
						"stopped before it started starts anyway, and a later Stop returns at once without stopping it (its workers run until the queue closes)")
				}
			}
		})
	}
}

// TestHeartbeatNotShorterThanLeaseWarns: a heartbeat that comes only after
// the lease has run out makes every long job run twice; New says so.
func TestHeartbeatNotShorterThanLeaseWarns(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, &queue.Options{LeaseDuration: 30 * time.Second})
	for _, tc := range []struct {
		beat time.Duration
		warn bool
	}{{10 * time.Second, false}, {30 * time.Second, true}, {45 * time.Second, true}} {
		var buf bytes.Buffer
		if _, err := New(q, &Options{Heartbeat: tc.beat, Logger: slog.New(slog.NewTextHandler(&buf, nil))}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "Heartbeat is not shorter than the lease duration"); got != tc.warn {
			t.Errorf("heartbeat %v with a 30s lease: warned %v, want %v (log: %q)", tc.beat, got, tc.warn, buf.String())
		}
	}
}
