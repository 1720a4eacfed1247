package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

// TestWebAPIShapesFeatures checks that the job features (metadata, group,
// progress, batch, schedules, breakers, released keys) have the same JSON
// shapes in the dashboard's API as in walq's --json output.
func TestWebAPIShapesFeatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "q")
	mc := newMock()
	w := openQueue(t, dir, mc, &queue.Options{Breakers: map[string]queue.Breaker{"flaky": {Failures: 1, Cooldown: time.Minute}}})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Enqueue(ctx, queue.NewJob{Queue: "emails", Group: "customer/<42>", Meta: map[string]string{"tenant": "<script>x</script>"}})
	must(err)
	l, err := w.TryLease(ctx, "emails")
	must(err)
	must(w.Progress(ctx, l.Token, 40, "<i>40</i> of 100"))
	b, err := w.EnqueueBatchThen(ctx, []queue.NewJob{{Queue: "images"}, {Queue: "images"}}, queue.NewJob{Queue: "callbacks"})
	must(err)
	l, err = w.TryLease(ctx, "images")
	must(err)
	must(w.Complete(ctx, l.Token, nil))
	_, err = w.Enqueue(ctx, queue.NewJob{Queue: "flaky", Key: "order-7", ReleaseKeyOnDeath: true})
	must(err)
	l, err = w.TryLease(ctx, "flaky")
	must(err)
	must(w.Fail(ctx, l.Token, queue.Permanent(errors.New("declined"))))
	must(w.Schedule(ctx, queue.Schedule{Name: "nightly", Every: time.Hour, Job: queue.NewJob{Queue: "reports"}}))
	mc.Add(10 * time.Second)

	q, err := queue.Open(dir, &queue.Options{ReadOnly: true, Clock: mc})
	must(err)
	defer q.Close()
	h := web.Handler(q, nil)
	serve := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Body.String()
	}
	for _, tc := range []struct {
		cli  []string
		path string
		want string
	}{
		{[]string{"stats", dir, "--json"}, "/api/stats", `"schedules"`},
		{[]string{"stats", dir, "--json"}, "/api/stats", `"state": "open"`},
		{[]string{"jobs", dir, "--json", "--limit", "0"}, "/api/jobs?limit=1000", `"progress_note"`},
		{[]string{"dead", dir, "--json"}, "/api/dead", `"key_released": true`},
	} {
		r := walqAt(t, mc, tc.cli...)
		wantCode(t, r, 0)
		if got := serve(tc.path); got != r.stdout {
			t.Errorf("GET %s differs from walq %v:\n--- api:\n%s--- walq:\n%s", tc.path, tc.cli, got, r.stdout)
		}
		if !strings.Contains(r.stdout, tc.want) {
			t.Errorf("walq %v has no %s:\n%s", tc.cli, tc.want, r.stdout)
		}
	}
	for _, id := range []uint64{1, b.ID, 4} {
		r := walqAt(t, mc, "show", dir, fmt.Sprint(id), "--json")
		wantCode(t, r, 0)
		var cli, api map[string]any
		must(json.Unmarshal([]byte(r.stdout), &cli))
		delete(cli, "records")
		must(json.Unmarshal([]byte(serve(fmt.Sprintf("/api/jobs/%d", id))), &api))
		if !reflect.DeepEqual(cli, api) {
			t.Errorf("api/jobs/%d differs from show --json:\n%v\n%v", id, api, cli)
		}
	}
	r := walqAt(t, mc, "show", dir, "4")
	if !strings.Contains(r.stdout, "order-7 (released when the job died)") {
		t.Errorf("walq show of a job that released its key:\n%s", r.stdout)
	}
}
