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
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// commitGate holds the runtime's CompleteBatch calls: each call is announced
// on calls, with its batch, and goes on to the queue only once the gate is
// open. A test uses it to keep completions between their handler's return
// and their durability for as long as it likes.
type commitGate struct {
	calls  chan []queue.Completion
	opened chan struct{}
	once   sync.Once
}

// holdCommits puts a closed gate in front of rt's completions. rt must not
// have started. The gate opens on cleanup (before the runtime is stopped)
// if the test has not opened it.
func holdCommits(t *testing.T, rt *Runtime) *commitGate {
	t.Helper()
	g := &commitGate{calls: make(chan []queue.Completion, 1024), opened: make(chan struct{})}
	commit := rt.completeBatch
	rt.completeBatch = func(ctx context.Context, cs []queue.Completion) ([]error, error) {
		g.calls <- cs
		<-g.opened
		return commit(ctx, cs)
	}
	t.Cleanup(g.open)
	return g
}

// open lets every held and future call through.
func (g *commitGate) open() { g.once.Do(func() { close(g.opened) }) }

// waitQueued waits until n completions wait in the completer's queue: the
// handlers returned and the workers handed them over. There is no event
// for it; the length of a channel is safe to read concurrently, and the
// look is bounded by within.
func waitQueued(t *testing.T, rt *Runtime, n int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(rt.completer.in) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d completions queued after %v, want %d", len(rt.completer.in), within, n)
		}
		runtime.Gosched()
	}
}

// gatedHandlers returns a handler that announces each job on started and
// then returns result(job) once its job's channel in release is closed.
type gatedHandlers struct {
	started chan uint64
	release map[uint64]chan struct{}
}

func newGatedHandlers(ids []uint64) *gatedHandlers {
	g := &gatedHandlers{started: make(chan uint64, len(ids)), release: map[uint64]chan struct{}{}}
	for _, id := range ids {
		g.release[id] = make(chan struct{})
	}
	return g
}

func (g *gatedHandlers) handler(result func(*queue.Job) []byte) Handler {
	return func(ctx context.Context, job *queue.Job) ([]byte, error) {
		g.started <- job.ID
		select {
		case <-g.release[job.ID]:
			return result(job), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// completeInTwoBatches runs one job per handler, all at once: the first
// job's completion is held in its own CompleteBatch call while every other
// handler returns, so that the others all wait to be committed together.
// It returns once every job has finished.
// The jobs go to queue "render". wrap, if not nil, wraps the runtime's
// CompleteBatch.
func completeInTwoBatches(t *testing.T, q *queue.Queue, batch []queue.NewJob, wrap func(commitFunc) commitFunc, result func(*queue.Job) []byte) []uint64 {
	t.Helper()
	n := len(batch)
	for i := range batch {
		batch[i].Queue = "render"
	}
	res, err := q.EnqueueBatch(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	rt := newRuntime(t, q, &Options{Concurrency: n})
	h := newGatedHandlers(ids)
	if err := rt.Handle("render", h.handler(result), nil); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		rt.completeBatch = wrap(rt.completeBatch)
	}
	gate := holdCommits(t, rt)
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		receive(t, h.started, fmt.Sprintf("handler %d of %d starting", i+1, n))
	}
	close(h.release[ids[0]])
	if first := receive(t, gate.calls, "the first completion's commit"); len(first) != 1 {
		t.Fatalf("first commit holds %d completions, want 1", len(first))
	}
	for _, id := range ids[1:] {
		close(h.release[id])
	}
	waitQueued(t, rt, n-1)
	gate.open()
	// Wait for every job to finish; the caller reports those that did not.
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for _, id := range ids {
		if _, err := q.Wait(ctx, id); errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("job %d not finished after %v", id, within)
			break
		}
	}
	return ids
}

// TestBigResultsAllComplete: sixteen handlers return results that together
// exceed the largest log entry (64 MiB at this MaxPayload). Every one must
// complete; none may be lost with a batch the log refused.
func TestBigResultsAllComplete(t *testing.T) {
	t.Parallel()
	// The smallest configuration that shows the bug: the log's entry limit
	// is max(64 MiB, 2×MaxPayload+1 MiB) = 64 MiB here, and the fifteen
	// results committed together after the first come to 67.5 MiB.
	const n, size = 16, 4<<20 + 512<<10
	q, _ := openQueue(t, &queue.Options{MaxPayload: size})
	ids := completeInTwoBatches(t, q, make([]queue.NewJob, n), nil, func(j *queue.Job) []byte {
		return bytes.Repeat([]byte{byte(j.ID)}, size)
	})
	for _, id := range ids {
		j := getJob(t, q, id)
		if j.State != queue.StateCompleted || len(j.Result) != size || j.Result[0] != byte(id) {
			t.Errorf("BUG: job %d is %s (history %v) with a %d-byte result; want completed with its %d-byte result. "+
				"worker/complete.go: the completer commits whatever is queued in one CompleteBatch, and a batch "+
				"larger than the log's entry limit fails whole", id, j.State, outcomes(j), len(j.Result), size)
		}
	}
}

// commitFunc is the signature of queue.Queue.CompleteBatch.
type commitFunc = func(context.Context, []queue.Completion) ([]error, error)

// refuseEach emulates the CompleteBatch contract issue 12 asks of the
// queue: a result over limit fails only its own completion, with an error
// wrapping queue.ErrTooLarge, and the others are committed.
func refuseEach(limit int) func(commitFunc) commitFunc {
	return func(next commitFunc) commitFunc {
		return func(ctx context.Context, cs []queue.Completion) ([]error, error) {
			errs := make([]error, len(cs))
			var ok []queue.Completion
			var at []int
			for i, c := range cs {
				if len(c.Result) > limit {
					errs[i] = fmt.Errorf("%w: completion %d: result of %d bytes, limit %d", queue.ErrTooLarge, i, len(c.Result), limit)
					continue
				}
				ok, at = append(ok, c), append(at, i)
			}
			if len(ok) == 0 {
				return errs, nil
			}
			okErrs, err := next(ctx, ok)
			if err != nil {
				return nil, err
			}
			for k, i := range at {
				errs[i] = okErrs[k]
			}
			return errs, nil
		}
	}
}

// TestOversizeResultFailsOnlyItsJob: one handler among eight returns a
// result over MaxPayload. Only its job fails (dead at once, with the reason
// in its history); the seven others complete. The queue may refuse the
// oversize result by failing the whole CompleteBatch call (as it does
// today) or with that completion's own error (its contract after issue 12).
func TestOversizeResultFailsOnlyItsJob(t *testing.T) {
	t.Parallel()
	const n, limit = 8, 1 << 10
	for _, tc := range []struct {
		name string
		wrap func(commitFunc) commitFunc
	}{
		{"whole call refused", nil},
		{"one error per completion", refuseEach(limit)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, &queue.Options{MaxPayload: limit})
			jobs := make([]queue.NewJob, n)
			jobs[n-1].Payload = []byte("oversize") // not the first: it is committed alone
			ids := completeInTwoBatches(t, q, jobs, tc.wrap, func(j *queue.Job) []byte {
				if string(j.Payload) == "oversize" {
					return make([]byte, 2*limit)
				}
				return []byte(fmt.Sprint("done ", j.ID))
			})
			for _, id := range ids[:n-1] {
				j := getJob(t, q, id)
				if want := fmt.Sprint("done ", id); j.State != queue.StateCompleted || string(j.Result) != want {
					t.Errorf("BUG: job %d is %s (history %v) with result %q; want completed with %q. "+
						"worker/complete.go: one oversize result fails the whole CompleteBatch, and the completer "+
						"drops every completion in it", id, j.State, outcomes(j), j.Result, want)
				}
			}
			j := getJob(t, q, ids[n-1])
			wantErr := fmt.Sprintf("(the handler's result of %d bytes exceeds Options.MaxPayload, %d)", 2*limit, limit)
			if j.State != queue.StateDead || j.Attempt != 1 || len(j.History) != 1 || !strings.Contains(j.History[0].Error, wantErr) ||
				!strings.HasPrefix(j.History[0].Error, "walq: payload too large") || strings.Count(j.History[0].Error, "walq") != 1 {
				t.Errorf("oversize job %d: %s after %d attempt(s), history %+v; want dead after its one attempt with %q in its history",
					j.ID, j.State, j.Attempt, j.History, wantErr)
			}
		})
	}
}

// TestHeartbeatCoversQueuedCompletion: a job whose handler has returned but
// whose completion is not yet durable is still leased, and its lease must
// be kept alive until the completion is durable; otherwise a slow commit
// lets it expire, the completion is refused, and the job runs again.
func TestHeartbeatCoversQueuedCompletion(t *testing.T) {
	t.Parallel()
	const lease, beat = 30 * time.Second, 10 * time.Second
	q, clk := openQueue(t, &queue.Options{LeaseDuration: lease})
	id := enqueue(t, q, queue.NewJob{Queue: "reports"})
	var runs sync.Map
	rt := newRuntime(t, q, &Options{Heartbeat: beat})
	err := rt.Handle("reports", func(ctx context.Context, job *queue.Job) ([]byte, error) {
		runs.Store(job.Attempt, true)
		return []byte("report.pdf"), nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := holdCommits(t, rt)
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	receive(t, gate.calls, "the completion's commit")
	clk.waitTickers(t, beat, 1)
	for elapsed := beat; elapsed <= 2*lease; elapsed += beat {
		clk.Add(beat)
		want := epoch.Add(elapsed + lease)
		j := waitJob(t, q, id, "lease extended to "+want.String(), func(j *queue.Job) bool {
			return j.State != queue.StateLeased || !j.LeaseDeadline.Before(want)
		})
		if j.State != queue.StateLeased || !j.LeaseDeadline.Equal(want) {
			t.Fatalf("BUG: %v after the handler returned, with its completion not yet durable, the job is %s "+
				"(deadline %v, history %v); want leased until %v. worker.go: work() unholds the lease as soon as "+
				"the completion is queued, so the heartbeat stops extending it",
				elapsed, j.State, j.LeaseDeadline, outcomes(j), want)
		}
	}
	gate.open()
	if res, err := waitResult(t, q, id); err != nil || string(res) != "report.pdf" {
		t.Fatalf("Wait = %q, %v", res, err)
	}
	if got := strings.Join(outcomes(getJob(t, q, id)), " "); got != "completed" {
		t.Errorf("history %q, want %q", got, "completed")
	}
}

// TestConcurrentStopsWaitForCompletions: two goroutines call Stop while a
// completion is held on its way to the log and a handler still runs. Each
// Stop must return only once every completion is durable.
func TestConcurrentStopsWaitForCompletions(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	res, err := q.EnqueueBatch(t.Context(), []queue.NewJob{{Queue: "mail"}, {Queue: "mail"}})
	if err != nil {
		t.Fatal(err)
	}
	done, slow := res[0].ID, res[1].ID
	rt := newRuntime(t, q, &Options{Concurrency: 2})
	h := newGatedHandlers([]uint64{done, slow})
	if err := rt.Handle("mail", h.handler(func(*queue.Job) []byte { return []byte("sent") }), nil); err != nil {
		t.Fatal(err)
	}
	gate := holdCommits(t, rt)
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	receive(t, h.started, "first handler")
	receive(t, h.started, "second handler")
	close(h.release[done])
	receive(t, gate.calls, "the first completion's commit")

	// Each Stop reports, as it returns, which jobs are not yet completed.
	type stopped struct {
		err     error
		pending []string
	}
	out := make(chan stopped, 2)
	calling := make(chan struct{}, 2)
	stop := func() {
		calling <- struct{}{}
		err := rt.Stop(context.Background())
		var pending []string
		for _, id := range []uint64{done, slow} {
			if j := getJob(t, q, id); j.State != queue.StateCompleted {
				pending = append(pending, fmt.Sprintf("job %d %s", id, j.State))
			}
		}
		out <- stopped{err, pending}
	}
	go stop()
	receive(t, calling, "first Stop")
	waitFetchStopped(t, rt)
	go stop()
	receive(t, calling, "second Stop")
	close(h.release[slow])
	gate.open()
	for i := range 2 {
		s := receive(t, out, "Stop returning")
		if s.err != nil || len(s.pending) > 0 {
			t.Errorf("BUG: Stop %d of 2 to return returned %v with %v not yet durably completed; want nil once every "+
				"completion is durable. worker.go: a Stop that finds r.stopped set returns at once", i+1, s.err, s.pending)
		}
	}
}

// TestNewRefusesUnusableQueue: a runtime on no queue, a closed one or a
// read-only one could never run a job; New (and Start, if the queue closes
// in between) says so rather than start workers that do nothing.
func TestNewRefusesUnusableQueue(t *testing.T) {
	t.Parallel()
	if _, err := New(nil, nil); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("New(nil, nil) = %v, want %v", err, queue.ErrInvalid)
	}
	if _, err := New((*queue.Queue)(nil), nil); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("New((*queue.Queue)(nil), nil) = %v, want %v", err, queue.ErrInvalid)
	}

	q, _ := openQueue(t, nil)
	ro, err := queue.Open(q.Dir(), &queue.Options{ReadOnly: true, CompactRatio: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := New(ro, nil); !errors.Is(err, queue.ErrReadOnly) {
		t.Errorf("New on a read-only queue = %v, want %v", err, queue.ErrReadOnly)
	}

	rt, err := New(q, &Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Handle("a", func(context.Context, *queue.Job) ([]byte, error) { return nil, nil }, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(t.Context()); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Start after the queue closed = %v, want %v", err, queue.ErrClosed)
	}
	if _, err := New(q, nil); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("New on a closed queue = %v, want %v", err, queue.ErrClosed)
	}
}

// TestOnDurable: producers enqueue concurrently into two queues while the
// runtime completes, fails and refuses jobs. OnDurable is called exactly
// once per job, only once its outcome is durable (the queue reports it when
// asked from inside the call), never dropped, and Stop returns after the
// last call.
func TestOnDurable(t *testing.T) {
	t.Parallel()
	const limit = 1 << 10
	q, _ := openQueue(t, &queue.Options{MaxPayload: limit})

	type call struct {
		state  queue.JobState // what the queue said from inside the call
		result string
		err    error
	}
	var (
		mu    sync.Mutex
		calls = map[uint64][]call{}
	)
	onDurable := func(job *queue.Job, result []byte, err error) {
		j, gerr := q.Get(context.Background(), job.ID)
		c := call{result: string(result), err: err}
		if gerr != nil {
			c.err = fmt.Errorf("Get inside OnDurable: %w", gerr)
		} else {
			c.state = j.State
		}
		mu.Lock()
		calls[job.ID] = append(calls[job.ID], c)
		mu.Unlock()
	}
	handler := func(ctx context.Context, job *queue.Job) ([]byte, error) {
		switch string(job.Payload) {
		case "fails":
			return nil, queue.Permanent(errors.New("no such address"))
		case "oversize":
			return make([]byte, 2*limit), nil
		}
		return []byte(fmt.Sprint("sent ", job.ID)), nil
	}
	rt := startRuntime(t, q, &Options{Concurrency: 4, OnDurable: onDurable},
		map[string]Handler{"mail": handler, "sms": handler})

	const producers, each = 4, 60
	kinds := []string{"completes", "completes", "fails", "completes", "oversize"}
	ids := make(chan map[uint64]string, producers)
	for p := range producers {
		go func() {
			mine := map[uint64]string{}
			for i := range each {
				kind := kinds[(p+i)%len(kinds)]
				name := []string{"mail", "sms"}[i%2]
				r, err := q.Enqueue(context.Background(), queue.NewJob{Queue: name, Payload: []byte(kind)})
				if err != nil {
					t.Errorf("Enqueue: %v", err)
					break
				}
				mine[r.ID] = kind
			}
			ids <- mine
		}()
	}
	want := map[uint64]string{}
	for range producers {
		for id, kind := range receive(t, ids, "a producer") {
			want[id] = kind
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for id := range want {
		if _, err := q.Wait(ctx, id); errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("job %d not finished after %v", id, within)
		}
	}
	if err := rt.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(want) {
		t.Errorf("OnDurable reported %d jobs by the time Stop returned, want %d", len(calls), len(want))
	}
	for id, kind := range want {
		cs := calls[id]
		if len(cs) != 1 {
			t.Errorf("job %d (%s): OnDurable called %d times, want once", id, kind, len(cs))
			continue
		}
		c := cs[0]
		var ok bool
		switch kind {
		case "completes":
			ok = c.err == nil && c.state == queue.StateCompleted && c.result == fmt.Sprint("sent ", id)
		case "fails":
			ok = queue.IsPermanent(c.err) && strings.Contains(fmt.Sprint(c.err), "no such address") && c.state == queue.StateDead
		case "oversize":
			ok = errors.Is(c.err, queue.ErrTooLarge) && strings.Contains(fmt.Sprint(c.err), "exceeds Options.MaxPayload") && c.state == queue.StateDead
		}
		if !ok {
			t.Errorf("job %d (%s): OnDurable(result %q, err %v) while the queue said %s", id, kind, c.result, c.err, c.state)
		}
	}
}
