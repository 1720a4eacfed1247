package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/walq/walq/queue"
)

// EventJSON is one job transition on GET api/events.
type EventJSON struct {
	Kind            string   `json:"kind"`
	Job             uint64   `json:"job"`
	Queue           string   `json:"queue"`
	Attempt         int      `json:"attempt"`
	At              *string  `json:"at"`
	NextRunAt       *string  `json:"next_run_at"`
	DurationSeconds *float64 `json:"duration_seconds"`
	Error           string   `json:"error,omitempty"`
	// Dropped counts the events this stream lost so far because the
	// client read too slowly.
	Dropped uint64 `json:"dropped"`
}

// heartbeat keeps idle event streams open through proxies.
const heartbeat = 15 * time.Second

// GET api/events: server-sent events, one "job" event per durable
// transition (q.Subscribe). A slow client loses events (counted in
// Dropped) and never slows the queue. A read-only queue (walq web)
// sends none: its pages poll instead.
func (h *handler) apiEvents(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	// Subscribe before answering: a client that has the headers sees
	// every transition after them.
	sub := q.Subscribe(1024)
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			b, _ := json.Marshal(toEventJSON(ev, sub.Dropped()))
			if _, err := fmt.Fprintf(w, "event: job\ndata: %s\n\n", b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func toEventJSON(ev queue.Event, dropped uint64) EventJSON {
	out := EventJSON{Kind: string(ev.Kind), Job: ev.Job, Queue: ev.Queue, Attempt: ev.Attempt,
		At: jsonTime(ev.At), NextRunAt: jsonTime(ev.NextRunAt), Error: ev.Error, Dropped: dropped}
	if ev.Duration > 0 {
		s := ev.Duration.Seconds()
		out.DurationSeconds = &s
	}
	return out
}
