package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/walq/walq/queue"
)

// ActionRequest is the JSON body of POST api/{action}, the changes:
//
//	requeue  IDs, or All with the dead-letter filters (Queue, Error,
//	         OlderThanSeconds, DiedBefore, DiedAfter); To, DelaySeconds
//	cancel   IDs (ready or scheduled jobs)
//	purge    IDs (finished jobs), or Dead with the dead-letter filters
//	pause    Queue
//	resume   Queue
//	compact  nothing
//	enqueue  Queue, Key, Payload or PayloadBase64, DelaySeconds,
//	         Priority, MaxAttempts
//
// With DryRun, requeue, cancel and purge check and answer what they would
// change, changing nothing. Each change is the queue call of the same name:
// IDs are checked first and nothing changes if one is unknown or in the
// wrong state, then changed in one atomic entry (cancel: one per job;
// filters: 10,000 jobs per entry, as RequeueDead and PurgeDead do).
type ActionRequest struct {
	IDs    []uint64 `json:"ids,omitempty"`
	All    bool     `json:"all,omitempty"`
	Dead   bool     `json:"dead,omitempty"`
	Queue  string   `json:"queue,omitempty"`
	Error  string   `json:"error,omitempty"`
	DryRun bool     `json:"dry_run,omitempty"`
	// OlderThanSeconds keeps dead jobs that died more than this long ago.
	OlderThanSeconds float64 `json:"older_than_seconds,omitempty"`
	// DiedBefore keeps dead jobs that died before this moment: a preview
	// answers it, so that confirming acts on no job that died since.
	DiedBefore *time.Time `json:"died_before,omitempty"`
	// DiedAfter keeps dead jobs that died after this moment.
	DiedAfter    *time.Time `json:"died_after,omitempty"`
	To           string     `json:"to,omitempty"`
	DelaySeconds float64    `json:"delay_seconds,omitempty"`
	// Enqueue's fields.
	Key           string `json:"key,omitempty"`
	Payload       string `json:"payload,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	Priority      int32  `json:"priority,omitempty"`
	MaxAttempts   int    `json:"max_attempts,omitempty"`
}

// maxBody bounds a JSON request body; an enqueue's payload is bounded by
// the queue's MaxPayload as well.
const maxBody = 64 << 20

// POST api/{action}: a JSON body, a JSON answer.
func (h *handler) apiAction(w http.ResponseWriter, r *http.Request, q queue.Engine) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		// A browser cannot send this cross-origin without a preflight the
		// handler never grants: one more guard against forged requests.
		h.fail(w, r, &httpError{http.StatusUnsupportedMediaType, "invalid", "want Content-Type: application/json"})
		return
	}
	var req ActionRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		h.fail(w, r, errBadRequest("invalid request body: "+err.Error()))
		return
	}
	out, err := h.do(r.Context(), q, r.PathValue("action"), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// do performs one action.
func (h *handler) do(ctx context.Context, q queue.Engine, action string, req ActionRequest) (any, error) {
	switch action {
	case "requeue":
		return doRequeue(ctx, q, req)
	case "cancel":
		return doCancel(ctx, q, req)
	case "purge":
		return doPurge(ctx, q, req)
	case "pause", "resume":
		if req.Queue == "" {
			return nil, errBadRequest(action + ": name the queue")
		}
		f := q.Pause
		if action == "resume" {
			f = q.Resume
		}
		if err := f(ctx, req.Queue); err != nil {
			return nil, err
		}
		st, err := q.Stats(ctx)
		if err != nil {
			return nil, err
		}
		return StatsOf(st), nil
	case "compact":
		c, ok := q.(compacter)
		if !ok {
			return nil, fmt.Errorf("%w: the %s engine does not compact", queue.ErrInvalid, q.Info().Engine)
		}
		st, err := c.Compact(ctx)
		if err != nil {
			return nil, err
		}
		return CompactJSON{Purged: st.Purged, Carried: st.Carried, CarriedBytes: st.CarriedBytes,
			SegmentsRemoved: st.SegmentsRemoved, SizeBefore: st.SizeBefore, SizeAfter: st.SizeAfter,
			DurationSeconds: st.Duration.Seconds()}, nil
	case "enqueue":
		return doEnqueue(ctx, q, req)
	}
	return nil, &httpError{http.StatusNotFound, "not_found", fmt.Sprintf("unknown action %q", action)}
}

// deadFilter is the request's dead-letter filter.
func deadFilter(q queue.Engine, req ActionRequest) queue.DeadFilter {
	f := queue.DeadFilter{Queue: req.Queue, ErrorContains: req.Error}
	if req.OlderThanSeconds > 0 {
		f.Before = q.Info().Clock.Now().Add(-time.Duration(req.OlderThanSeconds * float64(time.Second)))
	}
	if req.DiedBefore != nil && (f.Before.IsZero() || req.DiedBefore.Before(f.Before)) {
		f.Before = *req.DiedBefore
	}
	if req.DiedAfter != nil {
		f.After = *req.DiedAfter
	}
	return f
}

func changed(ids []uint64, dryRun bool) ChangeJSON {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ChangeJSON{DryRun: dryRun, Count: len(ids), IDs: append([]uint64{}, ids...)}
}

func doRequeue(ctx context.Context, q queue.Engine, req ActionRequest) (any, error) {
	opts := queue.RequeueOptions{Queue: req.To, Delay: time.Duration(req.DelaySeconds * float64(time.Second))}
	if req.All {
		if len(req.IDs) > 0 {
			return nil, errBadRequest("requeue: give ids or all, not both")
		}
		ids, err := deadIDs(ctx, q, deadFilter(q, req))
		if err != nil || req.DryRun {
			return changed(ids, true), err
		}
		n, err := inChunks(ids, func(ids []uint64) error { return q.Requeue(ctx, ids, opts) })
		if err != nil {
			return nil, partial(err, "requeued", n)
		}
		return changed(ids, false), nil
	}
	if len(req.IDs) == 0 {
		return nil, errBadRequest("requeue: give ids, or all for every dead job")
	}
	if err := checkJobs(ctx, q, req.IDs, isDead, "only dead jobs can be requeued"); err != nil || req.DryRun {
		return changed(req.IDs, true), err
	}
	if err := q.Requeue(ctx, req.IDs, opts); err != nil {
		return nil, err
	}
	return changed(req.IDs, false), nil
}

func doCancel(ctx context.Context, q queue.Engine, req ActionRequest) (any, error) {
	if len(req.IDs) == 0 {
		return nil, errBadRequest("cancel: give ids")
	}
	pending := func(s queue.JobState) bool { return s == queue.StateReady || s == queue.StateScheduled }
	if err := checkJobs(ctx, q, req.IDs, pending, "only ready or scheduled jobs can be cancelled"); err != nil || req.DryRun {
		return changed(req.IDs, true), err
	}
	// Cancel changes one job per log entry; a job leased since the check
	// stops it there, after the jobs before it.
	for i, id := range req.IDs {
		if err := q.Cancel(ctx, id); err != nil {
			return nil, partial(fmt.Errorf("job %d: %w", id, err), "cancelled", i)
		}
	}
	return changed(req.IDs, false), nil
}

func doPurge(ctx context.Context, q queue.Engine, req ActionRequest) (any, error) {
	if req.Dead {
		if len(req.IDs) > 0 {
			return nil, errBadRequest("purge: give ids or dead, not both")
		}
		ids, err := deadIDs(ctx, q, deadFilter(q, req))
		if err != nil || req.DryRun {
			return changed(ids, true), err
		}
		n, err := inChunks(ids, func(ids []uint64) error { return q.Purge(ctx, ids) })
		if err != nil {
			return nil, partial(err, "purged", n)
		}
		return changed(ids, false), nil
	}
	if len(req.IDs) == 0 {
		return nil, errBadRequest("purge: give ids, or dead for the dead-letter queue")
	}
	if err := checkJobs(ctx, q, req.IDs, isFinished, "only finished jobs (dead, completed, cancelled) can be purged"); err != nil || req.DryRun {
		return changed(req.IDs, true), err
	}
	if err := q.Purge(ctx, req.IDs); err != nil {
		return nil, err
	}
	return changed(req.IDs, false), nil
}

func doEnqueue(ctx context.Context, q queue.Engine, req ActionRequest) (any, error) {
	payload := []byte(req.Payload)
	if req.PayloadBase64 != "" {
		if req.Payload != "" {
			return nil, errBadRequest("enqueue: give payload or payload_base64, not both")
		}
		b, err := base64.StdEncoding.DecodeString(req.PayloadBase64)
		if err != nil {
			return nil, errBadRequest("enqueue: payload_base64: " + err.Error())
		}
		payload = b
	}
	res, err := q.Enqueue(ctx, queue.NewJob{Queue: req.Queue, Key: req.Key, Payload: payload,
		Delay: time.Duration(req.DelaySeconds * float64(time.Second)), Priority: req.Priority, MaxAttempts: req.MaxAttempts})
	if err != nil {
		return nil, err
	}
	in := req.Queue
	if in == "" {
		in = queue.DefaultQueue
	}
	if res.Duplicate {
		j, err := q.Get(ctx, res.ID)
		if err != nil {
			return nil, err
		}
		in = j.Queue
	}
	return EnqueueJSON{ID: res.ID, Queue: in, Duplicate: res.Duplicate}, nil
}

func isDead(s queue.JobState) bool { return s == queue.StateDead }

func isFinished(s queue.JobState) bool {
	return s == queue.StateDead || s == queue.StateCompleted || s == queue.StateCancelled
}

// checkJobs checks, before anything changes, that every job exists and is
// in a state ok accepts, with the wording of the walq command.
func checkJobs(ctx context.Context, q queue.Engine, ids []uint64, ok func(queue.JobState) bool, want string) error {
	for _, id := range ids {
		j, err := q.Get(ctx, id)
		if errors.Is(err, queue.ErrNotFound) {
			return &explained{fmt.Sprintf("job %d not found (never enqueued, or purged); nothing changed", id), err}
		}
		if err != nil {
			return err
		}
		if !ok(j.State) {
			return &explained{fmt.Sprintf("job %d is %s; %s; nothing changed", id, j.State, want), queue.ErrState}
		}
	}
	return nil
}

// deadIDs lists the IDs of the dead jobs f selects.
func deadIDs(ctx context.Context, q queue.Engine, f queue.DeadFilter) ([]uint64, error) {
	jobs, err := q.Dead(ctx, f)
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids, nil
}

// changeChunk is how many jobs one atomic change of a filter covers, as in
// the walq command and RequeueDead.
const changeChunk = 10000

func inChunks(ids []uint64, fn func([]uint64) error) (int, error) {
	for i := 0; i < len(ids); i += changeChunk {
		if err := fn(ids[i:min(i+changeChunk, len(ids))]); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// partial reports a change that failed after n jobs were changed.
func partial(err error, verb string, n int) error {
	if n == 0 {
		return err
	}
	return fmt.Errorf("%w (%d jobs were %s before it)", err, n, verb)
}

// explained is an error reworded for people: Error is the new text, and
// errors.Is still sees the original.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// compacter is an engine that compacts its storage on request (*queue.Queue
// does; queue.Engine does not require it).
type compacter interface {
	Compact(ctx context.Context) (queue.CompactStats, error)
}
