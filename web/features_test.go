package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Markup in metadata, group and progress texts, which pages must show as
// text.
const (
	metaScript  = `<script>alert("meta")</script>`
	groupMarkup = `customer/<b>42</b>`
	noteMarkup  = `resized <i>40</i> of 100`
)

// The features fixture's jobs.
const (
	featMeta     = 1 // leased: metadata, a group and a progress report
	featBatch    = 2 // completed member of batch 2 (members 2 and 3)
	featReleased = 5 // dead: gave its key up
)

// featuresFixture opens a queue that uses the job features: metadata,
// groups, progress, a batch, a periodic schedule, a rate limit, a circuit
// breaker and a released key.
func featuresFixture(t *testing.T) (*queue.Queue, *clock.Mock) {
	t.Helper()
	mc := clock.NewMock()
	mc.Set(epoch)
	dir := filepath.Join(t.TempDir(), "q")
	q, err := queue.Open(dir, &queue.Options{Clock: mc, Logger: slog.New(slog.DiscardHandler), CompactRatio: -1,
		RateLimits: map[string]queue.RateLimit{"emails": {N: 5, Per: time.Minute}},
		Breakers:   map[string]queue.Breaker{"flaky": {Failures: 1, Cooldown: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "emails", Payload: []byte("hi"), Group: groupMarkup,
		Meta: map[string]string{"tenant": metaScript, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	must(err)
	l, err := q.TryLease(ctx, "emails")
	must(err)
	mc.Add(time.Second)
	must(q.Progress(ctx, l.Token, 40, noteMarkup))
	_, err = q.EnqueueBatchThen(ctx, []queue.NewJob{{Queue: "images"}, {Queue: "images"}}, queue.NewJob{Queue: "callbacks"})
	must(err)
	l, err = q.TryLease(ctx, "images")
	must(err)
	must(q.Complete(ctx, l.Token, nil))
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "flaky"})
	must(err)
	l, err = q.TryLease(ctx, "flaky")
	must(err)
	must(q.Fail(ctx, l.Token, queue.Permanent(errors.New("upstream down"))))
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "orders", Key: "order-7", ReleaseKeyOnDeath: true})
	must(err)
	l, err = q.TryLease(ctx, "orders")
	must(err)
	must(q.Fail(ctx, l.Token, queue.Permanent(errors.New("card declined"))))
	must(q.Schedule(ctx, queue.Schedule{Name: "nightly", Every: time.Hour, Job: queue.NewJob{Queue: "reports"}}))
	mc.Add(10 * time.Second)
	return q, mc
}

// TestFeaturePages checks that the job page shows metadata, group,
// progress, batch and a released key, and the overview the schedules,
// breakers and rate limits — all of it escaped.
func TestFeaturePages(t *testing.T) {
	t.Parallel()
	q, _ := featuresFixture(t)
	h := Handler(q, nil)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{fmt.Sprintf("/jobs/%d", featMeta), []string{
			"Metadata", "&lt;script&gt;alert(&#34;meta&#34;)&lt;/script&gt;", "traceparent",
			"<dt>Group</dt><dd class=\"mono\">customer/&lt;b&gt;42&lt;/b&gt;</dd>",
			"<b>40</b>", "resized &lt;i&gt;40&lt;/i&gt; of 100",
		}},
		{fmt.Sprintf("/jobs/%d", featBatch), []string{"<dt>Batch</dt><dd>2: 1 of 2 jobs finished (1 completed, 0 dead, 0 cancelled)"}},
		{fmt.Sprintf("/jobs/%d", featReleased), []string{"order-7", "badge-released"}},
		{"/dead", []string{"order-7 <span class=\"dim\">(released)</span>"}},
		{"/", []string{
			"Periodic schedules", "nightly", "@every 1h0m0s",
			"badge-breaker-open", "breaker open",
			"≤ 5 per 1m0s",
		}},
	} {
		code, body := get(t, h, tc.path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", tc.path, code, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q in\n%s", tc.path, w, body)
			}
		}
		for _, raw := range []string{metaScript, groupMarkup, noteMarkup} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: %q unescaped", tc.path, raw)
			}
		}
	}
}

// TestFeatureAPIGolden pins the JSON API's shapes for the job features.
func TestFeatureAPIGolden(t *testing.T) {
	t.Parallel()
	q, _ := featuresFixture(t)
	h := Handler(q, nil)
	for name, path := range map[string]string{
		"api_features_stats":    "/api/stats",
		"api_features_job":      fmt.Sprintf("/api/jobs/%d", featMeta),
		"api_features_batch":    fmt.Sprintf("/api/jobs/%d", featBatch),
		"api_features_released": fmt.Sprintf("/api/jobs/%d", featReleased),
	} {
		code, body := get(t, h, path)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", path, code, body)
			continue
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("GET %s: a raw <script> in the JSON", path)
		}
		golden(t, name, body)
	}
}
