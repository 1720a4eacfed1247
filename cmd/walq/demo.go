package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walq/walq/queue"
)

var demoCmd = &command{
	name:    "demo",
	args:    "[DIR]",
	group:   "Start here",
	summary: "watch a producer and workers send emails through a queue: retries, backoff, dead letters",
	help: `Run walq's seed scenario end to end, in a few seconds: a producer enqueues
"send welcome email" jobs with idempotency keys (some enqueued twice on
purpose, as a producer retrying after a timeout would), and workers send
them through a fake mail service that succeeds, fails transiently (then
succeeds on a retry), bounces (a permanent error: dead at once) or stays
down (dead once the attempts run out). Backoff is shortened so you can
watch it. At the end walq prints a summary and the commands to inspect
what the demo left in DIR (default: a new temporary directory, kept).
Ctrl-C stops it cleanly. The same --seed gives the same outcome.`,
	example: `walq demo
walq demo /tmp/walq-demo --count 1000 --workers 8 --seed 7`,
	run: runDemo,
}

// demoQueue is the named queue the demo uses.
const demoQueue = "emails"

func runDemo(a *app, c *command, args []string) error {
	fs := flagSet(c)
	cfg := demoConfig{}
	fs.IntVar(&cfg.count, "count", 300, "the producer makes `n` enqueue calls")
	fs.IntVar(&cfg.workers, "workers", 4, "`n` workers send the emails")
	fs.Uint64Var(&cfg.seed, "seed", 1, "`n` seeds the duplicates and the fake service's behaviour")
	backoff := durationFlag(fs, "backoff", "base backoff `duration` after a failed attempt (default 100ms; the queue's default is 1s)")
	latency := durationFlag(fs, "latency", "the fake service's mean response `duration` (default 40ms)")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q after DIR", pos[1])
	}
	if cfg.count < 1 || cfg.workers < 1 {
		return usagef("--count and --workers must be at least 1")
	}
	cfg.backoff, cfg.latency = 100*time.Millisecond, 40*time.Millisecond
	if backoff.set {
		cfg.backoff = backoff.d
	}
	if latency.set {
		cfg.latency = latency.d
	}
	if cfg.backoff <= 0 {
		return usagef("--backoff must be positive")
	}
	if len(pos) == 1 {
		cfg.dir = pos[0]
		if err := demoDirUsable(cfg.dir); err != nil {
			return err
		}
	} else if cfg.dir, err = os.MkdirTemp("", "walq-demo-"); err != nil {
		return err
	}
	d := newDemo(a, cfg)
	return d.run()
}

// demoDirUsable refuses a directory that holds anything: the demo's keys
// would collide with an earlier run's, and it must never write into
// someone's data.
func demoDirUsable(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return checkDir(dir)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty; the demo needs a new or empty directory (or none: it makes a temporary one)", dir)
	}
	return nil
}

type demoConfig struct {
	dir              string
	count, workers   int
	seed             uint64
	backoff, latency time.Duration
}

// behaviour is how the fake mail service treats one recipient.
type behaviour int

const (
	sends     behaviour = iota // accepted at once
	transient                  // "try again later" a few times, then accepted
	bounces                    // "no such user": a permanent error
	down                       // the recipient's server refuses every attempt
)

// recipient is one user the producer emails, and the service's plan for it.
type recipient struct {
	user     int
	behave   behaviour
	failures int // for transient: attempts that fail before one succeeds
}

// demoPlan is everything the seed decides: which enqueue calls repeat a
// key, and how the service treats each recipient. Outcomes depend on it
// alone, never on timing, so a seed always gives the same summary.
type demoPlan struct {
	calls      []int // the user each enqueue call is for, in order
	recipients []recipient
}

func newPlan(seed uint64, count int) demoPlan {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var p demoPlan
	for i := 0; i < count; i++ {
		if i > 0 && rng.Float64() < 0.1 {
			// The producer retries an earlier call: same key.
			p.calls = append(p.calls, p.calls[rng.IntN(len(p.calls))])
			continue
		}
		r := recipient{user: len(p.recipients) + 1}
		switch x := rng.Float64(); {
		case x < 0.72:
			r.behave = sends
		case x < 0.90:
			r.behave, r.failures = transient, 1+rng.IntN(2)
		case x < 0.95:
			r.behave = bounces
		default:
			r.behave = down
		}
		p.recipients = append(p.recipients, r)
		p.calls = append(p.calls, r.user)
	}
	return p
}

// emailJob is a job's payload.
type emailJob struct {
	User     int    `json:"user"`
	To       string `json:"to"`
	Template string `json:"template"`
}

// demo is one run of the scenario.
type demo struct {
	a    *app
	cfg  demoConfig
	plan demoPlan
	q    *queue.Queue
	out  *demoOutput

	dups, unique                 atomic.Int64
	sent, sentAfterRetry, failed atomic.Int64
	bounced, exhausted           atomic.Int64
	retriedJob, deadJob          atomic.Uint64 // examples for the inspection commands
	// traced holds the first recipient of each failing behaviour: their
	// journeys are printed attempt by attempt.
	traced map[int]bool
}

func newDemo(a *app, cfg demoConfig) *demo {
	d := &demo{a: a, cfg: cfg, plan: newPlan(cfg.seed, cfg.count), traced: map[int]bool{},
		out: &demoOutput{w: a.stdout, live: isTerminal(a.stdout)}}
	seen := map[behaviour]bool{sends: true}
	for _, r := range d.plan.recipients {
		if !seen[r.behave] {
			seen[r.behave] = true
			d.traced[r.user] = true
		}
	}
	return d
}

func (d *demo) run() error {
	d.intro()
	q, err := queue.Open(d.cfg.dir, &queue.Options{
		Backoff: queue.Backoff{Base: d.cfg.backoff},
		Logger:  d.a.logger(),
	})
	if err != nil {
		return openError(d.cfg.dir, err)
	}
	d.q = q
	start := time.Now()
	work, stop := context.WithCancel(d.a.ctx)
	defer stop()
	var wg sync.WaitGroup
	for range d.cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.worker(work)
		}()
	}
	produced := make(chan error, 1)
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		produced <- d.produce(work)
	}()
	err = d.watch(work, start, produced)
	stop()
	<-producing
	wg.Wait()
	if cerr := q.Close(); err == nil {
		err = cerr
	}
	d.out.endProgress()
	if d.a.ctx.Err() != nil {
		fmt.Fprintf(d.a.stdout, "\ninterrupted after %s: workers gave their jobs back; the queue is closed cleanly.\n",
			humanDuration(time.Since(start).Round(time.Millisecond)))
		d.inspect()
		return &exitError{130}
	}
	if err != nil {
		return err
	}
	d.summary(time.Since(start))
	d.inspect()
	return nil
}

func (d *demo) intro() {
	w := d.a.stdout
	var waits []string
	for n := 1; n < 5; n++ {
		waits = append(waits, humanDuration(queue.Backoff{Base: d.cfg.backoff}.Delay(n, 0)))
	}
	fmt.Fprintf(w, "walq demo: a producer enqueues %d \"send welcome email\" jobs; %d workers send them\n", d.cfg.count, d.cfg.workers)
	fmt.Fprintf(w, "through a fake mail service that sometimes fails.\n\n")
	t := newTable(w)
	t.row("  queue directory", d.cfg.dir+" (kept afterwards, for you to inspect)")
	t.row("  mail service", "72% accepted · 18% \"try again later\", then accepted · 5% bounce (permanent) · 5% server down")
	t.row("  retries", "up to 5 attempts; backoff "+strings.Join(waits, ", ")+
		fmt.Sprintf(" (base shortened to %s for the demo; the default is 1s)", humanDuration(d.cfg.backoff)))
	t.row("  seed", fmt.Sprintf("%d (the same seed gives the same outcome; --seed changes it)", d.cfg.seed))
	t.flush()
	fmt.Fprintln(w)
}

// produce enqueues every planned call; repeated keys are deduplicated by
// the queue.
func (d *demo) produce(ctx context.Context) error {
	for _, user := range d.plan.calls {
		payload, _ := json.Marshal(emailJob{User: user, To: fmt.Sprintf("user%d@example.com", user), Template: "welcome"})
		res, err := d.q.Enqueue(ctx, queue.NewJob{Queue: demoQueue, Key: fmt.Sprintf("welcome-email:user-%d", user), Payload: payload})
		if err != nil {
			return err
		}
		if res.Duplicate {
			d.dups.Add(1)
		} else {
			d.unique.Add(1)
		}
	}
	d.out.event(fmt.Sprintf("  producer: %d enqueue calls → %s; %d repeated an idempotency key and were deduplicated",
		d.cfg.count, plural(int(d.unique.Load()), "job"), d.dups.Load()))
	return nil
}

// watch shows progress until the producer is done and every job has
// finished (or ctx ends). It looks every 100ms; the progress line is
// redrawn as often on a terminal, and printed once a second otherwise.
func (d *demo) watch(ctx context.Context, start time.Time, produced <-chan error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	done := false
	var printed time.Time
	for {
		select {
		case err := <-produced:
			if err != nil && ctx.Err() == nil {
				return err
			}
			done = true
		default:
		}
		st, err := d.q.Stats(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		qs := st.Queues[demoQueue]
		finished := done && int64(qs.Completed+qs.Dead) == d.unique.Load()
		if d.out.live || finished || time.Since(printed) >= time.Second {
			printed = time.Now()
			d.out.progress(fmt.Sprintf("  [%5.1fs] sent %d · retrying %d · dead %d · running %d · queued %d",
				time.Since(start).Seconds(), qs.Completed, qs.Scheduled, qs.Dead, qs.Leased, qs.Ready))
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// worker leases jobs and sends them until ctx ends. A job in hand when ctx
// ends is given back (Release), as a worker shutting down should.
func (d *demo) worker(ctx context.Context) {
	bg := context.Background()
	for {
		l, err := d.q.Lease(ctx, demoQueue)
		if err != nil {
			return
		}
		var job emailJob
		_ = json.Unmarshal(l.Job.Payload, &job)
		err = d.send(ctx, job, l.Token.Attempt)
		if ctx.Err() != nil {
			_ = d.q.Release(bg, l.Token)
			return
		}
		if err == nil {
			if d.q.Complete(bg, l.Token, nil) == nil {
				d.sent.Add(1)
				if l.Token.Attempt > 1 {
					d.sentAfterRetry.Add(1)
					d.retriedJob.CompareAndSwap(0, l.Job.ID)
				}
				d.trace(job.User, fmt.Sprintf("job %d (user-%d): attempt %d sent", l.Job.ID, job.User, l.Token.Attempt))
			}
			continue
		}
		if d.q.Fail(bg, l.Token, err) == nil {
			d.afterFail(bg, l, job, err)
		}
	}
}

// afterFail counts a failure and, for traced recipients, shows what the
// queue decided: the backoff before the next attempt, or death.
func (d *demo) afterFail(ctx context.Context, l *queue.Lease, job emailJob, cause error) {
	j, err := d.q.Get(ctx, l.Job.ID)
	if err != nil {
		return
	}
	what := fmt.Sprintf("job %d (user-%d): attempt %d failed: %s → ", j.ID, job.User, l.Token.Attempt, cause)
	switch {
	case j.State == queue.StateDead && queue.IsPermanent(cause):
		d.bounced.Add(1)
		d.deadJob.CompareAndSwap(0, j.ID)
		what += "dead at once (permanent error, not retried)"
	case j.State == queue.StateDead:
		d.exhausted.Add(1)
		d.deadJob.CompareAndSwap(0, j.ID)
		what += fmt.Sprintf("dead after %d of %d attempts", j.Attempt, j.MaxAttempts)
	default:
		d.failed.Add(1)
		wait := time.Duration(0)
		if n := len(j.History); n > 0 {
			wait = j.RunAt.Sub(j.History[n-1].Ended)
		}
		what += "retry in " + humanDuration(wait)
	}
	d.trace(job.User, what)
}

// trace prints an event of a traced recipient, so that one journey
// through retries, backoff and the dead-letter queue is visible per kind.
func (d *demo) trace(user int, line string) {
	if d.traced[user] {
		d.out.event("  " + line)
	}
}

// send is the fake mail service: it waits its latency, then answers as the
// plan says.
func (d *demo) send(ctx context.Context, job emailJob, attempt int) error {
	if job.User < 1 || job.User > len(d.plan.recipients) {
		return queue.Permanent(fmt.Errorf("bad payload: unknown user %d", job.User))
	}
	if d.cfg.latency > 0 {
		// Spread latencies over [0.5, 1.5) of the mean; timing never
		// changes the outcome.
		lat := time.Duration(float64(d.cfg.latency) * (0.5 + rand.Float64()))
		t := time.NewTimer(lat)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	r := d.plan.recipients[job.User-1]
	switch {
	case r.behave == transient && attempt <= r.failures:
		return errors.New("smtp 451 4.7.1: try again later")
	case r.behave == bounces:
		return queue.Permanent(errors.New("smtp 550 5.1.1: no such user"))
	case r.behave == down:
		return errors.New("dial tcp mx.example.net:25: connection refused")
	}
	return nil
}

func (d *demo) summary(took time.Duration) {
	w := d.a.stdout
	dead := d.bounced.Load() + d.exhausted.Load()
	fmt.Fprintf(w, "\ndone in %s:\n", humanDuration(took.Round(time.Millisecond)))
	t := newTable(w)
	t.row("  enqueued", fmt.Sprintf("%s from %d calls (%d duplicates deduplicated by idempotency key)",
		plural(int(d.unique.Load()), "job"), d.cfg.count, d.dups.Load()))
	t.row("  sent", paint(w, green, fmt.Sprint(d.sent.Load()))+fmt.Sprintf(" (%d of them after a retry)", d.sentAfterRetry.Load()))
	t.row("  retries", fmt.Sprintf("%d failed attempts were retried after a backoff", d.failed.Load()))
	t.row("  dead", paint(w, red, fmt.Sprint(dead))+fmt.Sprintf(" (%d bounced: permanent error; %d server down: attempts used up)",
		d.bounced.Load(), d.exhausted.Load()))
	t.flush()
}

// inspect prints the commands that look at what the demo left, spelled as
// this walq was invoked so that they run as printed ("go run ./cmd/walq"
// from a clone, where no walq binary is installed yet).
func (d *demo) inspect() {
	w, dir := d.a.stdout, shellQuote(d.cfg.dir)
	walq := d.a.prog
	fmt.Fprintf(w, "\ninspect what it left in %s:\n", d.cfg.dir)
	t := newTable(w)
	t.row("  "+walq+" stats "+dir, "# counts per state, log size")
	t.row("  "+walq+" dead "+dir, "# the dead-letter queue and why each job died")
	if id := d.retriedJob.Load(); id != 0 {
		t.row(fmt.Sprintf("  %s show %s %d", walq, dir, id), "# a job that failed, backed off and was sent")
	}
	if id := d.deadJob.Load(); id != 0 {
		t.row(fmt.Sprintf("  %s show %s %d", walq, dir, id), "# a dead job: every attempt and its error")
	}
	t.row("  "+walq+" jobs "+dir+" --state completed --limit 10", "# the first jobs sent")
	t.row("  "+walq+" log "+dir+" --job 1", "# the raw log records of job 1")
	t.row("  "+walq+" check "+dir, "# verify every checksum")
	t.row("  "+walq+" web "+dir, "# the same in a browser, at http://127.0.0.1:8080/")
	t.row("  "+walq+" requeue "+dir+" --all", "# give the dead jobs another chance")
	t.flush()
	if strings.HasPrefix(walq, "go run ") {
		fmt.Fprintf(w, "\n('go install ./cmd/walq' puts a walq binary in $(go env GOPATH)/bin; then 'walq stats %s' works anywhere.)\n", dir)
	}
}

// demoOutput serialises the demo's output: event lines from the workers
// and the progress line, which is redrawn in place (\r) on a terminal and
// printed as plain lines, once a second, otherwise.
type demoOutput struct {
	mu   sync.Mutex
	w    io.Writer
	live bool
	last string // the progress line on screen (live only)
}

func (o *demoOutput) event(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live && o.last != "" {
		fmt.Fprintf(o.w, "\r\x1b[K%s\n%s", line, o.last)
		return
	}
	fmt.Fprintln(o.w, line)
}

func (o *demoOutput) progress(line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.live {
		fmt.Fprintln(o.w, line)
		return
	}
	fmt.Fprintf(o.w, "\r\x1b[K%s", line)
	o.last = line
}

// endProgress leaves the last progress line on screen.
func (o *demoOutput) endProgress() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.live && o.last != "" {
		fmt.Fprintln(o.w)
		o.last = ""
	}
}
