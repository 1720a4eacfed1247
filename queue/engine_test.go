package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCompleteStoresResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		result []byte
	}{
		{"result", []byte("sent")},
		{"empty result", []byte{}},
		{"no result", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), nil)
			mc := mockOf(t, q)
			id := enqueueT(t, q, NewJob{Queue: "email", Payload: []byte("to=ada")})
			j := getT(t, q, id)
			if j.State != StateReady || j.Attempt != 0 || !j.RunAt.Equal(epoch) || !j.EnqueuedAt.Equal(epoch) {
				t.Fatalf("after Enqueue: %+v", j)
			}

			mc.Add(time.Second)
			l := leaseT(t, q, "email")
			if want := (Token{Job: id, Attempt: 1, Lease: 1}); l.Token != want {
				t.Fatalf("token %+v, want %+v", l.Token, want)
			}
			if string(l.Job.Payload) != "to=ada" || l.Job.State != StateLeased || l.Job.Attempt != 1 {
				t.Fatalf("leased job %+v", l.Job)
			}
			if want := epoch.Add(31 * time.Second); !l.Deadline.Equal(want) {
				t.Fatalf("deadline %v, want %v (now + default 30s)", l.Deadline, want)
			}
			noLease(t, q, "email")

			mc.Add(2 * time.Second)
			if err := q.Complete(ctx, l.Token, tc.result); err != nil {
				t.Fatal(err)
			}
			res, err := q.Wait(ctx, id)
			if err != nil || string(res) != string(tc.result) {
				t.Fatalf("Wait = %q, %v; want %q", res, err, tc.result)
			}
			j = getT(t, q, id)
			if j.State != StateCompleted || j.HasResult != (tc.result != nil) || string(j.Result) != string(tc.result) {
				t.Fatalf("after Complete: %+v", j)
			}
			if (j.Result == nil) != (tc.result == nil) {
				t.Errorf("Get's Result = %#v, want %#v", j.Result, tc.result)
			}
			if !j.FinishedAt.Equal(epoch.Add(3 * time.Second)) {
				t.Errorf("FinishedAt %v, want %v", j.FinishedAt, epoch.Add(3*time.Second))
			}
			want := []Attempt{{Number: 1, Started: epoch.Add(time.Second), Ended: epoch.Add(3 * time.Second), Outcome: "completed"}}
			if !attemptsEqual(j.History, want) {
				t.Errorf("history %+v, want %+v", j.History, want)
			}
			noLease(t, q, "email")
		})
	}
}

// attemptsEqual compares histories, times by instant.
func attemptsEqual(a, b []Attempt) bool {
	return slices.EqualFunc(a, b, func(x, y Attempt) bool {
		return x.Number == y.Number && x.Started.Equal(y.Started) && x.Ended.Equal(y.Ended) &&
			x.Outcome == y.Outcome && x.Error == y.Error
	})
}

// TestRetryBackoff fails a job three times and checks that each retry is
// scheduled exactly after the default backoff (1s, 2s, 4s): not a nanosecond
// earlier, and at once when the clock gets there.
func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Payload: []byte("p")})
	for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		l := leaseT(t, q, "")
		if l.Job.ID != id || l.Token.Attempt != i+1 || l.Job.Attempt != i+1 {
			t.Fatalf("lease %d: job %d token %+v attempt %d", i+1, l.Job.ID, l.Token, l.Job.Attempt)
		}
		failedAt := mc.Now()
		if err := q.Fail(ctx, l.Token, fmt.Errorf("smtp: try %d", i+1)); err != nil {
			t.Fatal(err)
		}
		j := getT(t, q, id)
		if want := failedAt.Add(delay); !j.RunAt.Equal(want) {
			t.Fatalf("after failure %d: RunAt %v, want %v", i+1, j.RunAt, want)
		}
		if j.State != StateScheduled || j.Attempt != i+1 || j.LastError != fmt.Sprintf("smtp: try %d", i+1) {
			t.Fatalf("after failure %d: %+v", i+1, j)
		}
		mc.Add(delay - time.Nanosecond)
		noLease(t, q, "")
		mc.Add(time.Nanosecond)
	}
	l := leaseT(t, q, "")
	if l.Token.Attempt != 4 {
		t.Fatalf("fourth lease has attempt %d", l.Token.Attempt)
	}
	if err := q.Complete(ctx, l.Token, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, id)
	if got, want := outcomes(j), []string{"failed", "failed", "failed", "completed"}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	for i, a := range j.History {
		if a.Number != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, a.Number)
		}
	}
	if j.History[1].Error != "smtp: try 2" {
		t.Errorf("attempt 2 error %q", j.History[1].Error)
	}
}

func TestFailPermanent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{Payload: []byte("p")}) // 5 attempts by default
	l := leaseT(t, q, "")
	mc.Add(time.Second)
	if err := q.Fail(ctx, l.Token, Permanent(errors.New("invalid address"))); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, id)
	if j.State != StateDead || j.Attempt != 1 || j.LastError != "invalid address" || !j.FinishedAt.Equal(epoch.Add(time.Second)) {
		t.Fatalf("after a permanent failure: %+v", j)
	}
	_, err := q.Wait(ctx, id)
	if !errors.Is(err, ErrDead) {
		t.Fatalf("Wait = %v, want ErrDead", err)
	}
	var de *DeadError
	if !errors.As(err, &de) {
		t.Fatalf("Wait = %T, want *DeadError", err)
	}
	if de.ID != id || de.Attempts != 1 || de.Reason != "invalid address" || !de.At.Equal(epoch.Add(time.Second)) {
		t.Fatalf("DeadError %+v", de)
	}
	noLease(t, q, "")
	if !IsPermanent(Permanent(errors.New("x"))) || IsPermanent(errors.New("x")) || Permanent(nil) != nil {
		t.Error("Permanent/IsPermanent disagree")
	}
}

func TestFailExhaustsAttempts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts *Options
		job  NewJob
	}{
		{"queue's MaxAttempts", &Options{MaxAttempts: 3}, NewJob{}},
		{"job's MaxAttempts", &Options{MaxAttempts: 10}, NewJob{MaxAttempts: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), tc.opts)
			mc := mockOf(t, q)
			tc.job.Queue = "mail"
			id := enqueueT(t, q, tc.job)
			if j := getT(t, q, id); j.MaxAttempts != 3 {
				t.Fatalf("MaxAttempts %d, want 3", j.MaxAttempts)
			}
			for i := 1; i <= 3; i++ {
				l := leaseT(t, q, "mail")
				if err := q.Fail(ctx, l.Token, fmt.Errorf("boom %d", i)); err != nil {
					t.Fatal(err)
				}
				mc.Add(time.Hour)
			}
			noLease(t, q, "mail")
			j := getT(t, q, id)
			if j.State != StateDead || j.Attempt != 3 || j.LastError != "boom 3" {
				t.Fatalf("after 3 failures: %+v", j)
			}
			if got, want := outcomes(j), []string{"failed", "failed", "dead"}; !slices.Equal(got, want) {
				t.Fatalf("outcomes %q, want %q", got, want)
			}
			dead, err := q.Dead(ctx, DeadFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) != 1 || dead[0].ID != id || dead[0].LastError != "boom 3" || dead[0].Queue != "mail" {
				t.Fatalf("Dead() = %+v", dead)
			}
			var de *DeadError
			if _, err := q.Wait(ctx, id); !errors.As(err, &de) || de.Attempts != 3 || de.Reason != "boom 3" {
				t.Fatalf("Wait = %v", err)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{MaxAttempts: 2})
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	if err := q.Fail(ctx, l.Token, RetryAfter(90*time.Second, errors.New("http 429"))); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, id)
	if j.State != StateScheduled || j.Attempt != 1 || !j.RunAt.Equal(epoch.Add(90*time.Second)) || !strings.Contains(j.LastError, "http 429") {
		t.Fatalf("after RetryAfter(90s): %+v", j)
	}
	mc.Add(90*time.Second - time.Nanosecond)
	noLease(t, q, "")
	mc.Add(time.Nanosecond)
	l = leaseT(t, q, "")
	if l.Token.Attempt != 2 {
		t.Fatalf("attempt %d after RetryAfter, want 2 (the failure counts)", l.Token.Attempt)
	}
	// The last attempt: RetryAfter cannot extend the job's life.
	if err := q.Fail(ctx, l.Token, RetryAfter(time.Second, errors.New("http 429"))); err != nil {
		t.Fatal(err)
	}
	if j := getT(t, q, id); j.State != StateDead {
		t.Fatalf("RetryAfter on the last attempt left the job %s", j.State)
	}
}

func TestSnooze(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{MaxAttempts: 1})
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{})
	for range 3 { // more snoozes than attempts: none counts
		l := leaseT(t, q, "")
		if l.Token.Attempt != 1 {
			t.Fatalf("attempt %d after snoozes, want 1", l.Token.Attempt)
		}
		if err := q.Fail(ctx, l.Token, Snooze(time.Minute)); err != nil {
			t.Fatal(err)
		}
		j := getT(t, q, id)
		if j.State != StateScheduled || j.Attempt != 0 || j.LastError != "" || !j.RunAt.Equal(mc.Now().Add(time.Minute)) {
			t.Fatalf("after Snooze(1m): %+v", j)
		}
		mc.Add(time.Minute - time.Nanosecond)
		noLease(t, q, "")
		mc.Add(time.Nanosecond)
	}
	l := leaseT(t, q, "")
	if err := q.Fail(ctx, l.Token, errors.New("real failure")); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, id)
	if j.State != StateDead {
		t.Fatalf("the one counted failure left the job %s", j.State)
	}
	if got, want := outcomes(j), []string{"released", "released", "released", "dead"}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
}

// TestReleasedAttemptNumber checks Attempt.Number for a released (snoozed)
// attempt that follows a counted one: Attempt documents that it "shares its
// number with the next".
func TestReleasedAttemptNumber(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	mc.Add(time.Second)
	l = leaseT(t, q, "") // attempt 2
	if err := q.Fail(ctx, l.Token, Snooze(time.Second)); err != nil {
		t.Fatal(err)
	}
	mc.Add(time.Second)
	l = leaseT(t, q, "") // attempt 2 again
	if l.Token.Attempt != 2 {
		t.Fatalf("attempt %d, want 2", l.Token.Attempt)
	}
	if err := q.Complete(ctx, l.Token, nil); err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, a := range getT(t, q, id).History {
		nums = append(nums, a.Number)
	}
	if want := []int{1, 2, 2}; !slices.Equal(nums, want) {
		t.Errorf("attempt numbers %v (failed, released, completed), want %v", nums, want)
	}
}

func TestRelease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	id := enqueueT(t, q, NewJob{})
	l := leaseT(t, q, "")
	if err := q.Release(ctx, l.Token); err != nil {
		t.Fatal(err)
	}
	if j := getT(t, q, id); j.State != StateReady || j.Attempt != 0 {
		t.Fatalf("after Release: %+v", j)
	}
	if err := q.Release(ctx, l.Token); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second Release = %v, want ErrLeaseLost", err)
	}
	if l = leaseT(t, q, ""); l.Token.Attempt != 1 {
		t.Fatalf("attempt %d after Release, want 1", l.Token.Attempt)
	}
}

func TestLeaseExpiry(t *testing.T) {
	t.Parallel()
	const lease = 10 * time.Second

	t.Run("re-leased with the next attempt", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), &Options{LeaseDuration: lease})
		mc := mockOf(t, q)
		id := enqueueT(t, q, NewJob{})
		l1 := leaseT(t, q, "")
		if !l1.Deadline.Equal(epoch.Add(lease)) {
			t.Fatalf("deadline %v, want %v", l1.Deadline, epoch.Add(lease))
		}
		mc.Add(lease - time.Nanosecond)
		noLease(t, q, "")
		mc.Add(time.Nanosecond)
		l2 := leaseT(t, q, "")
		if l2.Job.ID != id || l2.Token.Attempt != 2 {
			t.Fatalf("re-lease: job %d token %+v", l2.Job.ID, l2.Token)
		}
		err := q.Complete(ctx, l1.Token, []byte("stale"))
		if !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Complete with the expired token = %v, want ErrLeaseLost", err)
		}
		j := getT(t, q, id)
		if j.State != StateLeased || j.Attempt != 2 || !slices.Equal(outcomes(j), []string{"expired", ""}) {
			t.Fatalf("after the stale Complete: %+v", j)
		}
		if err := q.Complete(ctx, l2.Token, []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		if res, _ := q.Wait(ctx, id); string(res) != "fresh" {
			t.Fatalf("result %q", res)
		}
	})

	// A call that arrives exactly at the deadline is late: it records the
	// expiry and reports it.
	for _, tc := range []struct {
		name string
		call func(context.Context, *Queue, Token) error
	}{
		{"Complete", func(ctx context.Context, q *Queue, tok Token) error { return q.Complete(ctx, tok, []byte("late")) }},
		{"Fail", func(ctx context.Context, q *Queue, tok Token) error { return q.Fail(ctx, tok, errors.New("late")) }},
		{"Extend", func(ctx context.Context, q *Queue, tok Token) error {
			_, err := q.Extend(ctx, tok, time.Hour)
			return err
		}},
		{"Release", func(ctx context.Context, q *Queue, tok Token) error { return q.Release(ctx, tok) }},
	} {
		t.Run(tc.name+" at the deadline", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), &Options{LeaseDuration: lease})
			mc := mockOf(t, q)
			id := enqueueT(t, q, NewJob{})
			l := leaseT(t, q, "")
			mc.Add(lease)
			err := tc.call(ctx, q, l.Token)
			if !errors.Is(err, ErrLeaseExpired) || !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("%s at the deadline = %v, want ErrLeaseExpired (and ErrLeaseLost)", tc.name, err)
			}
			j := getT(t, q, id)
			if j.State != StateReady || j.Attempt != 1 || !slices.Equal(outcomes(j), []string{"expired"}) || !strings.Contains(j.LastError, "expired") {
				t.Fatalf("after the late %s: %+v", tc.name, j)
			}
			if err := tc.call(ctx, q, l.Token); !errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseExpired) {
				t.Fatalf("second late %s = %v, want plain ErrLeaseLost", tc.name, err)
			}
			if l2 := leaseT(t, q, ""); l2.Token.Attempt != 2 {
				t.Fatalf("next lease attempt %d, want 2", l2.Token.Attempt)
			}
		})
	}

	t.Run("Extend moves the deadline", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), &Options{LeaseDuration: lease})
		mc := mockOf(t, q)
		id := enqueueT(t, q, NewJob{})
		l := leaseT(t, q, "")
		mc.Add(5 * time.Second)
		d, err := q.Extend(ctx, l.Token, 20*time.Second)
		if err != nil || !d.Equal(epoch.Add(25*time.Second)) {
			t.Fatalf("Extend(20s) at +5s = %v, %v; want %v", d, err, epoch.Add(25*time.Second))
		}
		if j := getT(t, q, id); !j.LeaseDeadline.Equal(d) {
			t.Fatalf("LeaseDeadline %v, want %v", j.LeaseDeadline, d)
		}
		mc.Add(10 * time.Second) // past the first deadline
		noLease(t, q, "")
		d, err = q.Extend(ctx, l.Token, 0) // 0: the queue's LeaseDuration
		if err != nil || !d.Equal(epoch.Add(25*time.Second)) {
			t.Fatalf("Extend(0) at +15s = %v, %v; want %v", d, err, epoch.Add(25*time.Second))
		}
		if _, err := q.Extend(ctx, l.Token, -time.Second); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Extend(-1s) = %v, want ErrInvalid", err)
		}
		mc.Add(10*time.Second - time.Nanosecond)
		if err := q.Complete(ctx, l.Token, nil); err != nil {
			t.Fatalf("Complete within the extended lease: %v", err)
		}
	})

	t.Run("expiry on the last attempt is death", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		q := openTest(t, t.TempDir(), &Options{LeaseDuration: lease, MaxAttempts: 1})
		mc := mockOf(t, q)
		id := enqueueT(t, q, NewJob{})
		leaseT(t, q, "")
		mc.Add(lease)
		noLease(t, q, "")
		j := getT(t, q, id)
		if j.State != StateDead || !strings.Contains(j.LastError, "lease expired") || !slices.Equal(outcomes(j), []string{"dead"}) {
			t.Fatalf("after the last lease expired: %+v", j)
		}
		if _, err := q.Wait(ctx, id); !errors.Is(err, ErrDead) {
			t.Fatalf("Wait = %v, want ErrDead", err)
		}
	})
}

func TestDelayedJob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		job  NewJob
	}{
		{"Delay", NewJob{Delay: 90 * time.Second}},
		{"RunAt", NewJob{RunAt: epoch.Add(90 * time.Second)}},
		{"RunAt wins over Delay", NewJob{RunAt: epoch.Add(90 * time.Second), Delay: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := openTest(t, t.TempDir(), nil)
			mc := mockOf(t, q)
			id := enqueueT(t, q, tc.job)
			runAt := epoch.Add(90 * time.Second)
			if j := getT(t, q, id); j.State != StateScheduled || !j.RunAt.Equal(runAt) {
				t.Fatalf("after Enqueue: state %s run-at %v, want scheduled at %v", j.State, j.RunAt, runAt)
			}
			mc.Add(90*time.Second - time.Nanosecond)
			noLease(t, q, "")
			if j := getT(t, q, id); j.State != StateScheduled {
				t.Fatalf("1ns before run-at: %s", j.State)
			}
			mc.Add(time.Nanosecond)
			if j := getT(t, q, id); j.State != StateReady {
				t.Fatalf("at run-at: %s", j.State)
			}
			if l := leaseT(t, q, ""); l.Job.ID != id {
				t.Fatalf("leased job %d, want %d", l.Job.ID, id)
			}
		})
	}
}

// TestLeaseOrder checks the documented order: priority (highest first), then
// run-at, then enqueue order.
func TestLeaseOrder(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), nil)
	earlier := epoch.Add(-time.Minute)
	jobs := []NewJob{
		{Payload: []byte("p0")},                                      // 1
		{Payload: []byte("p5"), Priority: 5},                         // 2
		{Payload: []byte("p5 second"), Priority: 5},                  // 3
		{Payload: []byte("p5 earlier"), Priority: 5, RunAt: earlier}, // 4
		{Payload: []byte("p0 earlier"), RunAt: earlier},              // 5
		{Payload: []byte("p-1"), Priority: -1},                       // 6
		{Payload: []byte("p9 later"), Priority: 9, Delay: time.Hour}, // 7: not ready
		{Payload: []byte("p5 third"), Priority: 5},                   // 8
	}
	for _, nj := range jobs {
		enqueueT(t, q, nj)
	}
	var got []string
	for range 7 {
		got = append(got, string(leaseT(t, q, "").Job.Payload))
	}
	want := []string{"p5 earlier", "p5", "p5 second", "p5 third", "p0 earlier", "p0", "p-1"}
	if !slices.Equal(got, want) {
		t.Fatalf("lease order %q, want %q", got, want)
	}
	noLease(t, q, "")
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: time.Second, Factor: 2, Cap: 10 * time.Second}
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{0, 0, time.Second}, // n below 1 counts as 1
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{4, 0, 8 * time.Second},
		{5, 0, 10 * time.Second},
		{6, 0, 10 * time.Second},
		{10000, 0, 10 * time.Second}, // Factor^n overflows to +Inf
		{math.MaxInt, 0, 10 * time.Second},
		{3, 0.999, 4 * time.Second}, // no jitter configured
	} {
		if got := b.Delay(tc.n, tc.r); got != tc.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
	j := Backoff{Base: time.Second, Factor: 2, Cap: time.Hour, Jitter: 0.5}
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, time.Second},
		{1, 0.5, 750 * time.Millisecond},
		{3, 0.5, 3 * time.Second},
		{1, 0.999999, 500*time.Millisecond + 500*time.Nanosecond},
	} {
		if got := j.Delay(tc.n, tc.r); got != tc.want {
			t.Errorf("jitter 0.5: Delay(%d, %v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
}

// TestBackoffZeroValue: Backoff documents "The zero value means the
// defaults", so its exported Delay should give the default delays.
func TestBackoffZeroValue(t *testing.T) {
	t.Parallel()
	if got := (Backoff{}).Delay(3, 0); got != 4*time.Second {
		t.Errorf("Backoff{}.Delay(3, 0) = %v, want 4s (the defaults: 1s·2²)", got)
	}
}

func TestBackoffPolicy(t *testing.T) {
	t.Parallel()
	half := func() float64 { return 0.5 }
	for _, tc := range []struct {
		name   string
		opts   *Options
		job    NewJob
		delays []time.Duration // after failures 1, 2, 3
	}{
		{"jitter takes Rand's share", &Options{Rand: half, Backoff: Backoff{Jitter: 0.5}}, NewJob{},
			[]time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second}},
		{"queue policy", &Options{Backoff: Backoff{Base: 10 * time.Second, Factor: 3, Cap: time.Minute}}, NewJob{},
			[]time.Duration{10 * time.Second, 30 * time.Second, time.Minute}},
		{"job overrides base and cap", &Options{Backoff: Backoff{Factor: 3}}, NewJob{Backoff: &Backoff{Base: 2 * time.Second, Cap: 10 * time.Second}},
			[]time.Duration{2 * time.Second, 6 * time.Second, 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			q := openTest(t, t.TempDir(), tc.opts)
			mc := mockOf(t, q)
			id := enqueueT(t, q, tc.job)
			for i, d := range tc.delays {
				l := leaseT(t, q, "")
				if err := q.Fail(ctx, l.Token, errors.New("x")); err != nil {
					t.Fatal(err)
				}
				if j := getT(t, q, id); !j.RunAt.Equal(mc.Now().Add(d)) {
					t.Fatalf("failure %d: retry in %v, want %v", i+1, j.RunAt.Sub(mc.Now()), d)
				}
				mc.Add(d)
			}
		})
	}
}

// TestExpiredLeaseWithoutWorkers: once the last attempt's lease has run
// out, the job cannot complete any more (a late Complete gets
// ErrLeaseExpired). Reads should not go on showing it leased just because
// no worker has called Lease since: after a crash of every worker, that is
// exactly when an operator looks.
func TestExpiredLeaseWithoutWorkers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{LeaseDuration: 10 * time.Second, MaxAttempts: 1})
	mc := mockOf(t, q)
	id := enqueueT(t, q, NewJob{})
	leaseT(t, q, "")
	mc.Add(10 * time.Second)
	if j := getT(t, q, id); j.State == StateLeased {
		t.Errorf("Get at %v: job still %s; its last lease ran out at %v", mc.Now(), j.State, j.LeaseDeadline)
	}
	if dead, _ := q.Dead(ctx, DeadFilter{}); len(dead) != 1 {
		t.Errorf("Dead lists %d jobs; the job whose last lease expired is not among them", len(dead))
	}
	if st, _ := q.Stats(ctx); st.Queues[DefaultQueue].Leased != 0 {
		t.Errorf("Stats: %d leased", st.Queues[DefaultQueue].Leased)
	}
}

func TestPayloadIsCopied(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	buf := []byte("original")
	id := enqueueT(t, q, NewJob{Payload: buf})
	copy(buf, "XXXXXXXX")
	l := leaseT(t, q, "")
	if string(l.Job.Payload) != "original" {
		t.Fatalf("leased payload %q: the queue kept the caller's buffer", l.Job.Payload)
	}
	copy(l.Job.Payload, "YYYYYYYY")
	res := []byte("result")
	if err := q.Complete(ctx, l.Token, res); err != nil {
		t.Fatal(err)
	}
	copy(res, "ZZZZZZ")
	j := getT(t, q, id)
	if string(j.Payload) != "original" || string(j.Result) != "result" {
		t.Fatalf("Get: payload %q, result %q", j.Payload, j.Result)
	}
}

func TestJobsFilter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), nil)
	mc := mockOf(t, q)
	enqueueT(t, q, NewJob{Queue: "a"})                     // 1 ready
	enqueueT(t, q, NewJob{Queue: "b"})                     // 2 ready
	enqueueT(t, q, NewJob{Queue: "a", Delay: time.Minute}) // 3 scheduled
	enqueueT(t, q, NewJob{Queue: "a"})                     // 4 ready
	mc.Add(5 * time.Second)
	for _, tc := range []struct {
		name string
		f    JobFilter
		want []uint64
	}{
		{"all", JobFilter{}, []uint64{1, 2, 3, 4}},
		{"queue", JobFilter{Queue: "a"}, []uint64{1, 3, 4}},
		{"state", JobFilter{State: StateReady}, []uint64{1, 2, 4}},
		{"queue and state", JobFilter{Queue: "a", State: StateScheduled}, []uint64{3}},
		{"page", JobFilter{AfterID: 1, Limit: 2}, []uint64{2, 3}},
		{"last page", JobFilter{AfterID: 3, Limit: 2}, []uint64{4}},
	} {
		got, err := q.Jobs(ctx, tc.f)
		if err != nil || !slices.Equal(jobIDs(got), tc.want) {
			t.Errorf("%s: Jobs(%+v) = %v, %v; want %v", tc.name, tc.f, jobIDs(got), err, tc.want)
		}
	}
	st, _ := q.Stats(ctx)
	if a := st.Queues["a"]; a.Ready != 2 || a.Scheduled != 1 || a.OldestReady != 5*time.Second {
		t.Errorf("stats a = %+v", a)
	}
}
