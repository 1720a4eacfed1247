package jetstream

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"time"

	"github.com/walq/walq/queue"
)

// Options configure a Queue. Open copies them; nil gives the defaults.
type Options struct {
	// Name prefixes every JetStream object the engine uses: the stream
	// Name, its subjects Name.q.*, Name.h.*, Name.s.*, the consumers
	// Name_<queue> and the key-value buckets Name_jobs and Name_keys.
	// Queues opened with the same Name on the same servers share jobs.
	// Letters, digits, - and _. Defaults to "WALQ".
	Name string
	// Replicas is the replication factor of the stream, the buckets and
	// the consumers: 1 on a single server, 3 on a cluster of three or
	// more. Defaults to 1.
	Replicas int
	// MaxAttempts is how many times a job runs at most unless the job
	// sets its own. Defaults to 5.
	MaxAttempts int
	// Backoff is the delay policy after a failure unless the job sets its
	// own. Defaults to queue.Backoff{Base: 1s, Factor: 2, Cap: 1h}.
	Backoff queue.Backoff
	// Rand draws backoff jitter, in [0, 1). Defaults to math/rand/v2's
	// Float64.
	Rand func() float64
	// LeaseDuration is the consumers' AckWait: how long a lease lasts
	// unless extended. It is fixed when a queue's consumer is created.
	// Defaults to 30s.
	LeaseDuration time.Duration
	// KeyRetention is how long a completed or cancelled job, its result
	// and its idempotency key are remembered. Defaults to 24h.
	KeyRetention time.Duration
	// MaxPayload is the largest payload (and result) accepted; the
	// server's max_payload (1 MiB by default) bounds it too. Defaults to
	// 1 MiB minus 4 KiB for headers.
	MaxPayload int
	// Duplicates is the stream's de-duplication window for Nats-Msg-Id,
	// within which a keyed enqueue retried after a lost reply finds its
	// first publication. Defaults to 2m.
	Duplicates time.Duration
	// MaintenanceInterval is how often the Queue purges completed and
	// cancelled jobs whose KeyRetention has passed (their messages, state
	// records and keys); every process that opens the queue does it, and
	// purges are idempotent. Negative disables it. Defaults to 1m.
	MaintenanceInterval time.Duration
	// RequestTimeout bounds each request to the servers, so that one lost
	// in a failover fails (and can be retried) instead of waiting for
	// the caller's deadline. Defaults to 5s.
	RequestTimeout time.Duration
	// NoSchedules makes delayed jobs wait in the queue's consumer
	// (delivered, then NakWithDelay until their run-at) instead of in
	// server message schedules; it is what Open does by itself on a
	// server older than 2.12. Defaults to false.
	NoSchedules bool
	// Logger receives what the engine cannot return (a failed cleanup of
	// an acknowledged message). Defaults to slog.Default().
	Logger *slog.Logger
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Name == "" {
		c.Name = "WALQ"
	}
	if !nameRE.MatchString(c.Name) {
		return c, fmt.Errorf("%w: Options.Name %q: want 1-32 letters, digits, - or _", queue.ErrInvalid, c.Name)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return c, fmt.Errorf("%w: Options.Replicas %d: want 1 to 5", queue.ErrInvalid, c.Replicas)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MaxAttempts < 0 {
		return c, fmt.Errorf("%w: Options.MaxAttempts %d", queue.ErrInvalid, c.MaxAttempts)
	}
	if c.Backoff.Base == 0 {
		c.Backoff.Base = time.Second
	}
	if c.Backoff.Factor == 0 {
		c.Backoff.Factor = 2
	}
	if c.Backoff.Cap == 0 {
		c.Backoff.Cap = time.Hour
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 30 * time.Second
	}
	if c.LeaseDuration < time.Millisecond {
		return c, fmt.Errorf("%w: Options.LeaseDuration %v", queue.ErrInvalid, c.LeaseDuration)
	}
	if c.KeyRetention == 0 {
		c.KeyRetention = 24 * time.Hour
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1<<20 - 4<<10
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.MaintenanceInterval == 0 {
		c.MaintenanceInterval = time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
