package queue

import (
	"context"
	"fmt"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// EventProgress reports a running attempt's progress (Event.Progress and
// Event.Note).
const EventProgress EventKind = "progress"

// maxNoteLen bounds a progress report's message.
const maxNoteLen = 256

// Progress records the progress of the lease's attempt: a number (a
// percentage, a count of items done: the meaning is the handler's) and a
// short message of at most 256 bytes. The latest report is durable and
// replaces the previous one: Get shows it (Job.Progress and
// Job.ProgressNote), Subscribe streams it (EventProgress), and it outlives
// the attempt (a retry sees how far the last one came). Each call costs one
// log entry (and, in Sync mode, a share of an fsync): report at a pace the
// job's length justifies, every few seconds rather than every item. Only
// the current, unexpired lease may report.
func (q *Queue) Progress(ctx context.Context, tok Token, n int64, msg string) error {
	if len(msg) > maxNoteLen {
		return fmt.Errorf("%w: progress message of %d bytes, limit %d", ErrInvalid, len(msg), maxNoteLen)
	}
	if err := q.beginWrite(ctx); err != nil {
		return err
	}
	defer q.end()
	j, now, err := q.holdLease(tok)
	if err != nil {
		return err
	}
	r := wlog.Record{Kind: wlog.KindProgress, Job: j.ID, At: now, Attempt: int64(j.Attempt), Progress: n, Note: msg}
	return q.commit([]wlog.Record{r}, []*index.Job{j})
}
