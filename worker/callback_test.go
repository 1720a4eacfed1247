package worker

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/walq/walq/queue"
)

func TestCallback(t *testing.T) {
	t.Parallel()
	q, clk := openQueue(t, nil)
	sub := q.Subscribe(256)
	delivered := make(chan CallbackPayload, 4)
	startRuntime(t, q, &Options{OnComplete: Callback("callbacks")}, map[string]Handler{
		"email": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			return append([]byte("sent to "), job.Payload...), nil
		},
		// The webhook receiver is down for the first delivery.
		"callbacks": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			if job.Attempt == 1 {
				return nil, errors.New("POST /hooks/email: 503 service unavailable")
			}
			var p CallbackPayload
			if err := json.Unmarshal(job.Payload, &p); err != nil {
				return nil, queue.Permanent(err)
			}
			delivered <- p
			return []byte("204"), nil
		},
	})
	id := enqueue(t, q, queue.NewJob{Queue: "email", Payload: []byte("ada@example.com"), Key: "welcome/ada"})
	if res, err := waitResult(t, q, id); err != nil || string(res) != "sent to ada@example.com" {
		t.Fatalf("Wait = %q, %v", res, err)
	}

	// Atomic with the completion: the callback job exists as soon as the
	// completion is visible, and both come from one log entry (one
	// timestamp, adjacent events).
	cbs, err := q.Jobs(t.Context(), queue.JobFilter{Queue: "callbacks"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cbs) != 1 {
		t.Fatalf("%d callback jobs when Wait returned, want 1", len(cbs))
	}
	cb := cbs[0]
	if want := "walq:callback:" + strconv.FormatUint(id, 10); cb.Key != want {
		t.Errorf("callback key %q, want %q", cb.Key, want)
	}
	done := nextEvent(t, sub, "completion", eventOf(queue.EventCompleted, id))
	next := nextEvent(t, sub, "the event after the completion", func(queue.Event) bool { return true })
	if next.Kind != queue.EventEnqueued || next.Job != cb.ID || !next.At.Equal(done.At) {
		t.Errorf("after the completion came %s of job %d at %v; want the callback's enqueue (job %d) at %v",
			next.Kind, next.Job, next.At, cb.ID, done.At)
	}

	// The failed delivery retries with backoff like any job.
	ev := nextEvent(t, sub, "callback retrying", eventOf(queue.EventRetrying, cb.ID))
	clk.waitTimer(t, ev.NextRunAt)
	clk.Add(ev.NextRunAt.Sub(clk.Now()))
	p := receive(t, delivered, "callback delivered")
	want := CallbackPayload{Job: id, Queue: "email", Key: "welcome/ada", Result: []byte("sent to ada@example.com")}
	if p.Job != want.Job || p.Queue != want.Queue || p.Key != want.Key || string(p.Result) != string(want.Result) {
		t.Errorf("callback payload %+v, want %+v", p, want)
	}
	if _, err := waitResult(t, q, cb.ID); err != nil {
		t.Fatal(err)
	}
	j := getJob(t, q, cb.ID)
	if got := outcomes(j); len(got) != 2 || got[0] != "failed" || got[1] != "completed" {
		t.Errorf("callback history %v, want [failed completed]", got)
	}

	// Exactly one callback: completing the callback job made none.
	st, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Queues["callbacks"].Metrics.Enqueued; n != 1 {
		t.Errorf("%d callback jobs enqueued, want 1", n)
	}
}

func TestCallbackPayload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		job    queue.Job
		result []byte
		want   string // the follow-up's queue, key and payload; "" for none
	}{
		{"with key and result", queue.Job{ID: 7, Queue: "email", Key: "k"}, []byte("ok"),
			`hooks walq:callback:7 {"job":7,"queue":"email","key":"k","result":"b2s="}`},
		{"no key, no result", queue.Job{ID: 8, Queue: "email"}, nil,
			`hooks walq:callback:8 {"job":8,"queue":"email"}`},
		{"the callback queue's own jobs", queue.Job{ID: 9, Queue: "hooks"}, []byte("204"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			then := Callback("hooks")(&tc.job, tc.result)
			got := ""
			for _, nj := range then {
				got += nj.Queue + " " + nj.Key + " " + string(nj.Payload)
			}
			if got != tc.want {
				t.Errorf("follow-ups %q, want %q", got, tc.want)
			}
		})
	}
}
