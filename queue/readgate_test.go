package queue

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// A compaction's truncation fsyncs the written entries before it removes
// segments and the directory after. Calls that read payloads while it does
// must not wait for those fsyncs: readGate used to be held for writing
// across both, and since a reader takes readGate while holding q.mu, and
// Go's RWMutex holds new readers back while a writer waits, every call of
// the queue stalled behind them (issue 14's W7 tail). Here each fsync is
// held by the fault seam while Get, Lease and Enqueue run; they must all
// finish before it is let go.
func TestReadsDoNotWaitForTruncationSyncs(t *testing.T) {
	for _, d := range []Durability{Sync, Interval} {
		for _, step := range []string{"tail", "dir"} {
			t.Run(fmt.Sprintf("durability=%s/step=%s", d, step), func(t *testing.T) {
				testReadsDuringTruncationSync(t, d, step)
			})
		}
	}
}

func testReadsDuringTruncationSync(t *testing.T, d Durability, step string) {
	ctx := context.Background()
	dir := t.TempDir()
	held, release := make(chan struct{}), make(chan struct{})
	h := inject(t, dir, &hooks{noBackground: true})
	opts := compactOpts(newMock())
	opts.Durability = d
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 300) }
	// Ten jobs on queue "keep" stay pending, so the compaction carries
	// them; the rest are completed, so it cuts the segments they were in.
	var ids []uint64
	for i := range 200 { // about four 16 KiB segments
		nj := NewJob{Payload: payload(i)}
		if i < 10 {
			nj.Queue = "keep"
		}
		res, err := q.Enqueue(ctx, nj)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for range len(ids) - 10 {
		l, err := q.TryLease(ctx, DefaultQueue)
		if err != nil || l == nil {
			t.Fatalf("TryLease = %v, %v", l, err)
		}
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.truncateSync = func(s string) error {
		if s == step {
			close(held)
			<-release
		}
		return nil
	}
	compacted := make(chan error, 1)
	go func() {
		st, err := q.Compact(ctx)
		if err == nil && st.SegmentsRemoved == 0 {
			err = fmt.Errorf("compaction removed no segment: %+v", st)
		}
		compacted <- err
	}()
	<-held
	calls := make(chan error, 3)
	go func() {
		j, err := q.Get(ctx, ids[0])
		if err == nil && !bytes.Equal(j.Payload, payload(0)) {
			err = fmt.Errorf("Get(%d) payload %x…, want %x…", ids[0], j.Payload[:4], payload(0)[:4])
		}
		calls <- err
	}()
	go func() {
		l, err := q.TryLease(ctx, "keep")
		if err == nil && (l == nil || len(l.Job.Payload) != 300) {
			err = fmt.Errorf("TryLease = %+v during the truncation", l)
		}
		calls <- err
	}()
	go func() {
		_, err := q.Enqueue(ctx, NewJob{Payload: payload(1)})
		calls <- err
	}()
	// A watchdog, not synchronisation: the calls either finish while the
	// fsync is held or wait for it forever.
	watchdog := time.NewTimer(20 * time.Second)
	defer watchdog.Stop()
	for range 3 {
		select {
		case err := <-calls:
			if err != nil {
				t.Error(err)
			}
		case <-watchdog.C:
			close(release)
			t.Fatalf("a call waited for the truncation's %s fsync", step)
		}
	}
	close(release)
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	j, err := q.Get(ctx, ids[5])
	if err != nil || !bytes.Equal(j.Payload, payload(5)) {
		t.Fatalf("Get(%d) after the compaction = %v, %v", ids[5], j, err)
	}
}

// A reader that finds readGate taken for writing (a truncation removing
// segments) waits for it without q.mu, so that other calls go on, and then
// looks its jobs up again before reading.
func TestReadersWaitForTruncationWithoutQueueLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	waiting := make(chan struct{}, 2)
	inject(t, dir, &hooks{noBackground: true, wait: func() { waiting <- struct{}{} }})
	q, err := Open(dir, compactOpts(newMock()))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	payload := []byte("the payload")
	res, err := q.Enqueue(ctx, NewJob{Payload: payload, Queue: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, NewJob{Payload: payload, Queue: "b"}); err != nil {
		t.Fatal(err)
	}
	q.readGate.Lock() // as a truncation does while it removes files
	calls := make(chan error, 2)
	go func() {
		j, err := q.Get(ctx, res.ID)
		if err == nil && !bytes.Equal(j.Payload, payload) {
			err = fmt.Errorf("Get payload %q, want %q", j.Payload, payload)
		}
		calls <- err
	}()
	go func() {
		l, err := q.TryLease(ctx, "b")
		if err == nil && (l == nil || !bytes.Equal(l.Job.Payload, payload)) {
			err = fmt.Errorf("TryLease = %+v", l)
		}
		calls <- err
	}()
	watchdog := time.NewTimer(20 * time.Second) // not synchronisation: a hang detector
	defer watchdog.Stop()
	for range 2 {
		select {
		case <-waiting:
		case <-watchdog.C:
			q.readGate.Unlock()
			t.Fatal("a reader blocked on readGate with the queue's lock held")
		}
	}
	// Both readers wait for readGate; the queue's lock is free.
	if _, err := q.Enqueue(ctx, NewJob{Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Stats(ctx); err != nil {
		t.Fatal(err)
	}
	q.readGate.Unlock()
	for range 2 {
		if err := <-calls; err != nil {
			t.Error(err)
		}
	}
}
