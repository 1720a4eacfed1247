package queue

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/benbjohnson/clock"
	wlog "github.com/walq/walq/log"
)

// Durability says when a change counts as durable; see the constants.
type Durability int

const (
	// Sync makes every change durable (written and fsynced) before the call
	// returns; concurrent calls share fsyncs. The zero value and the
	// default.
	Sync Durability = iota
	// Interval returns once a change is written to the OS and fsyncs at
	// most every Options.SyncInterval: a power loss can drop the last
	// interval of acknowledged changes (a process crash cannot).
	Interval
	// None leaves flushing to the OS: a power loss can drop any
	// acknowledged change the OS had not written back.
	None
)

// String returns "sync", "interval" or "none".
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case Interval:
		return "interval"
	case None:
		return "none"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

// logDurability converts d for the log (Options validated it).
func (d Durability) logDurability() wlog.Durability {
	switch d {
	case Interval:
		return wlog.Interval
	case None:
		return wlog.None
	}
	return wlog.Sync
}

// Backoff is the delay policy between attempts: the delay after failed
// attempt n is Base·Factor^(n-1), at most Cap, then shortened by up to
// Jitter of itself at random. The zero value means the defaults.
type Backoff struct {
	// Base is the first delay. Defaults to 1s.
	Base time.Duration
	// Factor multiplies the delay after each failure. Defaults to 2.
	Factor float64
	// Cap bounds the delay. Defaults to 1h.
	Cap time.Duration
	// Jitter, between 0 and 1, is the largest share of a delay that is
	// randomly taken off it, so that failures do not retry in lockstep.
	// Defaults to 0 (exact delays).
	Jitter float64
}

// Delay returns the delay after failed attempt n (n >= 1), with r in [0, 1)
// drawing the jitter. Zero fields take their defaults.
func (b Backoff) Delay(n int, r float64) time.Duration {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Factor < 1 {
		b.Factor = 2
	}
	if b.Cap <= 0 {
		b.Cap = time.Hour
	}
	if n < 1 {
		n = 1
	}
	d := float64(b.Base) * math.Pow(b.Factor, float64(n-1))
	if d > float64(b.Cap) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Cap)
	}
	d -= d * b.Jitter * r
	return time.Duration(d)
}

func (b Backoff) withDefaults(field string) (Backoff, error) {
	if b.Base < 0 || b.Cap < 0 || b.Factor < 0 || math.IsNaN(b.Factor) {
		return b, fmt.Errorf("%w: %s: negative value", ErrInvalid, field)
	}
	if b.Jitter < 0 || b.Jitter > 1 || math.IsNaN(b.Jitter) {
		return b, fmt.Errorf("%w: %s.Jitter: %v is not between 0 and 1", ErrInvalid, field, b.Jitter)
	}
	if b.Base == 0 {
		b.Base = time.Second
	}
	if b.Factor == 0 {
		b.Factor = 2
	}
	if b.Factor < 1 {
		return b, fmt.Errorf("%w: %s.Factor: %v is below 1", ErrInvalid, field, b.Factor)
	}
	if b.Cap == 0 {
		b.Cap = time.Hour
	}
	if b.Cap < b.Base {
		b.Cap = b.Base
	}
	return b, nil
}

// Options configure a Queue. Open copies them; the zero value (or nil) gives
// the defaults.
type Options struct {
	// Clock is the source of time for run-at, backoff, leases and
	// retention. Tests pass clock.NewMock(). Defaults to the real clock.
	Clock clock.Clock
	// MaxAttempts is how many times a job runs at most (the first run plus
	// retries) unless the job sets its own. Defaults to 5.
	MaxAttempts int
	// Backoff is the delay policy after a failure unless the job sets its
	// own. Defaults to Backoff{Base: 1s, Factor: 2, Cap: 1h}.
	Backoff Backoff
	// Rand draws backoff jitter, in [0, 1). Defaults to math/rand/v2's
	// Float64.
	Rand func() float64
	// LeaseDuration is how long a lease lasts unless extended. Defaults to
	// 30s.
	LeaseDuration time.Duration
	// Durability says when a change is acknowledged. Defaults to Sync.
	Durability Durability
	// SyncInterval is the fsync period in Interval mode. Defaults to 100ms.
	SyncInterval time.Duration
	// KeyRetention is how long a completed or cancelled job, its result and
	// its idempotency key are remembered. Defaults to 24h.
	KeyRetention time.Duration
	// MaxPayload is the largest payload (and result) accepted. Defaults to
	// 16 MiB.
	MaxPayload int
	// SegmentSize is the size of a log segment file. Defaults to 1 MiB.
	SegmentSize int
	// ReadOnly opens the directory for inspection: no lock is taken and
	// nothing is written, so it works while another process has the queue
	// open; changing calls return ErrReadOnly. Defaults to false.
	ReadOnly bool
	// Logger receives recovery reports and I/O failures. Defaults to
	// slog.Default().
	Logger *slog.Logger

	// CompactRatio starts a background compaction when the log is larger
	// than CompactRatio times the live data plus two segments. Negative
	// disables the background compactor altogether, so that retention is
	// enforced only when Compact is called. Defaults to 2.
	CompactRatio float64
	// MaintenanceInterval is how often the background compactor runs on
	// its own: it enforces retention every time, and compacts only when
	// the log has outgrown CompactRatio. Retention is also enforced once
	// before Open returns. Defaults to 1m.
	MaintenanceInterval time.Duration
	// DeadMaxAge purges dead jobs this long after they died. Defaults to 0
	// (dead jobs stay until requeued or purged).
	DeadMaxAge time.Duration
	// DeadMaxCount purges the oldest dead jobs beyond this many. Defaults
	// to 0 (no limit).
	DeadMaxCount int
	// EnqueueMiddleware wraps every Enqueue and EnqueueBatch call, the
	// first outermost: a producer-side hook that can add metadata (trace
	// context) to the jobs, time the call or record its outcome. See
	// EnqueueMiddleware. Defaults to none (and then costs nothing).
	EnqueueMiddleware []EnqueueMiddleware
	// RateLimits caps, per named queue, how many jobs are leased (started)
	// in any window of a duration, for Lease, LeaseN and the worker
	// runtime alike (see RateLimit). Open copies the map. Defaults to nil
	// (no limits).
	RateLimits map[string]RateLimit
	// Breakers sets a circuit breaker on named queues (see Breaker). Open
	// copies the map. Defaults to nil (none).
	Breakers map[string]Breaker
	// ReleaseKeysOnDeath makes every job enqueued with an idempotency key
	// give the key up when it dies, as NewJob.ReleaseKeyOnDeath does for
	// one job; keys beginning with "walq:" (walq's own helpers) are left
	// alone. It is decided when a job is enqueued and stored with it:
	// changing it affects only jobs enqueued afterwards. Defaults to false
	// (a dead job keeps its key until it is requeued or purged).
	ReleaseKeysOnDeath bool
}

func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Clock == nil {
		c.Clock = clock.New()
	}
	if c.MaxAttempts < 0 {
		return c, fmt.Errorf("%w: Options.MaxAttempts: %d is negative", ErrInvalid, c.MaxAttempts)
	}
	if err := checkEnqueueMiddleware(c.EnqueueMiddleware); err != nil {
		return c, err
	}
	c.EnqueueMiddleware = slices.Clone(c.EnqueueMiddleware)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	var err error
	if c.Backoff, err = c.Backoff.withDefaults("Options.Backoff"); err != nil {
		return c, err
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"LeaseDuration", &c.LeaseDuration, 30 * time.Second},
		{"SyncInterval", &c.SyncInterval, 100 * time.Millisecond},
		{"KeyRetention", &c.KeyRetention, 24 * time.Hour},
		{"MaintenanceInterval", &c.MaintenanceInterval, time.Minute},
		{"DeadMaxAge", &c.DeadMaxAge, 0},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: Options.%s: %v is negative", ErrInvalid, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Durability < Sync || c.Durability > None {
		return c, fmt.Errorf("%w: Options.Durability: unknown mode %d", ErrInvalid, int(c.Durability))
	}
	if c.MaxPayload < 0 {
		return c, fmt.Errorf("%w: Options.MaxPayload: %d is negative", ErrInvalid, c.MaxPayload)
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 16 << 20
	}
	if c.CompactRatio == 0 {
		c.CompactRatio = 2
	}
	if c.DeadMaxCount < 0 {
		return c, fmt.Errorf("%w: Options.DeadMaxCount: %d is negative", ErrInvalid, c.DeadMaxCount)
	}
	if c.SegmentSize < 0 {
		return c, fmt.Errorf("%w: Options.SegmentSize: %d is negative", ErrInvalid, c.SegmentSize)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RateLimits, err = copyRateLimits(c.RateLimits); err != nil {
		return c, err
	}
	if c.Breakers, err = copyBreakers(c.Breakers); err != nil {
		return c, err
	}
	return c, nil
}
