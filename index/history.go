package index

import wlog "github.com/walq/walq/log"

// A job's history is bounded: it keeps its first HistoryFirst entries and
// its last HistoryLast, and counts the attempts dropped between them, so
// that a job snoozed or retried without end costs the same to lease, read
// and carry as any other. Every entry names its attempt and lease number,
// so what is kept still matches tokens and attempt counts.
const (
	// HistoryFirst is how many of a job's oldest history entries are
	// kept.
	HistoryFirst = 16
	// HistoryLast is how many of a job's newest history entries are
	// kept.
	HistoryLast = 48
)

// Dropped returns how many attempts were left out of the job's history
// (between its first HistoryFirst entries and its last HistoryLast).
func (j *Job) Dropped() int32 {
	if j.X == nil {
		return 0
	}
	return j.X.Dropped
}

// addHistory appends a to the history and drops the oldest of the newest
// entries if the bound is passed. Dropping moves at most HistoryLast
// entries: O(1) in the history's length.
func (e *Extra) addHistory(a wlog.Attempt) {
	e.History = append(e.History, a)
	e.trimHistory()
}

// trimHistory drops entries after the first HistoryFirst until at most
// HistoryFirst+HistoryLast remain, counting the attempts dropped (requeue
// markers are not attempts).
func (e *Extra) trimHistory() {
	h := e.History
	over := len(h) - (HistoryFirst + HistoryLast)
	if over <= 0 {
		return
	}
	for _, a := range h[HistoryFirst : HistoryFirst+over] {
		if a.Outcome != wlog.KindRequeued {
			e.Dropped++
		}
	}
	n := copy(h[HistoryFirst:], h[HistoryFirst+over:])
	clear(h[HistoryFirst+n:])
	e.History = h[:HistoryFirst+n]
}

// restoreHistory takes a history restated by a carry record: it numbers
// the entries of a history written before entries carried their numbers
// (such a history is complete, so counting from the first entry gives
// them), then sets Leases and Dropped from the numbers and applies the
// bound.
func (e *Extra) restoreHistory(h []wlog.Attempt) {
	e.History = append([]wlog.Attempt(nil), h...)
	numbered := true
	for _, a := range e.History {
		if a.Outcome != wlog.KindRequeued && a.Lease == 0 {
			numbered = false
			break
		}
	}
	if !numbered {
		numberHistory(e.History)
	}
	kept := int32(0)
	e.Leases = 0
	for _, a := range e.History {
		if a.Outcome != wlog.KindRequeued {
			kept++
			e.Leases = max(e.Leases, a.Lease)
		}
	}
	e.Dropped = e.Leases - kept
	e.trimHistory()
}

// numberHistory gives each entry of a complete history its attempt and
// lease numbers: a released attempt does not count toward the attempts
// and shares its number with the next; a requeue marker restarts the
// count and is neither.
func numberHistory(h []wlog.Attempt) {
	var counted, leases int32
	for i := range h {
		a := &h[i]
		switch a.Outcome {
		case wlog.KindRequeued:
			counted, a.Number, a.Lease = 0, 0, 0
			continue
		case wlog.KindReleased:
			a.Number = counted + 1
		default:
			counted++
			a.Number = counted
		}
		leases++
		a.Lease = leases
	}
}
