package queue

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// everyState fills q with jobs in every state, with every optional field
// used, plus a paused queue. It returns the ID of the one leased job.
func everyState(t *testing.T, q *Queue, mc *clock.Mock) (leased uint64) {
	t.Helper()
	ctx := t.Context()
	step := func() { mc.Add(time.Millisecond) }

	enqueueT(t, q, NewJob{Queue: "mail", Payload: []byte("ready"), Key: "ready-key", Priority: 7, MaxAttempts: 9,
		Backoff: &Backoff{Base: 3 * time.Second, Cap: time.Minute}, Timeout: 42 * time.Second})
	step()
	enqueueT(t, q, NewJob{Queue: "mail", Payload: []byte("scheduled"), Delay: time.Hour, Priority: -3})
	step()
	enqueueT(t, q, NewJob{Queue: "mail"}) // empty payload
	step()

	enqueueT(t, q, NewJob{Queue: "work", Payload: []byte("completed"), Key: "done-key"})
	step()
	if err := q.Complete(ctx, leaseT(t, q, "work").Token, []byte("the result")); err != nil {
		t.Fatal(err)
	}
	step()
	enqueueT(t, q, NewJob{Queue: "work", Payload: []byte("completed, empty result")})
	if err := q.Complete(ctx, leaseT(t, q, "work").Token, []byte{}); err != nil {
		t.Fatal(err)
	}
	step()
	enqueueT(t, q, NewJob{Queue: "work", Payload: []byte("completed, no result")})
	if err := q.Complete(ctx, leaseT(t, q, "work").Token, nil); err != nil {
		t.Fatal(err)
	}
	step()
	enqueueT(t, q, NewJob{Queue: "work", Payload: []byte("dead"), MaxAttempts: 1, Key: "dead-key"})
	if err := q.Fail(ctx, leaseT(t, q, "work").Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	step()
	id := enqueueT(t, q, NewJob{Queue: "work", Payload: []byte("cancelled")})
	if err := q.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	step()

	enqueueT(t, q, NewJob{Queue: "retry", Payload: []byte("failed once")})
	if err := q.Fail(ctx, leaseT(t, q, "retry").Token, errors.New("flaky")); err != nil {
		t.Fatal(err)
	}
	step()
	enqueueT(t, q, NewJob{Queue: "retry", Payload: []byte("delayed"), Delay: time.Hour})
	id = enqueueT(t, q, NewJob{Queue: "dlq", Payload: []byte("requeued")})
	if err := q.Fail(ctx, leaseT(t, q, "dlq").Token, Permanent(errors.New("fixed later"))); err != nil {
		t.Fatal(err)
	}
	step()
	if err := q.Requeue(ctx, []uint64{id}, RequeueOptions{Queue: "requeued", Delay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	step()

	if err := q.Pause(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	enqueueT(t, q, NewJob{Queue: "paused", Payload: []byte("paused")})
	step()

	leased = enqueueT(t, q, NewJob{Queue: "lease", Payload: []byte("leased"), Key: "leased-key"})
	step()
	leaseT(t, q, "lease")
	step()
	return leased
}

// fullState is everything the queue shows: the listing, each job with its
// payload and result, and the per-queue counts.
type fullState struct {
	jobs  []*Job
	gets  map[uint64]*Job
	stats map[string]QueueStats
}

func stateOf(t *testing.T, q *Queue) fullState {
	t.Helper()
	jobs, err := q.Jobs(t.Context(), JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Metrics count what happened since Open; a reopen starts them over.
	for name, qs := range st.Queues {
		qs.Metrics = Metrics{}
		st.Queues[name] = qs
	}
	s := fullState{jobs: jobs, gets: map[uint64]*Job{}, stats: st.Queues}
	for _, j := range jobs {
		s.gets[j.ID] = getT(t, q, j.ID)
	}
	return s
}

// compareAfterRestart checks that after is before, except that the leased
// job's lease was voided at now: ready at once, its attempt counted.
func compareAfterRestart(t *testing.T, before, after fullState, leased uint64, now time.Time) {
	t.Helper()
	if len(after.jobs) != len(before.jobs) {
		t.Fatalf("%d jobs after reopen, %d before", len(after.jobs), len(before.jobs))
	}
	now = time.Unix(0, now.UnixNano()) // as Job's times are made
	voided := func(j *Job, got *Job) *Job {
		w := *j
		w.History = append([]Attempt(nil), j.History...)
		w.State, w.LeaseDeadline, w.RunAt = StateReady, time.Time{}, now
		w.LastError = got.LastError
		last := &w.History[len(w.History)-1]
		last.Ended, last.Outcome, last.Error = now, "expired", got.LastError
		return &w
	}
	for i, b := range before.jobs {
		a := after.jobs[i]
		wantList, wantGet := b, before.gets[b.ID]
		if b.ID == leased {
			if !strings.Contains(a.LastError, "exited") {
				t.Errorf("voided job's error %q does not say the process exited", a.LastError)
			}
			wantList, wantGet = voided(b, a), voided(wantGet, a)
		}
		if !reflect.DeepEqual(a, wantList) {
			t.Errorf("job %d in Jobs:\n got %+v\nwant %+v", b.ID, a, wantList)
		}
		if g := after.gets[b.ID]; !reflect.DeepEqual(g, wantGet) {
			t.Errorf("Get(%d):\n got %+v\nwant %+v", b.ID, g, wantGet)
		}
	}
	wantStats := map[string]QueueStats{}
	for name, qs := range before.stats {
		wantStats[name] = qs
	}
	wantStats["lease"] = QueueStats{Ready: 1}
	if !reflect.DeepEqual(after.stats, wantStats) {
		t.Errorf("stats after reopen:\n got %+v\nwant %+v", after.stats, wantStats)
	}
}

func TestReopenKeepsState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, q *Queue) string // returns the directory to reopen
	}{
		{"Close", func(t *testing.T, q *Queue) string {
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			return q.Dir()
		}},
		{"crash", func(t *testing.T, q *Queue) string { return crashImage(t, q) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mc := startClock()
			q := openTest(t, t.TempDir(), &Options{Clock: mc})
			leased := everyState(t, q, mc)
			before := stateOf(t, q)
			if before.gets[leased].State != StateLeased {
				t.Fatalf("fixture: job %d is %s", leased, before.gets[leased].State)
			}
			for _, s := range JobStates() {
				n := 0
				for _, j := range before.jobs {
					if j.State == s {
						n++
					}
				}
				if n == 0 {
					t.Fatalf("fixture has no %s job", s)
				}
			}
			if !before.stats["paused"].Paused {
				t.Fatal("fixture: queue not paused")
			}

			dir := tc.stop(t, q)
			q2 := openTest(t, dir, &Options{Clock: mc})
			compareAfterRestart(t, before, stateOf(t, q2), leased, mc.Now())

			rep := q2.Recovery()
			if rep.Voided != 1 || rep.PoisonPills != 0 {
				t.Errorf("recovery voided %d leases, %d poison pills; want 1, 0", rep.Voided, rep.PoisonPills)
			}
			want := map[JobState]int{}
			for _, s := range JobStates() {
				want[s] = 0
			}
			for _, j := range before.jobs {
				switch j.State {
				case StateLeased: // the lease is voided: ready again
					want[StateReady]++
				default:
					want[j.State]++
				}
			}
			if !reflect.DeepEqual(rep.Jobs, want) {
				t.Errorf("recovery report counts %v, want %v", rep.Jobs, want)
			}

			// The reopened queue carries on: the paused queue stays paused,
			// the voided job runs its second attempt, IDs are not reused.
			noLease(t, q2, "paused")
			if l := leaseT(t, q2, "lease"); l.Job.ID != leased || l.Token.Attempt != 2 {
				t.Fatalf("lease after reopen: job %d attempt %d", l.Job.ID, l.Token.Attempt)
			}
			if id := enqueueT(t, q2, NewJob{}); id != uint64(len(before.jobs))+1 {
				t.Fatalf("new job got ID %d, want %d", id, len(before.jobs)+1)
			}
			if err := q2.Resume(t.Context(), "paused"); err != nil {
				t.Fatal(err)
			}
			leaseT(t, q2, "paused")
		})
	}
}

// TestReopenNoLeases: with no lease to void, a reopen writes nothing and
// shows exactly the state before.
func TestReopenNoLeases(t *testing.T) {
	t.Parallel()
	mc := startClock()
	dir := t.TempDir()
	q := openTest(t, dir, &Options{Clock: mc})
	id := enqueueT(t, q, NewJob{Payload: []byte("x"), Key: "k"})
	l := leaseT(t, q, "")
	if err := q.Fail(t.Context(), l.Token, errors.New("once")); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, q)
	st, _ := q.Stats(t.Context())
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, &Options{Clock: mc})
	after := stateOf(t, q)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", after, before)
	}
	st2, _ := q.Stats(t.Context())
	if st2.Log.LastIndex != st.Log.LastIndex {
		t.Errorf("reopen appended: last index %d, was %d", st2.Log.LastIndex, st.Log.LastIndex)
	}
	if rep := q.Recovery(); rep.Voided != 0 || rep.Jobs[StateReady]+rep.Jobs[StateScheduled] != 1 {
		t.Errorf("recovery report %+v", rep)
	}
	getT(t, q, id)
}

// TestIDsNotReused: the highest job, purged before a restart, keeps its ID.
func TestIDsNotReused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mc := startClock()
	dir := t.TempDir()
	q := openTest(t, dir, &Options{Clock: mc})
	enqueueT(t, q, NewJob{})
	last := enqueueT(t, q, NewJob{})
	if err := q.Cancel(ctx, last); err != nil {
		t.Fatal(err)
	}
	if err := q.Purge(ctx, []uint64{last}); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, crashImage(t, q), &Options{Clock: mc})
	if id := enqueueT(t, q, NewJob{}); id != last+1 {
		t.Fatalf("new job after restart got ID %d, want %d (ID %d was used)", id, last+1, last)
	}
}

// TestPoisonPill: a job whose attempts keep dying with the process goes to
// the dead-letter queue instead of killing every restart.
func TestPoisonPill(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mc := startClock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc})
	id := enqueueT(t, q, NewJob{Payload: []byte("kills the worker"), MaxAttempts: 2})
	leaseT(t, q, "")

	// Crash 1: attempt 1 is voided and counts.
	mc.Add(time.Second)
	q = openTest(t, crashImage(t, q), &Options{Clock: mc})
	if rep := q.Recovery(); rep.Voided != 1 || rep.PoisonPills != 0 {
		t.Fatalf("first restart: voided %d, poison pills %d; want 1, 0", rep.Voided, rep.PoisonPills)
	}
	j := getT(t, q, id)
	if j.State != StateReady || j.Attempt != 1 || !j.RunAt.Equal(mc.Now()) || len(j.History) != 1 || j.History[0].Outcome != "expired" {
		t.Fatalf("after the first restart: %+v", j)
	}
	if l := leaseT(t, q, ""); l.Token.Attempt != 2 {
		t.Fatalf("second lease: attempt %d", l.Token.Attempt)
	}

	// Crash 2, on the last attempt: the job is a poison pill.
	mc.Add(time.Second)
	q = openTest(t, crashImage(t, q), &Options{Clock: mc})
	if rep := q.Recovery(); rep.Voided != 1 || rep.PoisonPills != 1 {
		t.Fatalf("second restart: voided %d, poison pills %d; want 1, 1", rep.Voided, rep.PoisonPills)
	}
	j = getT(t, q, id)
	if j.State != StateDead || j.Attempt != 2 || !strings.Contains(j.LastError, "poison pill") {
		t.Fatalf("after the second restart: %+v", j)
	}
	noLease(t, q, "")
	var de *DeadError
	if _, err := q.Wait(ctx, id); !errors.As(err, &de) || !strings.Contains(de.Reason, "poison pill") || de.Attempts != 2 {
		t.Fatalf("Wait = %v", err)
	}
	dead, err := q.Dead(ctx, DeadFilter{ErrorContains: "poison pill"})
	if err != nil || len(dead) != 1 || dead[0].ID != id {
		t.Fatalf("Dead(poison pill) = %v, %v", dead, err)
	}
	// A clean restart does not count as a crash: nothing left to void.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, q.Dir(), &Options{Clock: mc})
	if rep := q.Recovery(); rep.Voided != 0 || rep.PoisonPills != 0 {
		t.Fatalf("third open: %+v", rep)
	}
}

// TestCrashImageAfterEveryCall: every call that returned is in a crash image
// taken right after it.
func TestCrashImageAfterEveryCall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mc := startClock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc})
	var l *Lease
	for i, step := range []struct {
		name string
		do   func() error
		want func(j *Job) error
	}{
		{"enqueue", func() error { _, err := q.Enqueue(ctx, NewJob{Payload: []byte("p")}); return err },
			func(j *Job) error { return expect(j.State == StateReady && string(j.Payload) == "p") }},
		{"lease", func() (err error) { l, err = q.TryLease(ctx, ""); return err },
			func(j *Job) error { return expect(j.State == StateReady && j.Attempt == 1) }}, // voided
		{"fail", func() error { return q.Fail(ctx, l.Token, errors.New("e")) },
			func(j *Job) error { return expect(j.State == StateScheduled && j.LastError == "e") }},
		{"lease again", func() (err error) { mc.Add(time.Second); l, err = q.TryLease(ctx, ""); return err },
			func(j *Job) error { return expect(j.State == StateReady && j.Attempt == 2) }},
		{"complete", func() error { return q.Complete(ctx, l.Token, []byte("r")) },
			func(j *Job) error { return expect(j.State == StateCompleted && string(j.Result) == "r") }},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("step %d (%s): %v", i, step.name, err)
		}
		img := openTest(t, crashImage(t, q), &Options{Clock: mc})
		j := getT(t, img, 1)
		if err := step.want(j); err != nil {
			t.Fatalf("crash after %s: job %+v", step.name, j)
		}
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func expect(ok bool) error {
	if ok {
		return nil
	}
	return fmt.Errorf("unexpected")
}

// TestCloseDuringEnqueue closes the queue under a storm of enqueues: each
// one either returned an ID, and the job is there after reopen, or returned
// ErrClosed and left nothing.
func TestCloseDuringEnqueue(t *testing.T) {
	t.Parallel()
	const producers = 8
	ctx := t.Context()
	mc := startClock()
	dir := t.TempDir()
	q := openTest(t, dir, &Options{Clock: mc})
	var mu sync.Mutex
	acked := map[uint64]bool{}
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := 0; ; i++ {
				r, err := q.Enqueue(ctx, NewJob{Payload: fmt.Appendf(nil, "%d/%d", p, i)})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("producer %d: %v", p, err)
					return
				}
				mu.Lock()
				acked[r.ID] = true
				if len(acked) >= 200 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	<-enough
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	q = openTest(t, dir, &Options{Clock: mc})
	all, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(acked) {
		t.Errorf("%d jobs after reopen, %d enqueues acknowledged", len(all), len(acked))
	}
	for _, j := range all {
		if !acked[j.ID] {
			t.Errorf("job %d exists but its Enqueue returned an error", j.ID)
		}
	}
}
