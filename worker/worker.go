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
	// atomic log entry as each completion (see Callback). It runs when the
	// handler returns, before the completion is durable (and it may never
	// be): use OnDurable to learn that it is. Defaults to nil.
	OnComplete func(job *queue.Job, result []byte) []queue.NewJob
	// OnDurable, if set, is called once for every attempt whose outcome
	// the runtime has made durable, and only then: after the completion
	// is in the log (err nil, result the handler's result), or after the
	// failure is (err the error the attempt was recorded with: the
	// handler's, a timeout, or the runtime's own for a result the queue
	// refused). Unlike Subscribe's events it is never dropped. It is not
	// called for an attempt whose outcome was not recorded (its lease was
	// lost, Stop released it, or the log failed): that job runs again and
	// OnDurable reports that attempt instead. job is the job as leased.
	// Completions (and the failures recorded for completions the queue
	// refused) are reported from the runtime's one completer goroutine, in
	// the order they became durable; other failures from the goroutine
	// that ran the handler. So OnDurable must be safe for concurrent use
	// and return quickly: the completions after it wait. Stop returns after
	// every call has returned. Defaults to nil.
	OnDurable func(job *queue.Job, result []byte, err error)
	// Alert, if set, watches the queue and calls a hook when thresholds
	// are crossed. Defaults to nil (no alerts).
	Alert *Alert
	// Logger receives every failed attempt (a handler's error or a
	// timeout at Warn, a panic at Error with its stack, a Snooze at
	// Debug), with the job's id, queue and attempt, and the runtime's own
	// trouble (lease, heartbeat and completion failures). Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Middleware wraps the handler of every queue, first outermost,
	// outside the queue's own HandlerOptions.Middleware (see Middleware).
	// Defaults to none.
	Middleware []Middleware
}

// HandlerOptions override Options for one queue.
type HandlerOptions struct {
	// Concurrency overrides Options.Concurrency. Defaults to 0 (the
	// runtime's).
	Concurrency int
	// Timeout overrides Options.Timeout. Defaults to 0 (the runtime's).
	Timeout time.Duration
	// Middleware wraps this queue's handler, first outermost, inside
	// Options.Middleware (see Middleware). Defaults to none.
	Middleware []Middleware
}

// Runtime runs handlers for the jobs of one queue.Engine: a *queue.Queue or
// another engine. Its methods are safe for concurrent use.
type Runtime struct {
	q          queue.Engine
	opts       Options
	clock      clock.Clock
	lease      time.Duration
	maxPayload int // the queue's Options.MaxPayload

	mu       sync.Mutex
	handlers map[string]*pool
	started  bool
	stopped  bool

	fetchCtx    context.Context // cancelled when Stop begins: no more leases
	stopFetch   context.CancelFunc
	runCtx      context.Context // cancelled when Stop gives up: handlers stop
	stopRun     context.CancelCauseFunc
	workers     sync.WaitGroup
	idle        chan struct{} // closed once every worker has returned
	shut        chan struct{} // closed once Stop's work is done
	completer   *completer
	alertCancel context.CancelFunc
	alertDone   chan struct{}

	// completeBatch is q.CompleteBatch: the one seam tests use to hold a
	// completion between its handler's return and its durability.
	completeBatch func(context.Context, []queue.Completion) ([]error, error)
}

// errShutdown is the cause given to handler contexts when Stop gives up.
var errShutdown = errors.New("walq/worker: shutting down")

// New returns a runtime for q, a *queue.Queue or any other queue.Engine.
// Register handlers with Handle, then Start. It fails if q is nil, closed or
// read-only: no job could ever run.
func New(q queue.Engine, opts *Options) (*Runtime, error) {
	if wq, ok := q.(*queue.Queue); q == nil || ok && wq == nil {
		return nil, fmt.Errorf("%w: worker.New: nil queue", queue.ErrInvalid)
	}
	if err := usable(context.Background(), q); err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	qo := q.Info()
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
	return &Runtime{q: q, opts: o, clock: qo.Clock, lease: qo.LeaseDuration, maxPayload: qo.MaxPayload,
		handlers: map[string]*pool{}, completeBatch: q.CompleteBatch}, nil
}

// usable reports why workers could never run a job of q, if they could
// not: it is closed (or stopped after an internal error), or read-only.
func usable(ctx context.Context, q queue.Engine) error {
	info := q.Info()
	if info.ReadOnly {
		return fmt.Errorf("%w (%s): workers could run no job", queue.ErrReadOnly, info.Location)
	}
	if _, err := q.Stats(ctx); err != nil {
		return fmt.Errorf("%w (%s): workers could run no job", err, info.Location)
	}
	return nil
}

// Handle registers h for the named queue. It must be called before Start.
func (r *Runtime) Handle(queueName string, h Handler, opts *HandlerOptions) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler for queue %q", queue.ErrInvalid, queueName)
	}
	if err := queue.CheckQueueName(queueName); err != nil {
		return err
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
	h, err := wrap(r.opts.Middleware, ho.Middleware, h)
	if err != nil {
		return err
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
// but the start itself; the workers run until Stop. It fails with the
// queue's error (wrapping queue.ErrClosed, say) if the queue can no longer
// run jobs.
func (r *Runtime) Start(ctx context.Context) error {
	if err := usable(ctx, r.q); err != nil {
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
	r.idle, r.shut = make(chan struct{}), make(chan struct{})
	r.completer = newCompleter(r)
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
// the attempt; a job is never lost and never completed twice. Every
// completion is durable (or, if the log failed, abandoned to its expiring
// lease) and every OnDurable call has returned before Stop returns, for
// every caller: concurrent calls all wait, and each one's ctx may cut the
// handlers short. It returns ctx's error if it had to cancel handlers.
func (r *Runtime) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.started {
		r.stopped = true
		r.mu.Unlock()
		return nil
	}
	first := !r.stopped
	r.stopped = true
	r.mu.Unlock()
	if first {
		r.stopFetch()
		go r.shutdown()
	}
	var err error
	select {
	case <-r.idle:
	default:
		select {
		case <-r.idle:
		case <-ctx.Done():
			err = ctx.Err()
			r.stopRun(errShutdown)
		}
	}
	<-r.shut
	return err
}

// shutdown runs once, from the first Stop: once the workers are gone it
// makes the pending completions durable, with the heartbeat still keeping
// their leases alive, and only then stops the heartbeat.
func (r *Runtime) shutdown() {
	defer close(r.shut)
	r.workers.Wait()
	close(r.idle)
	r.stopRun(errShutdown)
	r.completer.close()
	for _, p := range r.handlers {
		close(p.stop)
		p.kept.Wait()
	}
	if r.alertCancel != nil {
		r.alertCancel()
		<-r.alertDone
	}
}

// durable reports an attempt's durable outcome to Options.OnDurable.
func (r *Runtime) durable(job *queue.Job, result []byte, err error) {
	if r.opts.OnDurable != nil {
		r.opts.OnDurable(job, result, err)
	}
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
// pool holds (waiting, running, or finished with its completion not yet
// durable) in one durable step, and cancels the handler of any lease that
// turns out lost.
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
// arrive after Stop began are released without running. A lease whose
// completion went to the completer stays held (and heartbeated) until the
// completer settles it; its slot is free at once.
func (p *pool) work() {
	defer p.r.workers.Done()
	for l := range p.jobs {
		if p.r.fetchCtx.Err() != nil {
			p.release(l)
			p.unhold(l.Token)
		} else if !p.run(l) {
			p.unhold(l.Token)
		}
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

// run runs one attempt and records its outcome. It reports whether the
// outcome went to the completer, which then owns the lease.
func (p *pool) run(l *queue.Lease) bool {
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
		return false // the lease ran out while the job waited; it runs elsewhere
	}
	ctx, cancel := p.r.clock.WithTimeout(leaseCtx, p.timeoutOf(l))
	defer cancel()

	ch := make(chan outcome, 1)
	go func() {
		o := outcome{err: errGoexit}
		defer func() {
			if v := recover(); v != nil {
				o = outcome{err: &panicError{value: v, stack: debug.Stack()}}
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
	return p.finish(l, o, ctx, leaseCtx)
}

// errGoexit is recorded for a handler that exited its goroutine without
// returning (runtime.Goexit, as t.FailNow does).
var errGoexit = errors.New("walq/worker: handler exited without returning")

// finish records an attempt's outcome; it reports whether the outcome went
// to the completer.
func (p *pool) finish(l *queue.Lease, o outcome, ctx, leaseCtx context.Context) bool {
	cause := context.Cause(leaseCtx)
	switch {
	case errors.Is(cause, errLeaseLost):
		// Someone else owns the job now; nothing to record.
		return false
	case o.err == nil:
		c := queue.Completion{Token: l.Token, Result: o.result}
		if p.r.opts.OnComplete != nil {
			c.Then = p.r.opts.OnComplete(l.Job, o.result)
			inheritMeta(l.Job, c.Then)
		}
		p.r.completer.add(pending{pool: p, lease: l, c: c})
		return true
	case errors.Is(cause, errShutdown) && errors.Is(o.err, context.Canceled):
		// Stop cancelled the handler: give the job back, uncounted.
		p.release(l)
		return false
	case errors.Is(ctx.Err(), context.DeadlineExceeded) && leaseCtx.Err() == nil:
		// The attempt's own deadline passed (not merely a deadline the
		// handler used inside, such as an HTTP client's).
		o.err = fmt.Errorf("%w after %v: %w", ErrTimeout, p.timeoutOf(l), o.err)
	}
	p.logFailure(l, o.err)
	p.fail(l, o.err)
	return false
}

// panicError is the failure recorded for a handler that panicked.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.value, e.stack) }

// logFailure tells the Logger about a failed attempt: a panic at Error, a
// failure at Warn, a snooze (not a failure) at Debug.
func (p *pool) logFailure(l *queue.Lease, err error) {
	attrs := []any{"job", l.Job.ID, "queue", l.Job.Queue, "attempt", l.Token.Attempt, "max_attempts", l.Job.MaxAttempts}
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		p.r.opts.Logger.Error("walq/worker: handler panicked", append(attrs, "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))...)
	case queue.IsSnooze(err):
		p.r.opts.Logger.Debug("walq/worker: job snoozed", append(attrs, "err", err)...)
	default:
		p.r.opts.Logger.Warn("walq/worker: handler failed", append(attrs, "err", err, "permanent", queue.IsPermanent(err))...)
	}
}

// fail records a failed attempt and reports it once durable.
func (p *pool) fail(l *queue.Lease, cause error) {
	err := p.r.q.Fail(context.Background(), l.Token, cause)
	switch {
	case err == nil:
		p.r.durable(l.Job, nil, cause)
	case errors.Is(err, queue.ErrLeaseLost):
	default:
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
