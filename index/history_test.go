package index

import (
	"fmt"
	"reflect"
	"testing"

	wlog "github.com/walq/walq/log"
)

// histIndex is an index with one job (ID 1, queue "q") and helpers that
// drive it.
type histIndex struct {
	t   *testing.T
	x   *Index
	pos Pos
	now int64
}

func newHistIndex(t *testing.T) *histIndex {
	h := &histIndex{t: t, x: New(), now: 1000}
	h.x.Promote(h.now)
	h.apply(wlog.Record{Kind: wlog.KindEnqueued, Job: 1, At: h.now, RunAt: h.now, Queue: "q", MaxAttempts: 3})
	return h
}

func (h *histIndex) apply(r wlog.Record) {
	h.t.Helper()
	h.pos.Index++
	h.now++
	if err := h.x.Apply(&r, h.pos); err != nil {
		h.t.Fatal(err)
	}
}

func (h *histIndex) job() *Job { return h.x.Job(1) }

// lease leases job 1 and checks that the new history entry names the lease
// a token would carry.
func (h *histIndex) lease() {
	h.t.Helper()
	j := h.job()
	h.apply(wlog.Record{Kind: wlog.KindLeased, Job: 1, At: h.now, Attempt: int64(j.Attempt) + 1, Deadline: h.now + 100})
	last := j.History()[len(j.History())-1]
	if last.Lease != j.Leases() || last.Number != j.Attempt {
		h.t.Fatalf("running entry says attempt %d lease %d; the job says %d and %d", last.Number, last.Lease, j.Attempt, j.Leases())
	}
}

func (h *histIndex) end(k wlog.Kind) {
	h.t.Helper()
	h.apply(wlog.Record{Kind: k, Job: 1, At: h.now, Attempt: int64(h.job().Attempt), RunAt: h.now, Error: k.String()})
}

// numbers lists a history's entries as "outcome attempt/lease".
func numbers(hist []wlog.Attempt) []string {
	var out []string
	for _, a := range hist {
		out = append(out, fmt.Sprintf("%s %d/%d", a.Outcome, a.Number, a.Lease))
	}
	return out
}

// TestHistoryNumbers checks that each entry names its attempt number (a
// released attempt shares it with the next; a requeue restarts the count)
// and its lease number (unique, counting every lease).
func TestHistoryNumbers(t *testing.T) {
	t.Parallel()
	h := newHistIndex(t)
	h.lease()
	h.end(wlog.KindReleased)
	h.lease()
	h.end(wlog.KindFailed)
	h.lease()
	h.end(wlog.KindDead)
	h.apply(wlog.Record{Kind: wlog.KindRequeued, Job: 1, At: h.now, RunAt: h.now})
	h.lease()
	want := []string{"released 1/1", "failed 1/2", "dead 2/3", "requeued 0/0", "kind(0) 1/4"}
	if got := numbers(h.job().History()); !reflect.DeepEqual(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
}

// TestHistoryBound snoozes a job (lease and release) 200 times: it keeps
// the first 16 and last 48 entries and counts the 136 between, and a
// carry of that history restates the same job.
func TestHistoryBound(t *testing.T) {
	t.Parallel()
	h := newHistIndex(t)
	const n = 200
	for range n {
		h.lease()
		h.end(wlog.KindReleased)
	}
	j := h.job()
	hist := j.History()
	if len(hist) != HistoryFirst+HistoryLast || j.Dropped() != n-HistoryFirst-HistoryLast || j.Leases() != n {
		t.Fatalf("%d entries, %d dropped, %d leases; want %d, %d, %d",
			len(hist), j.Dropped(), j.Leases(), HistoryFirst+HistoryLast, n-HistoryFirst-HistoryLast, n)
	}
	for i, a := range hist {
		want := int32(i + 1)
		if i >= HistoryFirst {
			want = int32(n - len(hist) + i + 1)
		}
		if a.Lease != want || a.Number != 1 || a.Outcome != wlog.KindReleased {
			t.Fatalf("entry %d: %s %d/%d, want released 1/%d", i, a.Outcome, a.Number, a.Lease, want)
		}
	}
	if cap(hist) > 2*(HistoryFirst+HistoryLast) {
		t.Errorf("history capacity %d: the slice keeps growing", cap(hist))
	}

	// A carry restates it; a fresh index folds the carry to the same.
	c := New()
	r := wlog.Record{Kind: wlog.KindCarry, Job: 1, At: 1, Created: 1, Queue: "q", Payload: []byte{}, RunAt: h.now,
		MaxAttempts: 3, Attempt: int64(j.Attempt), State: uint8(Pending), History: hist}
	if err := c.Apply(&r, Pos{Index: 1}); err != nil {
		t.Fatal(err)
	}
	cj := c.Job(1)
	if !reflect.DeepEqual(cj.History(), hist) || cj.Dropped() != j.Dropped() || cj.Leases() != j.Leases() {
		t.Fatalf("carried: %d entries, %d dropped, %d leases; want %d, %d, %d",
			len(cj.History()), cj.Dropped(), cj.Leases(), len(hist), j.Dropped(), j.Leases())
	}
}

// TestHistoryRestoreOldFormat folds a carry written before history entries
// carried their numbers: a complete, unbounded history. The numbers are
// counted from the first entry, and the bound applies.
func TestHistoryRestoreOldFormat(t *testing.T) {
	t.Parallel()
	var old []wlog.Attempt
	for i := range 99 {
		k := wlog.KindReleased
		if i%3 == 2 {
			k = wlog.KindFailed
		}
		old = append(old, wlog.Attempt{Started: int64(i), Ended: int64(i), Outcome: k})
	}
	old = append(old, wlog.Attempt{Started: 200, Ended: 200, Outcome: wlog.KindRequeued}, wlog.Attempt{Started: 201})
	x := New()
	r := wlog.Record{Kind: wlog.KindCarry, Job: 1, At: 1, Created: 1, Queue: "q", Payload: []byte{}, MaxAttempts: 50,
		Attempt: 1, Deadline: 500, State: uint8(Leased), History: old}
	if err := x.Apply(&r, Pos{Index: 1}); err != nil {
		t.Fatal(err)
	}
	j := x.Job(1)
	hist := j.History()
	// 99 attempts before the marker: 33 failed (attempts 1..33), each
	// after two releases under the same number; then the running one.
	if j.Leases() != 100 || j.Dropped() != 100-(HistoryFirst+HistoryLast-1) || len(hist) != HistoryFirst+HistoryLast {
		t.Fatalf("%d leases, %d dropped, %d entries", j.Leases(), j.Dropped(), len(hist))
	}
	wantFirst := []string{"released 1/1", "released 1/2", "failed 1/3", "released 2/4"}
	if got := numbers(hist[:4]); !reflect.DeepEqual(got, wantFirst) {
		t.Errorf("first entries %v, want %v", got, wantFirst)
	}
	wantLast := []string{"released 33/97", "released 33/98", "failed 33/99", "requeued 0/0", "kind(0) 1/100"}
	if got := numbers(hist[len(hist)-5:]); !reflect.DeepEqual(got, wantLast) {
		t.Errorf("last entries %v, want %v", got, wantLast)
	}
	if err := x.Check(); err != nil {
		t.Fatal(err)
	}
}
