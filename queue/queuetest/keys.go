package queuetest

import (
	"errors"
	"testing"

	"github.com/walq/walq/queue"
)

// testIdempotencyKey: a key makes a repeated enqueue harmless, across
// named queues, and the job completes once.
func testIdempotencyKey(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	first := v.enqueue(queue.NewJob{Queue: "k", Key: "order-42/charge", Payload: []byte("first")})
	if first.Duplicate {
		t.Fatal("first enqueue of a key reported a duplicate")
	}
	for _, nj := range []queue.NewJob{
		{Queue: "k", Key: "order-42/charge", Payload: []byte("second")},
		{Queue: "elsewhere", Key: "order-42/charge"}, // keys are global
	} {
		if res := v.enqueue(nj); !res.Duplicate || res.ID != first.ID {
			t.Fatalf("enqueue of a held key into %q = %+v, want duplicate of %d", nj.Queue, res, first.ID)
		}
	}
	if j, err := v.e.GetByKey(v.ctx, "order-42/charge"); err != nil || j.ID != first.ID || string(j.Payload) != "first" {
		t.Fatalf("GetByKey = %v, %v; want job %d with the first payload", j, err, first.ID)
	}
	_, err := v.e.GetByKey(v.ctx, "no such key")
	wantErr(t, "GetByKey(unknown)", err, queue.ErrNotFound)

	v.complete(v.lease("k"), "charged")
	v.noJob("k")
	v.noJob("elsewhere")
	if res := v.enqueue(queue.NewJob{Queue: "k", Key: "order-42/charge"}); !res.Duplicate || res.ID != first.ID {
		t.Fatalf("enqueue of a completed job's key within retention = %+v, want duplicate of %d", res, first.ID)
	}
	v.noJob("k")
	if st := v.stats("k"); st.Completed != 1 || st.Ready != 0 {
		t.Fatalf("stats: %d completed, %d ready; want 1, 0", st.Completed, st.Ready)
	}
}

// testKeyRetention: a completed job keeps its key for KeyRetention; then
// the key makes a new job.
func testKeyRetention(t *testing.T, h *Harness) {
	u := v0(h)
	v := open(t, h, Config{KeyRetention: 5 * u})
	first := v.enqueue(queue.NewJob{Queue: "kr", Key: "k"})
	v.complete(v.lease("kr"), "")
	v.advance(4 * u)
	if res := v.enqueue(queue.NewJob{Queue: "kr", Key: "k"}); !res.Duplicate || res.ID != first.ID {
		t.Fatalf("enqueue within retention = %+v, want duplicate of %d", res, first.ID)
	}
	v.advance(u + u/2)
	res := v.enqueue(queue.NewJob{Queue: "kr", Key: "k", Payload: []byte("again")})
	if res.Duplicate || res.ID == first.ID {
		t.Fatalf("enqueue after retention = %+v, want a new job (not %d)", res, first.ID)
	}
	if l := v.lease("kr"); l.Job.ID != res.ID || string(l.Job.Payload) != "again" {
		t.Fatalf("lease = job %d %q, want the new job %d", l.Job.ID, l.Job.Payload, res.ID)
	}
}

// testKeyOfDeadJob: a dead job holds its key whatever the retention, until
// it is purged.
func testKeyOfDeadJob(t *testing.T, h *Harness) {
	u := v0(h)
	v := open(t, h, Config{KeyRetention: 2 * u})
	res := v.enqueue(queue.NewJob{Queue: "kd", Key: "k"})
	v.fail(v.lease("kd"), queue.Permanent(errors.New("no")))
	v.advance(3 * u)
	if again := v.enqueue(queue.NewJob{Queue: "kd", Key: "k"}); !again.Duplicate || again.ID != res.ID {
		t.Fatalf("enqueue of a dead job's key = %+v, want duplicate of %d", again, res.ID)
	}
	if err := v.e.Purge(v.ctx, []uint64{res.ID}); err != nil {
		t.Fatal(err)
	}
	if again := v.enqueue(queue.NewJob{Queue: "kd", Key: "k"}); again.Duplicate || again.ID == res.ID {
		t.Fatalf("enqueue of a purged job's key = %+v, want a new job", again)
	}
}

// testEnqueueBatch: a batch is all or nothing, and a key repeated within
// it makes one job.
func testEnqueueBatch(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	res, err := v.e.EnqueueBatch(v.ctx, []queue.NewJob{
		{Queue: "eb", Key: "x", Payload: []byte("1")},
		{Queue: "eb", Key: "y", Payload: []byte("2")},
		{Queue: "eb", Key: "x", Payload: []byte("3")},
		{Queue: "eb", Payload: []byte("4")},
	})
	if err != nil || len(res) != 4 {
		t.Fatalf("EnqueueBatch = %v, %v; want 4 results", res, err)
	}
	if res[0].Duplicate || res[1].Duplicate || res[3].Duplicate || !res[2].Duplicate || res[2].ID != res[0].ID {
		t.Fatalf("EnqueueBatch results %+v: want the third a duplicate of the first, the others new", res)
	}
	if res[0].ID == res[1].ID || res[1].ID == res[3].ID || res[0].ID == res[3].ID {
		t.Fatalf("EnqueueBatch IDs %+v are not distinct", res)
	}
	if st := v.stats("eb"); st.Ready != 3 {
		t.Fatalf("%d ready after a batch of 3 distinct jobs", st.Ready)
	}

	for _, c := range []struct {
		name string
		bad  queue.NewJob
		want error
	}{
		{"invalid queue name", queue.NewJob{Queue: "not valid!"}, queue.ErrInvalid},
		{"payload too large", queue.NewJob{Queue: "ab", Payload: make([]byte, v.e.Info().MaxPayload+1)}, queue.ErrTooLarge},
	} {
		_, err := v.e.EnqueueBatch(v.ctx, []queue.NewJob{{Queue: "ab", Key: "atomic"}, c.bad})
		wantErr(t, "EnqueueBatch with a "+c.name, err, c.want)
		_, err = v.e.GetByKey(v.ctx, "atomic")
		wantErr(t, "GetByKey of a batch that failed ("+c.name+")", err, queue.ErrNotFound)
		v.noJob("ab")
	}
}

// testCompleteAndEnqueue: a completion and its follow-ups are one atomic
// step; a stale token makes neither.
func testCompleteAndEnqueue(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	l := v.lease1("ce")
	res, err := v.e.CompleteAndEnqueue(v.ctx, l.Token, []byte("done"), []queue.NewJob{{Queue: "next", Payload: []byte("follow"), Key: "f1"}})
	if err != nil || len(res) != 1 || res[0].Duplicate {
		t.Fatalf("CompleteAndEnqueue = %v, %v; want one new follow-up", res, err)
	}
	if j := v.state(l.Job.ID, queue.StateCompleted); string(j.Result) != "done" {
		t.Fatalf("result %q, want done", j.Result)
	}
	if n := v.lease("next"); n.Job.ID != res[0].ID || string(n.Job.Payload) != "follow" {
		t.Fatalf("follow-up leased as job %d %q, want %d follow", n.Job.ID, n.Job.Payload, res[0].ID)
	}
	_, err = v.e.CompleteAndEnqueue(v.ctx, l.Token, nil, []queue.NewJob{{Queue: "next", Key: "f2"}})
	wantErr(t, "CompleteAndEnqueue(stale token)", err, queue.ErrLeaseLost)
	_, err = v.e.GetByKey(v.ctx, "f2")
	wantErr(t, "GetByKey of a refused follow-up", err, queue.ErrNotFound)
}

// testCompleteBatch: each completion of a batch succeeds or fails alone.
func testCompleteBatch(t *testing.T, h *Harness) {
	v := open(t, h, Config{})
	l1, l2, l3 := v.lease1("cb"), v.lease1("cb"), v.lease1("cb")
	if err := v.e.Release(v.ctx, l2.Token); err != nil {
		t.Fatal(err)
	}
	errs, err := v.e.CompleteBatch(v.ctx, []queue.Completion{
		{Token: l1.Token, Result: []byte("1")},
		{Token: l2.Token, Result: []byte("2")},
		{Token: l3.Token, Result: []byte("3"), Then: []queue.NewJob{{Queue: "cb2"}}},
	})
	if err != nil || len(errs) != 3 {
		t.Fatalf("CompleteBatch = %v, %v; want 3 results", errs, err)
	}
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], queue.ErrLeaseLost) {
		t.Fatalf("CompleteBatch errors %v, want nil, ErrLeaseLost, nil", errs)
	}
	v.state(l1.Job.ID, queue.StateCompleted)
	v.state(l2.Job.ID, queue.StateReady)
	if j := v.state(l3.Job.ID, queue.StateCompleted); string(j.Result) != "3" {
		t.Fatalf("result %q, want 3", j.Result)
	}
	v.lease("cb2")
}
