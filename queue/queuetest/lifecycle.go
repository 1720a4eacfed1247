package queuetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/walq/walq/queue"
)

// testEvents: Subscribe reports every transition of a job, in order.
func testEvents(t *testing.T, h *Harness) {
	need(t, h.Caps.Events, "a complete event stream")
	u := v0(h)
	v := open(t, h, Config{MaxAttempts: 2, Backoff: queue.Backoff{Base: u, Factor: 1, Cap: u}})
	sub := v.e.Subscribe(256)
	defer sub.Close()

	a := v.enqueue(queue.NewJob{Queue: "ev"})
	v.complete(v.lease("ev"), "r")
	if err := v.e.Purge(v.ctx, []uint64{a.ID}); err != nil {
		t.Fatal(err)
	}
	b := v.enqueue(queue.NewJob{Queue: "ev"})
	v.fail(v.lease("ev"), errors.New("one"))
	v.advance(u)
	v.fail(v.lease("ev"), errors.New("two"))
	if err := v.e.Requeue(v.ctx, []uint64{b.ID}, queue.RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := v.e.Cancel(v.ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]queue.EventKind{
		a.ID: {queue.EventEnqueued, queue.EventLeased, queue.EventCompleted, queue.EventPurged},
		b.ID: {queue.EventEnqueued, queue.EventLeased, queue.EventRetrying, queue.EventLeased, queue.EventDead,
			queue.EventRequeued, queue.EventCancelled},
	}
	got := map[uint64][]queue.EventKind{}
	var retrying queue.Event
	timeout := time.After(v.h.Patience)
	for len(got[a.ID]) < len(want[a.ID]) || len(got[b.ID]) < len(want[b.ID]) {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatal("subscription closed early")
			}
			if ev.Queue != "ev" {
				t.Fatalf("event %+v names queue %q, want ev", ev, ev.Queue)
			}
			got[ev.Job] = append(got[ev.Job], ev.Kind)
			if ev.Kind == queue.EventRetrying {
				retrying = ev
			}
		case <-timeout:
			t.Fatalf("after %v: events %v, want %v", v.h.Patience, got, want)
		}
	}
	for id, kinds := range want {
		if !slices.Equal(got[id], kinds) {
			t.Fatalf("events of job %d: %v, want %v", id, got[id], kinds)
		}
	}
	if retrying.Attempt != 1 || retrying.Error != "one" || retrying.NextRunAt.IsZero() {
		t.Fatalf("retrying event %+v, want attempt 1, error one, a next run-at", retrying)
	}
	if sub.Dropped() != 0 {
		t.Fatalf("%d events dropped with room in the buffer", sub.Dropped())
	}
	sub.Close()
	if _, ok := <-sub.C; ok {
		t.Fatal("C open after Close")
	}
}

// testClose: Close ends blocked calls, every later call fails with
// ErrClosed, and a second Close returns nil.
func testClose(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	pending := v.enqueue(queue.NewJob{Queue: "c"})
	sub := v.e.Subscribe(1)
	errs := make(chan error, 2)
	go func() {
		ctx, cancel := v.patience()
		defer cancel()
		_, err := v.e.Lease(ctx, "nothing-here")
		errs <- err
	}()
	go func() {
		ctx, cancel := v.patience()
		defer cancel()
		_, err := v.e.Wait(ctx, pending.ID)
		errs <- err
	}()
	if err := v.e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		wantErr(t, "blocked call at Close", <-errs, queue.ErrClosed)
	}
	for range sub.C {
	}
	if err := v.e.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	_, err := v.e.Enqueue(v.ctx, queue.NewJob{Queue: "c"})
	wantErr(t, "Enqueue after Close", err, queue.ErrClosed)
	_, err = v.e.Get(v.ctx, pending.ID)
	wantErr(t, "Get after Close", err, queue.ErrClosed)
	_, err = v.e.TryLease(v.ctx, "c")
	wantErr(t, "TryLease after Close", err, queue.ErrClosed)
	_, err = v.e.Stats(v.ctx)
	wantErr(t, "Stats after Close", err, queue.ErrClosed)
}

// testDurability: the engine works in each durability mode it offers.
func testDurability(t *testing.T, h *Harness) {
	need(t, len(h.Caps.Durability) > 0, "durability modes (Config.Durability)")
	for _, d := range h.Caps.Durability {
		t.Run(d.String(), func(t *testing.T) {
			v := open(t, h, Config{Durability: d})
			res := v.enqueue(queue.NewJob{Queue: "d", Payload: []byte("p")})
			v.complete(v.lease("d"), "r")
			if r, err := v.e.Wait(v.ctx, res.ID); err != nil || string(r) != "r" {
				t.Fatalf("Wait = %q, %v; want r", r, err)
			}
		})
	}
}

// testReopen: what was acknowledged is there after a restart: jobs, their
// states, results and keys, and paused queues.
func testReopen(t *testing.T, h *Harness) {
	need(t, h.Reopen != nil, "a restart (Harness.Reopen)")
	v := open(t, h, Config{})
	done := v.enqueue(queue.NewJob{Queue: "r", Key: "done"})
	v.complete(v.lease("r"), "result")
	dead := v.kill("r", "gone")
	pending := v.enqueue(queue.NewJob{Queue: "r", Key: "pending", Payload: []byte("p")})
	if err := v.e.Pause(v.ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	held := v.enqueue(queue.NewJob{Queue: "paused"})

	v.e = h.Reopen(t, v.e, v.cfg)
	v.setClock()
	if j := v.state(done.ID, queue.StateCompleted); string(j.Result) != "result" {
		t.Fatalf("result after reopen %q, want result", j.Result)
	}
	v.state(dead, queue.StateDead)
	if res := v.enqueue(queue.NewJob{Queue: "r", Key: "pending"}); !res.Duplicate || res.ID != pending.ID {
		t.Fatalf("enqueue of a held key after reopen = %+v, want duplicate of %d", res, pending.ID)
	}
	if l := v.lease("r"); l.Job.ID != pending.ID || string(l.Job.Payload) != "p" {
		t.Fatalf("lease after reopen = job %d %q, want %d p", l.Job.ID, l.Job.Payload, pending.ID)
	}
	v.noJob("paused")
	if err := v.e.Resume(v.ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	if l := v.lease("paused"); l.Job.ID != held.ID {
		t.Fatalf("lease after Resume = job %d, want %d", l.Job.ID, held.ID)
	}
}
