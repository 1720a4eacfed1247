package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// periodicJobs returns the jobs schedule name enqueued, by ID, with their
// keys.
func periodicJobs(t testing.TB, q *Queue, name string) []*Job {
	t.Helper()
	if _, err := q.Schedules(context.Background()); err != nil { // enqueues due ticks
		t.Fatal(err)
	}
	js, err := q.Jobs(context.Background(), JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*Job
	for _, j := range js {
		if strings.HasPrefix(j.Key, periodicPrefix+name+":") {
			out = append(out, j)
		}
	}
	return out
}

// scheduleT registers s, failing the test on error.
func scheduleT(t testing.TB, q *Queue, s Schedule) {
	t.Helper()
	if err := q.Schedule(context.Background(), s); err != nil {
		t.Fatalf("Schedule(%+v): %v", s, err)
	}
}

// scheduleInfo returns the named schedule's description.
func scheduleInfo(t testing.TB, q *Queue, name string) ScheduleInfo {
	t.Helper()
	ss, err := q.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("schedule %q not listed in %+v", name, ss)
	return ScheduleInfo{}
}

func TestPeriodicEveryTicksOnce(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	scheduleT(t, q, Schedule{Name: "tick", Every: time.Minute, Job: NewJob{Queue: "p", Payload: []byte("hello"), Priority: 3}})
	if s := scheduleInfo(t, q, "tick"); !s.Next.Equal(epoch.Add(time.Minute)) || !s.LastRun.IsZero() || s.Spec != "@every 1m0s" {
		t.Fatalf("before the first tick: %+v", s)
	}
	mc.Add(59 * time.Second)
	noLease(t, q, "p")
	mc.Add(time.Second)
	l := leaseT(t, q, "p")
	if string(l.Job.Payload) != "hello" || l.Job.Priority != 3 {
		t.Fatalf("leased %+v", l.Job)
	}
	if err := q.Complete(context.Background(), l.Token, nil); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("walq:periodic:tick:%d", epoch.Add(time.Minute).Unix()); l.Job.Key != want {
		t.Fatalf("key %q, want %q", l.Job.Key, want)
	}
	s := scheduleInfo(t, q, "tick")
	if !s.LastRun.Equal(epoch.Add(time.Minute)) || s.LastJob != l.Job.ID || !s.Next.Equal(epoch.Add(2*time.Minute)) {
		t.Fatalf("after the first tick: %+v (job %d)", s, l.Job.ID)
	}
	// Looking again, however often, enqueues nothing more for that tick.
	for range 3 {
		mc.Add(10 * time.Second)
		noLease(t, q, "p")
		if _, err := q.Stats(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mc.Add(30 * time.Second)
	leaseT(t, q, "p")
	if n := len(periodicJobs(t, q, "tick")); n != 2 {
		t.Fatalf("%d jobs after two ticks, want 2", n)
	}
}

func TestPeriodicCron(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	mc.Add(90 * time.Second) // 00:01:30
	scheduleT(t, q, Schedule{Name: "five", Cron: "*/5 * * * *", Job: NewJob{Queue: "c"}})
	if s := scheduleInfo(t, q, "five"); !s.Next.Equal(epoch.Add(5 * time.Minute)) {
		t.Fatalf("next %v, want 00:05", s.Next)
	}
	mc.Add(3*time.Minute + 29*time.Second) // 00:04:59
	noLease(t, q, "c")
	mc.Add(time.Second)
	l := leaseT(t, q, "c")
	if want := fmt.Sprintf("walq:periodic:five:%d", epoch.Add(5*time.Minute).Unix()); l.Job.Key != want {
		t.Fatalf("key %q, want %q", l.Job.Key, want)
	}
	// A time zone prefix is honoured: 03:00 in Tokyo is 18:00 UTC.
	scheduleT(t, q, Schedule{Name: "tokyo", Cron: "CRON_TZ=Asia/Tokyo 0 3 * * *", Job: NewJob{Queue: "c"}})
	if s := scheduleInfo(t, q, "tokyo"); !s.Next.Equal(epoch.Add(18 * time.Hour)) {
		t.Fatalf("tokyo next %v, want 18:00 UTC", s.Next.UTC())
	}
}

// TestPeriodicMissed closes a queue for ten ticks: MissedRunOnce enqueues
// one job, for the latest missed tick; MissedSkip enqueues none and goes
// on with the first tick after the reopen.
func TestPeriodicMissed(t *testing.T) {
	t.Parallel()
	for _, missed := range []Missed{MissedRunOnce, MissedSkip} {
		t.Run(missed.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			mc := startClock()
			q := openTest(t, dir, &Options{Clock: mc})
			scheduleT(t, q, Schedule{Name: "m", Every: time.Minute, Job: NewJob{Queue: "m"}, Missed: missed})
			mc.Add(time.Minute)
			leaseT(t, q, "m") // the first tick, while open
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			mc.Add(10*time.Minute + 30*time.Second) // ticks 2..11 missed
			q = openTest(t, dir, &Options{Clock: mc})
			jobs := periodicJobs(t, q, "m")
			switch missed {
			case MissedRunOnce:
				if len(jobs) != 2 {
					t.Fatalf("%d jobs, want the first tick's and one for the missed period", len(jobs))
				}
				if want := periodicKey("m", epoch.Add(11*time.Minute).UnixNano()); jobs[1].Key != want {
					t.Fatalf("catch-up job key %q, want the latest missed tick's %q", jobs[1].Key, want)
				}
			case MissedSkip:
				if len(jobs) != 1 {
					t.Fatalf("%d jobs, want only the first tick's", len(jobs))
				}
				if s := scheduleInfo(t, q, "m"); !s.Next.Equal(epoch.Add(12 * time.Minute)) {
					t.Fatalf("next %v, want the first tick after the reopen", s.Next)
				}
			}
			mc.Add(30 * time.Second) // tick 12
			if n, want := len(periodicJobs(t, q, "m")), len(jobs)+1; n != want {
				t.Fatalf("%d jobs after the first tick since reopen, want %d", n, want)
			}
		})
	}
}

// TestPeriodicCrash takes crash images right after a tick was enqueued and
// reopens them at the same time and later: the tick is never enqueued
// twice, and the next one is enqueued once.
func TestPeriodicCrash(t *testing.T) {
	t.Parallel()
	mc := startClock()
	q := openTest(t, t.TempDir(), &Options{Clock: mc})
	scheduleT(t, q, Schedule{Name: "c", Every: time.Hour, Job: NewJob{Queue: "c"}})
	before := crashImage(t, q) // registered, never fired
	mc.Add(time.Hour)
	if n := len(periodicJobs(t, q, "c")); n != 1 {
		t.Fatalf("%d jobs after the first tick", n)
	}
	after := crashImage(t, q)
	for _, tc := range []struct {
		name string
		dir  string
		want int
	}{{"before the tick", before, 1}, {"after the tick", after, 1}} {
		q2 := openTest(t, tc.dir, &Options{Clock: mc})
		if n := len(periodicJobs(t, q2, "c")); n != tc.want {
			t.Fatalf("%s: %d jobs at reopen, want %d", tc.name, n, tc.want)
		}
		if s := scheduleInfo(t, q2, "c"); !s.LastRun.Equal(epoch.Add(time.Hour)) {
			t.Fatalf("%s: last run %v", tc.name, s.LastRun)
		}
		if err := q2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPeriodicCompactReopen checks that compaction carries schedules: the
// segments holding their registration and last runs are removed, and a
// reopen gives the same schedules and enqueues no tick again.
func TestPeriodicCompactReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 4096, CompactRatio: -1, KeyRetention: time.Hour}
	q := openTest(t, dir, opts)
	ctx := context.Background()
	scheduleT(t, q, Schedule{Name: "a", Every: time.Minute, Job: NewJob{Queue: "a", Payload: []byte("A")}})
	scheduleT(t, q, Schedule{Name: "b", Cron: "@hourly", Job: NewJob{Queue: "b", Payload: []byte("B"),
		MaxAttempts: 7, Backoff: &Backoff{Base: 3 * time.Second}}, Missed: MissedSkip})
	scheduleT(t, q, Schedule{Name: "gone", Every: time.Minute, Job: NewJob{Queue: "a"}})
	if err := q.Unschedule(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	mc.Add(time.Minute)
	leaseT(t, q, "a")
	mc.Add(2 * time.Hour) // a's catch-up tick and b's tick
	want, err := q.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 { // push every schedule record into old segments
		id := enqueueT(t, q, NewJob{Queue: "w", Payload: make([]byte, 100)})
		l := leaseT(t, q, "w")
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatal(i, id, err)
		}
	}
	st, err := q.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SegmentsRemoved == 0 {
		t.Fatalf("compaction removed no segment: %+v", st)
	}
	jobsBefore := len(periodicJobs(t, q, "a")) + len(periodicJobs(t, q, "b"))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	got, err := q.Schedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("schedules after compaction and reopen:\n%+v\nwant\n%+v", got, want)
	}
	if n := len(periodicJobs(t, q, "a")) + len(periodicJobs(t, q, "b")); n != jobsBefore {
		t.Fatalf("%d periodic jobs after reopen, want %d", n, jobsBefore)
	}
	l := leaseT(t, q, "b")
	if l.Job.MaxAttempts != 7 || string(l.Job.Payload) != "B" {
		t.Fatalf("template not carried: %+v", l.Job)
	}
}

func TestPeriodicRegisterAgain(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	ctx := context.Background()
	s := Schedule{Name: "r", Every: time.Minute, Job: NewJob{Queue: "r", Payload: []byte("x")}}
	scheduleT(t, q, s)
	mc.Add(90 * time.Second)
	leaseT(t, q, "r")
	last := q.log.LastIndex()
	scheduleT(t, q, s) // as a program does at every start
	if q.log.LastIndex() != last {
		t.Fatalf("registering the same schedule again wrote %d entries", q.log.LastIndex()-last)
	}
	s.Job.Payload = []byte("y") // a new template keeps the phase and the last run
	scheduleT(t, q, s)
	if si := scheduleInfo(t, q, "r"); !si.LastRun.Equal(epoch.Add(time.Minute)) || !si.Next.Equal(epoch.Add(2*time.Minute)) {
		t.Fatalf("after a new template: %+v", si)
	}
	s.Every = 2 * time.Minute // a new spec counts from now
	scheduleT(t, q, s)
	if si := scheduleInfo(t, q, "r"); !si.Next.Equal(epoch.Add(90*time.Second + 2*time.Minute)) {
		t.Fatalf("after a new spec: next %v", si.Next)
	}
	if err := q.Unschedule(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if err := q.Unschedule(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Unschedule of an unknown name: %v", err)
	}
	mc.Add(time.Hour)
	if n := len(periodicJobs(t, q, "r")); n != 1 {
		t.Fatalf("%d jobs after Unschedule, want 1", n)
	}
}

func TestPeriodicValidation(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	for _, s := range []Schedule{
		{Every: time.Minute},
		{Name: "bad name", Every: time.Minute},
		{Name: "n"},
		{Name: "n", Every: time.Minute, Cron: "* * * * *"},
		{Name: "n", Every: time.Millisecond},
		{Name: "n", Cron: "61 * * * *"},
		{Name: "n", Cron: "* * * *"},
		{Name: "n", Every: time.Minute, Job: NewJob{Key: "k"}},
		{Name: "n", Every: time.Minute, Job: NewJob{Delay: time.Second}},
		{Name: "n", Every: time.Minute, Job: NewJob{Queue: "bad queue"}},
		{Name: "n", Every: time.Minute, Missed: 2},
	} {
		if err := q.Schedule(context.Background(), s); !errors.Is(err, ErrInvalid) {
			t.Errorf("Schedule(%+v) = %v, want ErrInvalid", s, err)
		}
	}
	ro := openTest(t, q.Dir(), &Options{ReadOnly: true})
	if err := ro.Schedule(context.Background(), Schedule{Name: "n", Every: time.Minute}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Schedule on a read-only queue = %v", err)
	}
}

// TestPeriodicWakesLease checks that a Lease blocked on an empty queue
// returns the job of a tick.
func TestPeriodicWakesLease(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	scheduleT(t, q, Schedule{Name: "w", Every: time.Minute, Job: NewJob{Queue: "w"}})
	got := make(chan *Lease, 1)
	go func() {
		l, err := q.Lease(context.Background(), "w")
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	mc.Add(time.Minute)
	if l := <-got; l == nil || !strings.HasPrefix(l.Job.Key, periodicPrefix+"w:") {
		t.Fatalf("Lease returned %+v", l)
	}
}

// TestPeriodicReadOnly checks that a reader sees a writer's schedules.
func TestPeriodicReadOnly(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	scheduleT(t, q, Schedule{Name: "ro", Every: time.Minute, Job: NewJob{Queue: "ro"}})
	mc.Add(time.Minute)
	want := scheduleInfo(t, q, "ro")
	ro := openTest(t, q.Dir(), &Options{ReadOnly: true, Clock: mc})
	st, err := ro.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Schedules) != 1 || fmt.Sprint(st.Schedules[0]) != fmt.Sprint(want) {
		t.Fatalf("reader sees %+v, want %+v", st.Schedules, want)
	}
}

// TestPeriodicConcurrent advances the clock tick by tick while goroutines
// lease, complete, read Stats and Schedules, register another schedule over
// and over, and the background compactor runs on small segments: every tick
// of every schedule is enqueued exactly once, and a reopen agrees.
func TestPeriodicConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, SegmentSize: 8192, CompactRatio: 1, KeyRetention: time.Second}
	q := openTest(t, dir, opts)
	ctx, cancel := context.WithCancel(context.Background())
	scheduleT(t, q, Schedule{Name: "s1", Every: time.Second, Job: NewJob{Queue: "p", Payload: make([]byte, 200)}})
	scheduleT(t, q, Schedule{Name: "s2", Cron: "* * * * *", Job: NewJob{Queue: "p"}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l, err := q.TryLease(ctx, "p")
				if errors.Is(err, ErrNoJob) || err != nil && ctx.Err() != nil {
					if _, err := q.Stats(ctx); err != nil && ctx.Err() == nil {
						t.Error(err)
					}
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[l.Job.Key]++
				mu.Unlock()
				if err := q.Complete(context.Background(), l.Token, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			s := Schedule{Name: "s3", Every: time.Hour, Job: NewJob{Queue: "other", Payload: []byte{byte(i % 2)}}}
			if err := q.Schedule(ctx, s); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
			if _, err := q.Schedules(ctx); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		}
	}()
	const steps = 150
	for range steps {
		mc.Add(time.Second)
		if _, err := q.Schedules(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	// Drain what the goroutines left: every tick's job is leased once. The
	// background compactor may hold a job reserved for a moment: Lease
	// waits for it (the deadline is for failure only).
	for len(seen) < steps+2 {
		lctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := q.Lease(lctx, "p")
		stop()
		if err != nil {
			t.Fatalf("%d jobs leased of %d: %v", len(seen), steps+2, err)
		}
		seen[l.Job.Key]++
		if err := q.Complete(context.Background(), l.Token, nil); err != nil {
			t.Fatal(err)
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("job %s leased %d times", k, n)
		}
	}
	if len(seen) != steps+2 { // 150 seconds, two minutes
		t.Errorf("%d jobs leased, want %d", len(seen), steps+2)
	}
	want, err := q.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := q.Stats(context.Background()); err != nil || st.Log.FirstIndex <= 1 {
		t.Fatalf("no background compaction removed a segment: %+v, %v", st.Log, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	got, err := q.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Retention purged finished jobs at the reopen: LastJob names a job
	// only while the queue holds it.
	for i := range want {
		want[i].LastJob, got[i].LastJob = 0, 0
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen:\n%+v\nwant\n%+v", got, want)
	}
	noLease(t, q, "p")
}
