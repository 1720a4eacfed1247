package web

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/walq/walq/queue"
)

// POST actions/{action}: a form of the pages. It must carry the handler's
// token (besides passing the cross-origin check), then does what the API's
// action does and sends the browser back where it came from with a note.
func (h *handler) formAction(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, errBadRequest("invalid form: "+err.Error()))
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(h.token)) != 1 {
		h.fail(w, r, errForbidden("missing or stale form token: reload the page and try again"))
		return
	}
	action := r.PathValue("action")
	req, err := formRequest(q, r.PostForm)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if action == "requeue" && len(req.IDs) == 0 {
		req.All = true
	}
	if action == "purge" && len(req.IDs) == 0 {
		req.Dead = true
	}
	out, err := h.do(r.Context(), q, action, req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := h.back(r.PostForm.Get("return"))
	u, _ := url.Parse(back)
	v := u.Query()
	v.Set("done", doneText(action, req, out))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// formRequest reads an action's fields from a form.
func formRequest(q queue.Engine, f url.Values) (ActionRequest, error) {
	req := ActionRequest{Queue: f.Get("queue"), Error: f.Get("error"), To: f.Get("to")}
	for _, s := range f["id"] {
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			id, err := strconv.ParseUint(part, 10, 64)
			if err != nil || id == 0 {
				return req, errBadRequest(fmt.Sprintf("invalid job ID %q", part))
			}
			req.IDs = append(req.IDs, id)
		}
	}
	if s := f.Get("older_than"); s != "" {
		d, err := parseAge(s)
		if err != nil {
			return req, errBadRequest("older_than: " + err.Error())
		}
		req.OlderThanSeconds = d.Seconds()
	}
	if s := f.Get("died_before"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return req, errBadRequest("died_before: " + err.Error())
		}
		req.DiedBefore = &t
	}
	if s := f.Get("died_after"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return req, errBadRequest("died_after: " + err.Error())
		}
		req.DiedAfter = &t
	}
	return req, nil
}

// back returns where a form sends the browser: its return field when that
// is a path of this handler, the overview otherwise (never another site).
func (h *handler) back(ret string) string {
	u, err := url.Parse(ret)
	if err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, h.opts.Prefix+"/") || strings.HasPrefix(u.Path, "//") {
		return h.opts.Prefix + "/"
	}
	return u.String()
}

// doneText says what an action did, for the page it returns to.
func doneText(action string, req ActionRequest, out any) string {
	switch o := out.(type) {
	case ChangeJSON:
		verb := map[string]string{"requeue": "requeued", "cancel": "cancelled", "purge": "purged"}[action]
		return fmt.Sprintf("%s %s", verb, plural(o.Count, "job"))
	case CompactJSON:
		return fmt.Sprintf("compacted: purged %s, removed %s; log %s → %s", plural(o.Purged, "job"),
			plural(o.SegmentsRemoved, "segment"), humanSize(o.SizeBefore), humanSize(o.SizeAfter))
	case EnqueueJSON:
		return fmt.Sprintf("enqueued job %d", o.ID)
	}
	return fmt.Sprintf("%sd %s", action, req.Queue)
}
