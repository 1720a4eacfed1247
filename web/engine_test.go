package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
)

// engineOnly hides everything of *queue.Queue that queue.Engine does not
// promise, as another engine (JetStream) would.
type engineOnly struct{ queue.Engine }

// TestHandlerOverAnyEngine checks that the dashboard needs only the Engine
// interface: its pages and API work, and a compaction, which only the WAL
// engine offers, is refused with a clear error instead of failing.
func TestHandlerOverAnyEngine(t *testing.T) {
	q, _ := fixture(t)
	h := Handler(engineOnly{q}, &Options{Write: true})
	for _, path := range []string{"/", "/jobs", "/dead", "/api/stats", "/api/jobs", "/api/dead", "/jobs/1"} {
		if code, body := get(t, h, path); code != http.StatusOK {
			t.Errorf("GET %s over a bare engine: %d %.200s", path, code, body)
		}
	}
	rec := postJSON(t, h, "/api/compact", `{}`)
	if rec.Code == http.StatusOK || !strings.Contains(rec.Body.String(), "does not compact") {
		t.Errorf("compact over an engine without Compact: %d %s", rec.Code, rec.Body.String())
	}
	if rec := postJSON(t, Handler(q, &Options{Write: true}), "/api/compact", `{}`); rec.Code != http.StatusOK {
		t.Errorf("compact over *queue.Queue: %d %s", rec.Code, rec.Body.String())
	}
}
