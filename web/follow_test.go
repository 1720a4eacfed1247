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

// TestFollowConcurrent reads a followed directory from several goroutines
// while the writer changes and compacts it and every read forces a fresh
// look: no request may see a queue closed under it.
func TestFollowConcurrent(t *testing.T) {
	t.Parallel()
	q, mc := fixture(t)
	f, err := Follow(q.Dir(), &Options{Clock: mc})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "emails", Payload: []byte("x")}); err != nil {
				writerDone <- err
				return
			}
			if i%20 == 0 {
				if _, err := q.Compact(ctx); err != nil {
					writerDone <- err
					return
				}
			}
		}
	}()
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 30; i++ {
				f.mu.Lock()
				f.checked = time.Time{}
				f.mu.Unlock()
				for _, path := range []string{"/api/stats", "/api/jobs?limit=5", "/"} {
					if code, body := get(t, f, path); code != http.StatusOK {
						errs <- path + ": " + body
						return
					}
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
}
