package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/walq/walq/queue"
)

// Options configure Handler. The zero value (or nil) gives a read-only
// dashboard served at the root of the mux it is mounted on.
type Options struct {
	// Prefix is the path the handler is mounted under, without a trailing
	// slash ("/walq" for mux.Handle("/walq/", …)). The handler strips it
	// from requests and puts it in front of every link it renders, so do
	// not wrap it in http.StripPrefix as well. Defaults to "" (the root).
	Prefix string
	// Write enables changes: requeue, cancel, purge, pause, resume,
	// compact and enqueue, from the pages and from the JSON API. Without
	// it every change answers 403 Forbidden. Defaults to false.
	Write bool
	// Refresh is how often an open page reloads its figures (it polls the
	// page, which costs the queue one Stats call, a walk of the index's
	// counters). Negative turns live updates off. Defaults to 2s.
	Refresh time.Duration
	// Title names the dashboard in the page header. Defaults to "walq".
	Title string
	// Clock is the clock Follow's read-only opens judge readiness and
	// ages by (Handler uses its queue's). Defaults to the real clock.
	Clock clock.Clock
}

// Handler returns the dashboard and JSON API for q — a *queue.Queue, or
// any queue.Engine such as the JetStream engine's queue (a compaction,
// which only the WAL engine offers, is refused on the others) — to mount
// on the app's own mux:
//
//	mux.Handle("/walq/", web.Handler(q, &web.Options{Prefix: "/walq"}))
//
// It is read-only unless opts.Write is set. It has no authentication of
// its own: wrap it in the app's, for example
//
//	mux.Handle("/walq/", requireAdmin(web.Handler(q, opts)))
//
// where requireAdmin is the middleware that guards the app's other admin
// pages. Changes are POSTs refused from other origins
// (http.CrossOriginProtection) and, from the pages' forms, without the
// handler's token; GETs never change anything. The handler is safe for
// concurrent use and keeps no goroutine of its own: it needs no Close.
func Handler(q queue.Engine, opts *Options) http.Handler {
	return newHandler(fixed{q}, opts)
}

// source hands out the queue a request reads: one fixed queue (Handler),
// or the latest read-only open of a directory another process writes
// (Follow). done is called when the request no longer uses it.
type source interface {
	acquire() (q queue.Engine, done func(), err error)
}

type fixed struct{ q queue.Engine }

func (f fixed) acquire() (queue.Engine, func(), error) { return f.q, func() {}, nil }

// handler serves the pages and the API.
type handler struct {
	src    source
	opts   Options
	token  string // the forms' anti-CSRF token, random per handler
	mux    *http.ServeMux
	outer  http.Handler
	charts *sampler
	pages  *pages
}

func newHandler(src source, opts *Options) *handler {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Prefix = strings.TrimRight(o.Prefix, "/")
	if o.Refresh == 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Title == "" {
		o.Title = "walq"
	}
	h := &handler{src: src, opts: o, token: newToken(), mux: http.NewServeMux(), charts: newSampler()}
	h.pages = newPages(h)
	h.routes()
	var inner http.Handler = h.mux
	if o.Prefix != "" {
		inner = http.StripPrefix(o.Prefix, inner)
	}
	h.outer = securityHeaders(inner)
	return h
}

func newToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return hex.EncodeToString(b)
}

// ServeHTTP serves one request.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.outer.ServeHTTP(w, r) }

func (h *handler) routes() {
	m := h.mux
	m.HandleFunc("GET /{$}", h.withQueue(h.pages.overview))
	m.HandleFunc("GET /jobs", h.withQueue(h.pages.jobs))
	m.HandleFunc("GET /jobs/{id}", h.withQueue(h.pages.job))
	m.HandleFunc("GET /jobs/{id}/payload", h.withQueue(h.download))
	m.HandleFunc("GET /dead", h.withQueue(h.pages.dead))
	m.HandleFunc("GET /requeue", h.withQueue(h.pages.requeuePreview))
	m.Handle("GET /assets/", http.StripPrefix("/assets/", assetServer()))
	m.HandleFunc("POST /actions/{action}", h.change(h.formAction))

	m.HandleFunc("GET /api/stats", h.withQueue(h.apiStats))
	m.HandleFunc("GET /api/jobs", h.withQueue(h.apiJobs))
	m.HandleFunc("GET /api/jobs/{id}", h.withQueue(h.apiJob))
	m.HandleFunc("GET /api/dead", h.withQueue(h.apiDead))
	m.HandleFunc("GET /api/events", h.withQueue(h.apiEvents))
	m.HandleFunc("POST /api/{action}", h.change(h.apiAction))
}

// queueHandler is a handler of a request that reads or changes a queue.
type queueHandler func(w http.ResponseWriter, r *http.Request, q queue.Engine)

// withQueue acquires the source's queue for the request.
func (h *handler) withQueue(fn queueHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, done, err := h.src.acquire()
		if err != nil {
			h.fail(w, r, err)
			return
		}
		defer done()
		fn(w, r, q)
	}
}

// change guards a changing request: 403 unless writes are enabled, then
// refused when it comes from another origin.
func (h *handler) change(fn queueHandler) http.HandlerFunc {
	inner := h.withQueue(fn)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errForbidden("cross-origin request refused"))
	}))
	guarded := cop.Handler(inner)
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.opts.Write {
			h.fail(w, r, errForbidden("this dashboard is read-only (writes are not enabled)"))
			return
		}
		guarded.ServeHTTP(w, r)
	}
}

// securityHeaders keeps pages from being framed, sniffed or made to load
// anything from elsewhere.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

// httpError is an error with an HTTP status and an API code.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errForbidden(msg string) error { return &httpError{http.StatusForbidden, "forbidden", msg} }
func errBadRequest(msg string) error {
	return &httpError{http.StatusBadRequest, "invalid", msg}
}

// status maps an error to an HTTP status and an API code.
func status(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status, he.code
	case errors.Is(err, queue.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, queue.ErrState):
		return http.StatusConflict, "state"
	case errors.Is(err, queue.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, queue.ErrReadOnly):
		return http.StatusForbidden, "read_only"
	case errors.Is(err, queue.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	}
	return http.StatusInternalServerError, "internal"
}

// fail answers a request with err: JSON for the API, a page otherwise.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, name := status(err)
	if isAPI(r) {
		writeJSON(w, code, ErrorJSON{Error: err.Error(), Code: name})
		return
	}
	h.pages.errorPage(w, r, code, err)
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
