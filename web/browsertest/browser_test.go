package browsertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/chromedp/chromedp"
	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

// browser starts headless Chromium for the test, or skips it when none is
// installed (fails instead when WALQ_REQUIRE_BROWSER is set, as in CI).
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("WALQ_REQUIRE_BROWSER") != "" {
			t.Fatal("WALQ_REQUIRE_BROWSER is set and no Chromium is on PATH (apt-get install -y chromium)")
		}
		t.Skip("no Chromium on PATH (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// The first call starts the browser and binds its life to bctx: no
	// timeout there, but one on every step after it.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// fixture is a queue with jobs in every state, on a mock clock.
func fixture(t *testing.T) (*queue.Queue, *clock.Mock) {
	t.Helper()
	mc := clock.NewMock()
	mc.Set(time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC))
	q, err := queue.Open(filepath.Join(t.TempDir(), "q"), &queue.Options{Clock: mc, Logger: slog.New(slog.DiscardHandler), CompactRatio: -1})
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
	enq := func(name, key, payload string, delay time.Duration) {
		t.Helper()
		_, err := q.Enqueue(ctx, queue.NewJob{Queue: name, Key: key, Payload: []byte(payload), Delay: delay})
		must(err)
	}
	enq("emails", "welcome:1", `{"to":"ada@example.com","template":"welcome"}`, 0)
	enq("emails", "welcome:2", `{"to":"bob@example.com","template":"welcome"}`, 0)
	mc.Add(time.Second)
	l, err := q.TryLease(ctx, "emails")
	must(err)
	mc.Add(420 * time.Millisecond)
	must(q.Complete(ctx, l.Token, []byte("250 2.0.0 OK")))
	for i := 0; i < 3; i++ { // job 2: fails twice, then permanently
		l, err = q.TryLease(ctx, "emails")
		must(err)
		mc.Add(time.Duration(300+200*i) * time.Millisecond)
		if i < 2 {
			must(q.Fail(ctx, l.Token, errors.New("smtp 451 4.7.1: try again later")))
			mc.Add(5 * time.Second)
		} else {
			must(q.Fail(ctx, l.Token, queue.Permanent(errors.New("smtp 550 5.1.1 <bob@example.com>: no such user"))))
		}
	}
	enq("emails", "welcome:3", `{"to":"cy@example.com","template":"welcome"}`, 0)
	enq("reports", "nightly", "nightly report", time.Hour)
	enq("reports", "", "quarterly", 0)
	enq("reports", "", "cancel me", time.Minute)
	l, err = q.TryLease(ctx, "reports")
	must(err)
	must(q.Cancel(ctx, 6))
	mc.Add(3 * time.Second)
	return q, mc
}

// traffic runs jobs through a queue of their own for a few minutes of the
// mock clock, looking at the dashboard every 5s as an open page does, so
// that the overview's charts have something to show.
func traffic(t *testing.T, q *queue.Queue, mc *clock.Mock, dashboard string) {
	t.Helper()
	ctx := context.Background()
	for step := 0; step < 40; step++ {
		n := 20 + 15*(step%7) + step
		for i := 0; i < n; i++ {
			if _, err := q.Enqueue(ctx, queue.NewJob{Queue: "thumbnails", Payload: []byte("img")}); err != nil {
				t.Fatal(err)
			}
		}
		mc.Add(time.Duration(50+10*(step%5)) * time.Millisecond)
		for i := 0; i < n; i++ {
			l, err := q.TryLease(ctx, "thumbnails")
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Complete(ctx, l.Token, nil); err != nil {
				t.Fatal(err)
			}
		}
		mc.Add(5 * time.Second)
		resp, err := http.Get(dashboard + "api/stats")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

// shots is where screenshots go: $WALQ_SCREENSHOTS, or the test's
// temporary directory.
func shots(t *testing.T) string {
	if d := os.Getenv("WALQ_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shots(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// text returns the visible text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func wantText(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("page shows no %q in:\n%s", w, got)
		}
	}
}

// TestDashboard loads each page as a person would, requeues the dead job
// through the UI, and takes the screenshots the README shows.
func TestDashboard(t *testing.T) {
	ctx := browser(t)
	q, mc := fixture(t)
	mux := http.NewServeMux()
	mux.Handle("/walq/", web.Handler(q, &web.Options{Prefix: "/walq", Write: true, Refresh: -1}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	traffic(t, q, mc, srv.URL+"/walq/")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/walq/"), chromedp.WaitVisible(chromedp.CSS("table.queues"))))
	wantText(t, text(t, ctx, "main"), "emails", "reports", "thumbnails", "dead", "Last compaction", "/s")
	if got := strings.TrimSpace(text(t, ctx, "a.card-bad .n")); got != "1" {
		t.Errorf("dead card shows %q, want 1", got)
	}
	screenshot(t, ctx, "overview.png")

	must(chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/walq/jobs/2"), chromedp.WaitVisible(chromedp.CSS("ol.timeline"))))
	tl := text(t, ctx, "ol.timeline")
	wantText(t, tl, "Attempt 1", "Attempt 2", "Attempt 3", "failed", "dead", "smtp 451 4.7.1: try again later",
		"smtp 550 5.1.1 <bob@example.com>: no such user")
	screenshot(t, ctx, "job.png")

	// Requeue the dead job from the dead-letter page.
	must(chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/walq/dead"), chromedp.WaitVisible(chromedp.CSS("table.jobs"))))
	wantText(t, text(t, ctx, "table.jobs"), "no such user")
	must(chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`input[name=id][value="2"]`)),
		chromedp.Click(chromedp.CSS(`button[formaction$="/actions/requeue"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash"))))
	wantText(t, text(t, ctx, "p.flash"), "requeued 1 job")
	if j, err := q.Get(context.Background(), 2); err != nil || j.State != queue.StateReady {
		t.Errorf("after the UI's requeue job 2 is %v (%v), want ready", j.State, err)
	}

	// Phones get stacked cards instead of wide tables.
	must(chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+"/walq/"),
		chromedp.WaitVisible(chromedp.CSS("table.queues"))))
	screenshot(t, ctx, "overview-phone.png")
}

// TestRefusals checks, from a real browser, that a form posted from
// another site is refused and that a read-only dashboard refuses changes.
func TestRefusals(t *testing.T) {
	ctx := browser(t)
	q, _ := fixture(t)
	rw := httptest.NewServer(web.Handler(q, &web.Options{Write: true}))
	defer rw.Close()
	ro := httptest.NewServer(web.Handler(q, nil))
	defer ro.Close()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/actions/requeue">
<input name="id" value="2"><input name="token" value="guess"></form>
<script>document.getElementById("f").submit()</script>`, rw.URL)
	}))
	defer evil.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL), chromedp.WaitVisible(chromedp.CSS("p.error-box"))); err != nil {
		t.Fatal(err)
	}
	wantText(t, text(t, ctx, "p.error-box"), "cross-origin request refused")

	if err := chromedp.Do(ctx, chromedp.Navigate(ro.URL+"/")); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`fetch("/actions/requeue", {method: "POST", body: new URLSearchParams({id: "2"})}).then(r => r.status)`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusForbidden {
		t.Errorf("read-only dashboard answered a change with %d, want 403", status)
	}
	if j, err := q.Get(context.Background(), 2); err != nil || j.State != queue.StateDead {
		t.Errorf("a refused request changed job 2: %v %v", j.State, err)
	}
}

// TestLiveUpdate checks that an open overview shows a new job without a
// reload: the page polls itself.
func TestLiveUpdate(t *testing.T) {
	ctx := browser(t)
	q, _ := fixture(t)
	srv := httptest.NewServer(web.Handler(q, &web.Options{Refresh: 200 * time.Millisecond}))
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("table.queues"))); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "main"); strings.Contains(got, "livequeue") {
		t.Fatalf("queue shown before it exists:\n%s", got)
	}
	if _, err := q.Enqueue(context.Background(), queue.NewJob{Queue: "livequeue", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector("main").textContent.includes("livequeue")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the page never showed the new queue: %v", err)
	}
}
