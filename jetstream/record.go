package jetstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/walq/walq/queue"
)

// Headers of the engine's messages. A job's record message (its first
// message; its stream sequence is the job ID) carries the job's fields and
// its payload. A delivery message that is not the record (a requeue, a
// fired schedule) carries Walq-Id or Walq-Hold and no payload.
const (
	hdrQueue   = "Walq-Queue"
	hdrKey     = "Walq-Key"
	hdrMax     = "Walq-Max-Attempts"
	hdrPrio    = "Walq-Priority"
	hdrBackoff = "Walq-Backoff"
	hdrTimeout = "Walq-Timeout"
	hdrEnq     = "Walq-Enqueued"
	hdrRunAt   = "Walq-Run-At"
	hdrID      = "Walq-Id"
	hdrGen     = "Walq-Gen"
	hdrHold    = "Walq-Hold"
	hdrMeta    = "Walq-Meta"
)

// meta is what a job's record message says about it.
type meta struct {
	Queue       string
	Key         string
	Payload     []byte
	MaxAttempts int
	Priority    int32
	Backoff     *queue.Backoff
	Timeout     time.Duration
	EnqueuedAt  time.Time
	RunAt       time.Time
	// Meta is the job's metadata, a JSON object in one header (JSON
	// escapes the line breaks a header value cannot hold).
	Meta map[string]string
}

func unixNano(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func parseNano(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s == "" {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// recordMsg builds a job's record message.
func recordMsg(subject string, m *meta) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = m.Payload
	h := msg.Header
	h.Set(hdrQueue, m.Queue)
	if m.Key != "" {
		h.Set(hdrKey, m.Key)
	}
	h.Set(hdrMax, strconv.Itoa(m.MaxAttempts))
	if m.Priority != 0 {
		h.Set(hdrPrio, strconv.Itoa(int(m.Priority)))
	}
	if m.Backoff != nil {
		h.Set(hdrBackoff, strconv.FormatInt(int64(m.Backoff.Base), 10)+","+strconv.FormatInt(int64(m.Backoff.Cap), 10))
	}
	if m.Timeout != 0 {
		h.Set(hdrTimeout, strconv.FormatInt(int64(m.Timeout), 10))
	}
	h.Set(hdrEnq, unixNano(m.EnqueuedAt))
	if !m.RunAt.IsZero() {
		h.Set(hdrRunAt, unixNano(m.RunAt))
	}
	if len(m.Meta) > 0 {
		b, _ := json.Marshal(m.Meta) // a map of strings always marshals
		h.Set(hdrMeta, string(b))
	}
	return msg
}

// parseMeta reads a record message; ok is false for a message that is not
// a job record.
func parseMeta(h nats.Header, data []byte) (m meta, ok bool) {
	if h == nil || h.Get(hdrQueue) == "" || h.Get(hdrID) != "" || h.Get(hdrHold) != "" {
		return m, false
	}
	m.Queue = h.Get(hdrQueue)
	m.Key = h.Get(hdrKey)
	m.Payload = data
	if v := h.Get(hdrMeta); v != "" {
		_ = json.Unmarshal([]byte(v), &m.Meta) // written by recordMsg; a foreign value reads as none
	}
	m.MaxAttempts, _ = strconv.Atoi(h.Get(hdrMax))
	p, _ := strconv.Atoi(h.Get(hdrPrio))
	m.Priority = int32(p)
	if b := h.Get(hdrBackoff); b != "" {
		var base, capd int64
		if _, err := fmt.Sscanf(b, "%d,%d", &base, &capd); err == nil {
			m.Backoff = &queue.Backoff{Base: time.Duration(base), Cap: time.Duration(capd)}
		}
	}
	t, _ := strconv.ParseInt(h.Get(hdrTimeout), 10, 64)
	m.Timeout = time.Duration(t)
	m.EnqueuedAt = parseNano(h.Get(hdrEnq))
	m.RunAt = parseNano(h.Get(hdrRunAt))
	return m, true
}

// record is a job's mutable state in the jobs bucket, under "j.<id>".
// A job has none until its first transition after the enqueue; every
// write is conditional (Create when there is none, Update on the revision
// read), so of two writers racing from the same state exactly one wins.
type record struct {
	// State is "" while the job is pending or leased, else completed,
	// dead or cancelled.
	State queue.JobState `json:"state,omitempty"`
	// Event is the transition that wrote the record, for Subscribe.
	Event queue.EventKind `json:"event,omitempty"`
	At    time.Time       `json:"at"`
	// Gen counts requeues: a delivery message of another generation is
	// stale.
	Gen int `json:"gen,omitempty"`
	// Uncounted counts deliveries of this generation that did not count
	// as attempts (Release, Snooze, an early delivery).
	Uncounted int `json:"uncounted,omitempty"`
	// LeaseBase is added to a delivery's count to number leases across
	// generations.
	LeaseBase int    `json:"lease_base,omitempty"`
	Queue     string `json:"queue,omitempty"` // the queue a requeue moved it to
	Name      string `json:"name,omitempty"`  // the job's queue when written, for events
	Attempt   int    `json:"attempt,omitempty"`
	LastLease int    `json:"last_lease,omitempty"`
	LastError string `json:"error,omitempty"`
	// RunAt is when a retrying or requeued job runs again.
	RunAt      time.Time       `json:"run_at"`
	FinishedAt time.Time       `json:"finished_at"`
	Result     []byte          `json:"result,omitempty"`
	HasResult  bool            `json:"has_result,omitempty"`
	History    []queue.Attempt `json:"history,omitempty"`
	Dropped    int             `json:"dropped,omitempty"`
}

func (r *record) finished() bool {
	return r.State == queue.StateCompleted || r.State == queue.StateDead || r.State == queue.StateCancelled
}

// addHistory appends an attempt, keeping the first HistoryFirst and the
// last HistoryLast entries as the WAL engine does.
func (r *record) addHistory(a queue.Attempt) {
	r.History = append(r.History, a)
	if len(r.History) > queue.HistoryFirst+queue.HistoryLast {
		r.History = append(r.History[:queue.HistoryFirst], r.History[queue.HistoryFirst+1:]...)
		r.Dropped++
	}
}

func encodeRecord(r *record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a record has no field that fails to marshal
	}
	return b
}

// keyRecord is an idempotency key's holder in the keys bucket.
type keyRecord struct {
	ID uint64 `json:"id"`
}

func keyKey(key string) string { return "k." + base64.RawURLEncoding.EncodeToString([]byte(key)) }
