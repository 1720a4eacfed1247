package web

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// TestFollow serves a directory that a writer in this process keeps
// changing, compactions included, and checks that the pages follow it.
func TestFollow(t *testing.T) {
	t.Parallel()
	q, mc := fixture(t)
	f, err := Follow(q.Dir(), &Options{Write: true, Clock: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total := func() CountsJSON {
		t.Helper()
		code, body := get(t, f, "/api/stats")
		if code != http.StatusOK {
			t.Fatalf("GET api/stats: %d\n%s", code, body)
		}
		var st StatsJSON
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.Total
	}
	look := func() {
		f.mu.Lock()
		f.checked = time.Time{} // as if FollowEvery had passed
		f.mu.Unlock()
	}
	if got := total(); got.Ready != 2 || got.Dead != 1 {
		t.Fatalf("first look: %+v", got)
	}
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "emails", Payload: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if got := total(); got.Ready != 2 {
		t.Errorf("looked again before FollowEvery: %+v", got)
	}
	look()
	if got := total(); got.Ready != 3 {
		t.Errorf("after an enqueue: ready %d, want 3", got.Ready)
	}
	if _, err := q.RequeueDead(ctx, queue.DeadFilter{}, queue.RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	look()
	if got := total(); got.Ready != 4 || got.Dead != 0 {
		t.Errorf("after requeue and compaction: %+v", got)
	}
	if rec := postJSON(t, f, "/api/compact", `{}`); rec.Code != http.StatusForbidden {
		t.Errorf("a followed directory accepted a change: %d", rec.Code)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, f, "/api/stats"); code != http.StatusInternalServerError {
		t.Errorf("after Close: %d", code)
	}
}
