package queue

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// historyAcross checks that job id's snapshot is the same live, after a
// reopen, and after a compaction that carries it and another reopen, and
// returns the queue left open.
func historyAcross(t *testing.T, q *Queue, id uint64) *Queue {
	t.Helper()
	want := getT(t, q, id)
	q = reopenAt(t, q)
	if got := getT(t, q, id); !reflect.DeepEqual(got.History, want.History) || got.HistoryDropped != want.HistoryDropped {
		t.Fatalf("after reopen: %d entries, %d dropped; want %d, %d", len(got.History), got.HistoryDropped, len(want.History), want.HistoryDropped)
	}
	st, err := q.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Carried == 0 {
		t.Fatalf("compaction carried nothing: %+v", st)
	}
	q = reopenAt(t, q)
	if got := getT(t, q, id); !reflect.DeepEqual(got.History, want.History) || got.HistoryDropped != want.HistoryDropped {
		t.Fatalf("after a carry and a reopen: %d entries, %d dropped; want %d, %d", len(got.History), got.HistoryDropped, len(want.History), want.HistoryDropped)
	}
	return q
}

// TestHistoryMatchesTokens checks that each history entry names the lease
// of the token that ran it, also when a released attempt and the next one
// share an attempt number, and that this survives a reopen and a carry.
func TestHistoryMatchesTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := openTest(t, t.TempDir(), &Options{Clock: startClock(), SegmentSize: 4 << 10, CompactRatio: -1, Backoff: Backoff{Base: 1}})
	id := enqueueT(t, q, NewJob{Payload: []byte("x")})
	var toks []Token
	for _, end := range []string{"release", "fail", "complete"} {
		mockOf(t, q).Add(1)
		l := leaseT(t, q, DefaultQueue)
		toks = append(toks, l.Token)
		var err error
		switch end {
		case "release":
			err = q.Release(ctx, l.Token)
		case "fail":
			err = q.Fail(ctx, l.Token, errors.New("boom"))
		case "complete":
			err = q.Complete(ctx, l.Token, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(q *Queue, what string) {
		t.Helper()
		h := getT(t, q, id).History
		if len(h) != len(toks) {
			t.Fatalf("%s: %d history entries, want %d", what, len(h), len(toks))
		}
		for i, tok := range toks {
			if h[i].Lease != tok.Lease || h[i].Number != tok.Attempt {
				t.Errorf("%s: entry %d is attempt %d lease %d; its token says attempt %d lease %d",
					what, i, h[i].Number, h[i].Lease, tok.Attempt, tok.Lease)
			}
		}
	}
	check(q, "live")
	if toks[0].Attempt != toks[1].Attempt || toks[0].Lease == toks[1].Lease {
		t.Fatalf("tokens %+v: want the released attempt's number reused under a new lease", toks)
	}
	// Enough records that the job's sit before the tail segment.
	for range 100 {
		enqueueT(t, q, NewJob{Queue: "filler", Payload: make([]byte, 100)})
	}
	q = historyAcross(t, q, id)
	check(q, "after reopen and carry")
}

// TestHistoryBoundedSnoozes snoozes a job (lease, then release) 200 times:
// its history keeps the first HistoryFirst and last HistoryLast attempts
// and counts the rest, live, after a reopen and after a carry.
func TestHistoryBoundedSnoozes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := openTest(t, t.TempDir(), &Options{Clock: startClock(), SegmentSize: 4 << 10, CompactRatio: -1})
	id := enqueueT(t, q, NewJob{Payload: []byte("x")})
	const n = 200
	for range n {
		l := leaseT(t, q, DefaultQueue)
		if err := q.Release(ctx, l.Token); err != nil {
			t.Fatal(err)
		}
	}
	j := getT(t, q, id)
	if len(j.History) != HistoryFirst+HistoryLast || j.HistoryDropped != n-HistoryFirst-HistoryLast {
		t.Fatalf("history of %d entries, %d dropped; want %d and %d", len(j.History), j.HistoryDropped, HistoryFirst+HistoryLast, n-HistoryFirst-HistoryLast)
	}
	if first, last := j.History[HistoryFirst-1].Lease, j.History[HistoryFirst].Lease; first != HistoryFirst || last != n-HistoryLast+1 {
		t.Fatalf("the gap runs from lease %d to lease %d, want %d to %d", first, last, HistoryFirst, n-HistoryLast+1)
	}
	historyAcross(t, q, id)
}
