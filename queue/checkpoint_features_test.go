package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// featureWorkload uses the features whose state a checkpoint restates:
// ordered groups (with parked members and a leased holder left behind),
// progress reports, batches with callbacks (one finished, one not) and
// periodic schedules (one ticked, one removed).
func featureWorkload(t *testing.T, q *Queue, mc *clock.Mock, round int) {
	t.Helper()
	ctx := context.Background()
	tag := func(s string) string { return fmt.Sprintf("%s-%d", s, round) }
	for i := 0; i < 3; i++ {
		g := tag(fmt.Sprintf("g%d", i))
		for k := 0; k < 3; k++ {
			if _, err := q.Enqueue(ctx, NewJob{Queue: "grouped", Group: g, Priority: int32(k),
				Payload: []byte(fmt.Sprintf("%s member %d", g, k))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Lease two group heads: one reports progress and stays leased (its
	// group's other members stay parked), one completes (handing on).
	l1 := leaseT(t, q, "grouped")
	if err := q.Progress(ctx, l1.Token, 30, "a third"); err != nil {
		t.Fatal(err)
	}
	l2 := leaseT(t, q, "grouped")
	if err := q.Progress(ctx, l2.Token, 100, "done"); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, l2.Token, nil); err != nil {
		t.Fatal(err)
	}
	// A batch left unfinished, and one whose members all finish.
	members := []NewJob{{Queue: "batch", Payload: []byte("m1")}, {Queue: "batch", Payload: []byte("m2")}}
	if _, err := q.EnqueueBatchThen(ctx, members, NewJob{Queue: "callbacks", Payload: []byte(tag("then"))}); err != nil {
		t.Fatal(err)
	}
	done, err := q.EnqueueBatchThen(ctx, []NewJob{{Queue: "solo", Payload: []byte("s")}},
		NewJob{Queue: "callbacks", Payload: []byte(tag("solo then"))})
	if err != nil {
		t.Fatal(err)
	}
	l := leaseT(t, q, "solo")
	if l.Job.ID != done.ID {
		t.Fatalf("leased job %d, batch member %d", l.Job.ID, done.ID)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	// Schedules: one kept (and ticked), one registered and removed.
	if err := q.Schedule(ctx, Schedule{Name: tag("tick"), Every: time.Minute,
		Job: NewJob{Queue: "periodic", Group: tag("pg"), Payload: []byte("tick")}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Schedule(ctx, Schedule{Name: tag("gone"), Cron: "@hourly", Job: NewJob{Queue: "periodic"}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Unschedule(ctx, tag("gone")); err != nil {
		t.Fatal(err)
	}
	mc.Add(61 * time.Second)
	// Looking at the schedules enqueues the tick that came due.
	if s := scheduleInfo(t, q, tag("tick")); s.LastJob == 0 {
		t.Fatalf("schedule did not tick: %+v", s)
	}
}

// featureList is what the features make observable through the API.
type featureList struct {
	Schedules []ScheduleInfo
	Batches   map[uint64]BatchInfo
	// Leased lists the jobs of queue "grouped" in the order they lease
	// when each is completed at once: groups hand their turn on in
	// enqueue order.
	Leased []uint64
}

// featureListing lists the schedules and batches, then leases and
// completes every job of queue "grouped" that comes ready.
func featureListing(t *testing.T, q *Queue) featureList {
	t.Helper()
	ctx := context.Background()
	var fl featureList
	var err error
	if fl.Schedules, err = q.Schedules(ctx); err != nil {
		t.Fatal(err)
	}
	fl.Batches = map[uint64]BatchInfo{}
	for _, j := range fullListing(t, q) {
		if b, err := q.Batch(ctx, j.ID); err == nil {
			fl.Batches[b.ID] = *b
		}
	}
	for {
		l, err := q.TryLease(ctx, "grouped")
		if errors.Is(err, ErrNoJob) {
			return fl
		}
		if err != nil {
			t.Fatal(err)
		}
		fl.Leased = append(fl.Leased, l.Job.ID)
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
}
