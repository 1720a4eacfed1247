package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Handler runs one attempt of a job and returns its result. The context is
// cancelled when the attempt's timeout passes, when the lease is lost, and
// when Stop gives up waiting.
type Handler func(ctx context.Context, job *queue.Job) ([]byte, error)

// ErrTimeout is the error recorded for an attempt that ran past its
// timeout; the job is retried like any failure.
var ErrTimeout = errors.New("walq/worker: attempt timed out")

// ErrStopped is returned by Start after Stop, and by Handle after Start.
var ErrStopped = errors.New("walq/worker: runtime started or stopped")

// Options configure a Runtime. The zero value (or nil) gives the defaults.
type Options struct {
	// Concurrency is how many handlers run at once per queue, unless the
	// queue's HandlerOptions say otherwise. Defaults to 4.
	Concurrency int
	// Timeout limits each attempt, unless the job (NewJob.Timeout) or the
	// queue's HandlerOptions set another. Defaults to 1m.
	Timeout time.Duration
	// Heartbeat is how often a running job's lease is extended; New warns
	// (through Logger) unless it is shorter than the queue's lease
	// duration. Defaults to a third of the queue's lease duration.
	Heartbeat time.Duration
	// Prefetch is how many leased jobs may wait for a free handler, per
	// queue: deeper prefetch means larger lease batches (fewer fsyncs per
	// job) and more jobs held while handlers are busy. Their leases are
	// kept alive by the heartbeat like running ones. Defaults to 4 ×
	// Concurrency.
	Prefetch int
	// OnComplete, if set, returns follow-up jobs to enqueue in the same
	// atomic log entry as each completion (see Callback). Defaults to nil.
	OnComplete func(job *queue.Job, result []byte) []queue.NewJob
	// Alert, if set, watches the queue and calls a hook when thresholds
	// are crossed. Defaults to nil (no alerts).
	Alert *Alert
	// Logger receives handler failures. Defaults to slog.Default().
	Logger *slog.Logger
}

// HandlerOptions override Options for one queue.
type HandlerOptions struct {
	// Concurrency overrides Options.Concurrency. Defaults to 0 (the
	// runtime's).
	Concurrency int
	// Timeout overrides Options.Timeout. Defaults to 0 (the runtime's).
	Timeout time.Duration
}

// Runtime runs handlers for the jobs of one queue.Queue. Its methods are
// safe for concurrent use.
type Runtime struct {
	q     *queue.Queue
	opts  Options
	clock clock.Clock
	lease time.Duration

	mu       sync.Mutex
	handlers map[string]*pool
	started  bool
	stopped  bool

	fetchCtx    context.Context // cancelled when Stop begins: no more leases
	stopFetch   context.CancelFunc
	runCtx      context.Context // cancelled when Stop gives up: handlers stop
	stopRun     context.CancelCauseFunc
	workers     sync.WaitGroup
	completer   *completer
	alertCancel context.CancelFunc
	alertDone   chan struct{}

	// completeBatch is q.CompleteBatch: the one seam tests use to hold a
	// completion between its handler's return and its durability.
	completeBatch func(context.Context, []queue.Completion) ([]error, error)
}

// errShutdown is the cause given to handler contexts when Stop gives up.
var errShutdown = errors.New("walq/worker: shutting down")

// New returns a runtime for q. Register handlers with Handle, then Start.
func New(q *queue.Queue, opts *Options) (*Runtime, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	qo := q.Options()
	switch {
	case o.Concurrency < 0:
		return nil, fmt.Errorf("%w: Options.Concurrency: %d is negative", queue.ErrInvalid, o.Concurrency)
	case o.Timeout < 0:
		return nil, fmt.Errorf("%w: Options.Timeout: %v is negative", queue.ErrInvalid, o.Timeout)
	case o.Heartbeat < 0:
		return nil, fmt.Errorf("%w: Options.Heartbeat: %v is negative", queue.ErrInvalid, o.Heartbeat)
	case o.Prefetch < 0:
		return nil, fmt.Errorf("%w: Options.Prefetch: %d is negative", queue.ErrInvalid, o.Prefetch)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 4
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = qo.LeaseDuration / 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Heartbeat >= qo.LeaseDuration {
		// Allowed (a test stands in for a stalled process this way), but
		// almost surely a mistake: every lease lapses before its first
		// extension, and a job runs again while its handler is busy.
		o.Logger.Warn("walq/worker: Heartbeat is not shorter than the lease duration; leases will lapse while handlers run",
			"heartbeat", o.Heartbeat, "lease", qo.LeaseDuration)
	}
	return &Runtime{q: q, opts: o, clock: qo.Clock, lease: qo.LeaseDuration, handlers: map[string]*pool{},
		completeBatch: q.CompleteBatch}, nil
}

// Handle registers h for the named queue. It must be called before Start.
func (r *Runtime) Handle(queueName string, h Handler, opts *HandlerOptions) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler for queue %q", queue.ErrInvalid, queueName)
	}
	if queueName == "" {
		queueName = queue.DefaultQueue
	}
	var ho HandlerOptions
	if opts != nil {
		ho = *opts
	}
	if ho.Concurrency < 0 || ho.Timeout < 0 {
		return fmt.Errorf("%w: HandlerOptions for queue %q: negative value", queue.ErrInvalid, queueName)
	}
	if ho.Concurrency == 0 {
		ho.Concurrency = r.opts.Concurrency
	}
	if ho.Timeout == 0 {
		ho.Timeout = r.opts.Timeout
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrStopped
	}
	if _, dup := r.handlers[queueName]; dup {
		return fmt.Errorf("%w: queue %q already has a handler", queue.ErrInvalid, queueName)
	}
	prefetch := r.opts.Prefetch
	if prefetch == 0 {
		prefetch = 4 * ho.Concurrency
	}
	r.handlers[queueName] = &pool{r: r, name: queueName, h: h, opts: ho,
		slots: make(chan struct{}, ho.Concurrency+prefetch),
		jobs:  make(chan *queue.Lease, ho.Concurrency+prefetch),
		held:  map[queue.Token]*held{}}
	return nil
}

// Start starts the workers of every registered queue. ctx bounds nothing
// but the start itself; the workers run until Stop.
func (r *Runtime) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return ErrStopped
	}
	r.started = true
	r.fetchCtx, r.stopFetch = context.WithCancel(context.Background())
	r.runCtx, r.stopRun = context.WithCancelCause(context.Background())
	r.completer = newCompleter(r.completeBatch, r.opts.Logger)
	for _, p := range r.handlers {
		p.start()
	}
	if r.opts.Alert != nil {
		actx, cancel := context.WithCancel(context.Background())
		r.alertCancel, r.alertDone = cancel, make(chan struct{})
		go func() {
			defer close(r.alertDone)
			r.opts.Alert.watch(actx, r.q, r.clock)
		}()
	}
	return nil
}

// Stop shuts down gracefully: it stops leasing, hands back (without
// counting the attempt) jobs leased but not started, and waits for running
// handlers to finish until ctx ends. Then it cancels the contexts of the
// handlers still running and releases their jobs at once, without counting
// the attempt; a job is never lost and never completed twice. Pending
// completions are made durable before Stop returns. It returns ctx's error
// if it had to cancel handlers.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.started || r.stopped {
		r.stopped = true
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	r.mu.Unlock()
	r.stopFetch()
	done := make(chan struct{})
	go func() {
		r.workers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	default:
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			r.stopRun(errShutdown)
			<-done
		}
	}
	r.stopRun(errShutdown)
	for _, p := range r.handlers {
		close(p.stop)
		p.kept.Wait()
	}
	r.completer.close()
	if r.alertCancel != nil {
		r.alertCancel()
		<-r.alertDone
	}
	return err
}

// pool is one queue's fetcher, workers and lease keeper.
type pool struct {
	r     *Runtime
	name  string
	h     Handler
	opts  HandlerOptions
	slots chan struct{} // a token per lease held (running or waiting)
	jobs  chan *queue.Lease

	mu   sync.Mutex
	held map[queue.Token]*held // every lease the pool holds
	stop chan struct{}         // ends the keeper
	kept sync.WaitGroup
}

// held is a lease the pool holds: waiting for a handler, or running.
type held struct {
	tok  queue.Token
	lose context.CancelCauseFunc // set while a handler runs
	lost bool                    // the keeper found the lease gone
}

func (p *pool) start() {
	p.r.workers.Add(1 + p.opts.Concurrency)
	p.stop = make(chan struct{})
	p.kept.Add(1)
	go p.keep()
	go p.fetch()
	for i := 0; i < p.opts.Concurrency; i++ {
		go p.work()
	}
}

// hold registers leases the pool now holds.
func (p *pool) hold(ls []*queue.Lease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range ls {
		p.held[l.Token] = &held{tok: l.Token}
	}
}

// unhold forgets a lease the pool no longer holds.
func (p *pool) unhold(tok queue.Token) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.held, tok)
}

// keep is the pool's heartbeat: every Heartbeat it extends every lease the
// pool holds, waiting or running, in one durable step, and cancels the
// handler of any lease that turns out lost.
func (p *pool) keep() {
	defer p.kept.Done()
	t := p.r.clock.Ticker(p.r.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		toks := make([]queue.Token, 0, len(p.held))
		for _, h := range p.held {
			if !h.lost {
				toks = append(toks, h.tok)
			}
		}
		p.mu.Unlock()
		if len(toks) == 0 {
			continue
		}
		errs, err := p.r.q.ExtendBatch(context.Background(), toks, p.r.lease)
		if err != nil {
			p.r.opts.Logger.Warn("walq/worker: heartbeat failed", "queue", p.name, "err", err)
			continue
		}
		p.mu.Lock()
		for i, e := range errs {
			if e == nil || !errors.Is(e, queue.ErrLeaseLost) {
				continue
			}
			if h := p.held[toks[i]]; h != nil {
				h.lost = true
				if h.lose != nil {
					h.lose(errLeaseLost)
				}
			}
		}
		p.mu.Unlock()
	}
}

// fetch leases jobs in batches as slots free up and hands them to workers.
func (p *pool) fetch() {
	defer p.r.workers.Done()
	defer close(p.jobs)
	ctx := p.r.fetchCtx
	for {
		// Wait for one free slot, then take every other free one. While
		// handlers are busy with leased work, wait for half the slots to
		// free up, so that a lease is one durable step for many jobs; when
		// nothing is waiting for a handler, lease at once.
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < cap(p.slots) {
			if n >= cap(p.slots)/2 || len(p.jobs) == 0 {
				select {
				case p.slots <- struct{}{}:
					n++
					continue
				default:
					break more
				}
			}
			select {
			case p.slots <- struct{}{}:
				n++
			case <-ctx.Done():
				break more
			}
		}
		ls, err := p.r.q.LeaseN(ctx, p.name, n)
		for i := len(ls); i < n; i++ {
			<-p.slots
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, queue.ErrClosed) {
				p.r.opts.Logger.Error("walq/worker: lease failed", "queue", p.name, "err", err)
				p.backoff(ctx)
				continue
			}
			return
		}
		p.hold(ls)
		for _, l := range ls {
			p.jobs <- l
		}
	}
}

// backoff pauses the fetcher after a failed lease (a full disk, say).
func (p *pool) backoff(ctx context.Context) {
	t := p.r.clock.Timer(time.Second)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// work runs leased jobs until the fetcher closes the channel. Jobs that
// arrive after Stop began are released without running.
func (p *pool) work() {
	defer p.r.workers.Done()
	for l := range p.jobs {
		if p.r.fetchCtx.Err() != nil {
			p.release(l)
		} else {
			p.run(l)
		}
		p.unhold(l.Token)
		<-p.slots
	}
}

func (p *pool) release(l *queue.Lease) {
	if err := p.r.q.Release(context.Background(), l.Token); err != nil && !errors.Is(err, queue.ErrLeaseLost) {
		p.r.opts.Logger.Error("walq/worker: release failed", "job", l.Token.Job, "err", err)
	}
}

// outcome is what a handler returned.
type outcome struct {
	result []byte
	err    error
}

// run runs one attempt and records its outcome.
func (p *pool) run(l *queue.Lease) {
	leaseCtx, loseLease := context.WithCancelCause(p.r.runCtx)
	defer loseLease(nil)
	p.mu.Lock()
	h := p.held[l.Token]
	lost := h == nil || h.lost
	if !lost {
		h.lose = loseLease
	}
	p.mu.Unlock()
	if lost {
		return // the lease ran out while the job waited; it runs elsewhere
	}
	ctx, cancel := p.r.clock.WithTimeout(leaseCtx, p.timeoutOf(l))
	defer cancel()

	ch := make(chan outcome, 1)
	go func() {
		o := outcome{err: errGoexit}
		defer func() {
			if v := recover(); v != nil {
				o = outcome{err: fmt.Errorf("panic: %v\n%s", v, debug.Stack())}
			}
			ch <- o
		}()
		res, err := p.h(ctx, l.Job)
		o = outcome{result: res, err: err}
	}()

	var o outcome
	select {
	case o = <-ch:
	case <-ctx.Done():
		// The handler did not return in time (or at all): decide from
		// why its context ended. A handler that ignores its context
		// keeps its goroutine, but its outcome no longer counts.
		o.err = ctx.Err()
	}
	p.finish(l, o, ctx, leaseCtx)
}

// errGoexit is recorded for a handler that exited its goroutine without
// returning (runtime.Goexit, as t.FailNow does).
var errGoexit = errors.New("walq/worker: handler exited without returning")

func (p *pool) finish(l *queue.Lease, o outcome, ctx, leaseCtx context.Context) {
	cause := context.Cause(leaseCtx)
	switch {
	case errors.Is(cause, errLeaseLost):
		// Someone else owns the job now; nothing to record.
		return
	case o.err == nil:
		c := queue.Completion{Token: l.Token, Result: o.result}
		if p.r.opts.OnComplete != nil {
			c.Then = p.r.opts.OnComplete(l.Job, o.result)
		}
		p.r.completer.add(c)
		return
	case errors.Is(cause, errShutdown) && errors.Is(o.err, context.Canceled):
		// Stop cancelled the handler: give the job back, uncounted.
		p.release(l)
		return
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && leaseCtx.Err() == nil:
		// The attempt's own deadline passed (not merely a deadline the
		// handler used inside, such as an HTTP client's).
		o.err = fmt.Errorf("%w after %v: %w", ErrTimeout, p.timeoutOf(l), o.err)
	}
	if err := p.r.q.Fail(context.Background(), l.Token, o.err); err != nil && !errors.Is(err, queue.ErrLeaseLost) {
		p.r.opts.Logger.Error("walq/worker: recording failure failed", "job", l.Token.Job, "err", err)
	}
}

func (p *pool) timeoutOf(l *queue.Lease) time.Duration {
	if l.Job.Timeout > 0 {
		return l.Job.Timeout
	}
	return p.opts.Timeout
}

// errLeaseLost is the cause given to a handler's context when its lease is
// gone.
var errLeaseLost = errors.New("walq/worker: lease lost")
