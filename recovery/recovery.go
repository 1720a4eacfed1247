package recovery

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Options configure Open.
type Options struct {
	// Log configures the log; Log.ReadOnly opens for inspection, replaying
	// without voiding leases or writing anything. Defaults to the log's
	// defaults.
	Log wlog.Options
	// Now is the time of opening, used to stamp voided leases and to sort
	// due jobs into the ready heap. Defaults to the zero time (Unix 0).
	Now time.Time
	// NoCheckpoint replays the whole log even when a checkpoint exists.
	// Defaults to false: a checkpoint that matches the log is loaded and
	// only the entries after it are replayed.
	NoCheckpoint bool
}

// Report describes an open.
type Report struct {
	// Entries and Records count what was replayed; Bytes is the size of
	// the segment files replayed.
	Entries int
	Records int
	Bytes   int64
	// FirstIndex and LastIndex bound the replayed log.
	FirstIndex uint64
	LastIndex  uint64
	// Jobs counts jobs per state after recovery.
	Jobs map[index.State]int
	// Repaired is what was cut from a torn tail, nil if nothing.
	Repaired *wlog.Repair
	// Voided counts leases of the previous process that were voided;
	// PoisonPills counts those that moved their job to the dead-letter
	// queue because its attempts were used up.
	Voided      int
	PoisonPills int
	// Duration is how long the open took.
	Duration time.Duration
	// Restarts counts replays of a read-only open that started again
	// because the writer's compaction removed a segment they had yet to
	// read.
	Restarts int
	// Checkpoint says whether a checkpoint was loaded, and if not, why.
	// When it was, Entries, Records and Bytes count only what was
	// replayed after it.
	Checkpoint CheckpointReport
}

// Open opens the log in dir and folds it into a new index. A writer (not
// Log.ReadOnly) also voids every lease found: the process that held it is
// gone. On error nothing is left open.
func Open(dir string, opts *Options) (*wlog.Log, *index.Index, *Report, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	start := time.Now()
	l, err := wlog.Open(dir, &o.Log)
	if err != nil {
		return nil, nil, nil, err
	}
	if !o.Log.ReadOnly {
		RemoveCheckpointTemp(dir)
	}
	x, rep, err := replay(l, o.Now, !o.NoCheckpoint, o.Log.ReadOnly)
	if err == nil && !o.Log.ReadOnly {
		err = voidLeases(l, x, rep, o.Now)
	}
	if err != nil {
		l.Close()
		return nil, nil, nil, err
	}
	rep.Jobs = CountStates(x)
	rep.Duration = time.Since(start)
	logger := o.Log.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if c := rep.Checkpoint; !c.Used && c.Reason != noCheckpoint && !o.NoCheckpoint {
		logger.Warn("walq: checkpoint not used; replayed the whole log", "dir", dir, "reason", c.Reason)
	}
	if rep.Voided > 0 {
		logger.Warn("walq: voided leases of a previous process",
			"dir", dir, "voided", rep.Voided, "poison_pills", rep.PoisonPills)
	}
	return l, x, rep, nil
}

// replayAttempts bounds how many times Replay starts again on a read-only
// log whose segments the writer's compaction removed under it.
const replayAttempts = 5

// Replay folds every record of l into a new index, with now as the time
// that decides which pending jobs are ready.
//
// On a read-only log, another process may compact the log while it is
// replayed, removing front segments that Replay has not read yet. Replay
// then refreshes the segment list and starts again from the new first
// segment: compaction restates every live job at the tail before it
// removes anything, so the shorter log replays to the same state. After
// replayAttempts such starts it gives up with an error matching
// log.ErrVanished.
func Replay(l *wlog.Log, now time.Time) (*index.Index, *Report, error) {
	return replay(l, now, false, true)
}

// replay is Replay, starting from the checkpoint if checkpoint is set and
// one matches the log. readOnly says l is a read-only log.
func replay(l *wlog.Log, now time.Time, checkpoint, readOnly bool) (*index.Index, *Report, error) {
	for attempt := 1; ; attempt++ {
		x, rep, err := replayOnce(l, now, checkpoint, readOnly)
		if !errors.Is(err, wlog.ErrVanished) {
			if rep != nil {
				rep.Restarts = attempt - 1
			}
			return x, rep, err
		}
		if attempt == replayAttempts {
			return nil, nil, fmt.Errorf("%w (the writer removed segments during each of %d replays)", err, attempt)
		}
		if err := l.Refresh(); err != nil {
			return nil, nil, fmt.Errorf("walq/recovery: replay %s: %w", l.Dir(), err)
		}
	}
}

// replayOnce is one attempt of replay. With checkpoint, it first tries
// the checkpoint, and replays the whole log if there is none or it does
// not match the log, saying why in the report.
func replayOnce(l *wlog.Log, now time.Time, checkpoint, readOnly bool) (*index.Index, *Report, error) {
	if !checkpoint {
		return fullReplay(l, now)
	}
	rep := &Report{Repaired: l.Repaired(), FirstIndex: l.FirstIndex(), LastIndex: l.LastIndex()}
	x, reason, err := loadCheckpoint(l, now, rep, readOnly)
	if err != nil {
		return nil, nil, fmt.Errorf("walq/recovery: replay %s: %w", l.Dir(), err)
	}
	if x != nil {
		rep.Checkpoint.Used = true
		rep.Bytes = l.Size()
		return x, rep, nil
	}
	x, full, err := fullReplay(l, now)
	if err != nil {
		return nil, nil, err
	}
	full.Checkpoint = rep.Checkpoint
	full.Checkpoint.Used, full.Checkpoint.Reason = false, reason
	return x, full, nil
}

// fullReplay folds the whole log into a new index.
func fullReplay(l *wlog.Log, now time.Time) (*index.Index, *Report, error) {
	// About 300 bytes per record is typical; overestimating costs little.
	x := index.NewSized(int(min(l.Size()/300, 1<<26)))
	x.Promote(now.UnixNano())
	rep := &Report{Repaired: l.Repaired(), FirstIndex: l.FirstIndex(), LastIndex: l.LastIndex()}
	if rep.FirstIndex > 1 {
		// Compaction truncated the front: records may refer to jobs
		// created before it, which later carry records restate.
		x.SetLenient()
	}
	err := foldFrom(l, x, rep, 1)
	rep.Bytes = l.Size()
	if err == nil && rep.FirstIndex > 1 {
		err = x.EndReplay()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("walq/recovery: replay %s: %w", l.Dir(), err)
	}
	// Heaps grown record by record keep up to a quarter spare.
	x.Trim()
	return x, rep, nil
}

// voidLeases ends every lease found after replay, in one atomic entry: the
// attempt counts (it may be the attempt that killed the process), the job is
// ready again at once, and a job with no attempts left is dead.
func voidLeases(l *wlog.Log, x *index.Index, rep *Report, now time.Time) error {
	var recs []wlog.Record
	at := now.UnixNano()
	x.Leased(func(j *index.Job) {
		r := wlog.Record{Kind: wlog.KindExpired, Job: j.ID, At: at, Attempt: int64(j.Attempt), RunAt: at,
			Error: fmt.Sprintf("walq: lease lost: the process exited during attempt %d", j.Attempt)}
		if j.Attempt >= j.MaxAttempts {
			r.Kind = wlog.KindDead
			r.RunAt = 0
			r.Error = fmt.Sprintf("walq: poison pill: the process exited during attempt %d of %d", j.Attempt, j.MaxAttempts)
			rep.PoisonPills++
		}
		recs = append(recs, r)
	})
	if len(recs) == 0 {
		return nil
	}
	idx, err := l.Append(recs)
	if err != nil {
		return fmt.Errorf("walq/recovery: void leases: %w", err)
	}
	for i := range recs {
		if err := x.Apply(&recs[i], index.Pos{Index: idx, Slot: i}); err != nil {
			return err
		}
	}
	rep.Voided = len(recs)
	return nil
}

// CountStates counts the index's jobs per state.
func CountStates(x *index.Index) map[index.State]int {
	m := make(map[index.State]int)
	for _, q := range x.Queues() {
		for _, s := range index.States() {
			m[s] += q.Count(s)
		}
	}
	return m
}

// batchSize is how many decoded records travel together from the decoding
// goroutine to the folding one.
const batchSize = 1024

// batch is a run of decoded records and their positions.
type batch struct {
	recs []wlog.Record
	pos  []index.Pos
}

// foldFrom decodes the log from entry from on one goroutine and applies it on another, so that
// the two halves of replay overlap on a machine with two cores or more.
// Decoded payloads and results alias the log's read buffer, which is reused
// once decoding moves on; that is safe because Apply keeps only their
// positions, never their bytes.
func foldFrom(l *wlog.Log, x *index.Index, rep *Report, from uint64) error {
	full := make(chan *batch, 4)
	free := make(chan *batch, 6)
	for range cap(free) {
		free <- &batch{recs: make([]wlog.Record, 0, batchSize), pos: make([]index.Pos, 0, batchSize)}
	}
	stop := make(chan struct{})
	applyErr := make(chan error, 1)
	go func() {
		defer close(applyErr)
		for b := range full {
			for i := range b.recs {
				if b.pos[i].Slot == 0 {
					rep.Entries++
				}
				if err := x.Apply(&b.recs[i], b.pos[i]); err != nil {
					applyErr <- err
					close(stop)
					for range full { // let the decoder finish
					}
					return
				}
			}
			rep.Records += len(b.recs)
			b.recs, b.pos = b.recs[:0], b.pos[:0]
			free <- b
		}
	}()
	errStopped := fmt.Errorf("stopped")
	cur := <-free
	err := l.Replay(from, func(i uint64, slot int, r *wlog.Record) error {
		cur.recs = append(cur.recs, *r)
		cur.pos = append(cur.pos, index.Pos{Index: i, Slot: slot})
		if len(cur.recs) < batchSize {
			return nil
		}
		select {
		case full <- cur:
		case <-stop:
			return errStopped
		}
		select {
		case cur = <-free:
		case <-stop:
			return errStopped
		}
		return nil
	})
	if err == nil && len(cur.recs) > 0 {
		select {
		case full <- cur:
		case <-stop:
		}
	}
	close(full)
	if aerr := <-applyErr; aerr != nil {
		return aerr
	}
	return err
}
