package queue

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestReleaseKeyOnDeath: a job that may release its key gives it up in
// every way it can die, and only then; a new enqueue of the key makes a new
// job, and the dead job keeps showing the key it had.
func TestReleaseKeyOnDeath(t *testing.T) {
	t.Parallel()
	die := map[string]func(t *testing.T, q *Queue, l *Lease){
		"permanent": func(t *testing.T, q *Queue, l *Lease) {
			if err := q.Fail(t.Context(), l.Token, Permanent(errors.New("bad"))); err != nil {
				t.Fatal(err)
			}
		},
		"last attempt": func(t *testing.T, q *Queue, l *Lease) {
			if err := q.Fail(t.Context(), l.Token, errors.New("boom")); err != nil {
				t.Fatal(err)
			}
		},
		"lease expired": func(t *testing.T, q *Queue, l *Lease) {
			mockOf(t, q).Add(time.Hour)
			noLease(t, q, "") // looks, and records the expiry
		},
	}
	tests := []struct {
		name     string
		opts     Options
		nj       NewJob
		releases bool
	}{
		{"job flag", Options{}, NewJob{Key: "k", MaxAttempts: 1, ReleaseKeyOnDeath: true}, true},
		{"queue option", Options{ReleaseKeysOnDeath: true}, NewJob{Key: "k", MaxAttempts: 1}, true},
		{"neither", Options{}, NewJob{Key: "k", MaxAttempts: 1}, false},
		{"queue option, reserved key", Options{ReleaseKeysOnDeath: true}, NewJob{Key: "walq:k", MaxAttempts: 1}, false},
	}
	for _, tt := range tests {
		for how, kill := range die {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				opts := tt.opts
				q := openTest(t, t.TempDir(), &opts)
				id := enqueueT(t, q, tt.nj)
				if got := getT(t, q, id); got.ReleaseKeyOnDeath != tt.releases || got.KeyReleased {
					t.Fatalf("before death: ReleaseKeyOnDeath %v, KeyReleased %v; want %v, false", got.ReleaseKeyOnDeath, got.KeyReleased, tt.releases)
				}
				l := leaseT(t, q, "")
				// While the job lives, the key is held.
				if r, err := q.Enqueue(ctx, tt.nj); err != nil || r != (Enqueued{ID: id, Duplicate: true}) {
					t.Fatalf("Enqueue while leased = %+v, %v; want duplicate of %d", r, err, id)
				}
				kill(t, q, l)
				dead := getT(t, q, id)
				if dead.State != StateDead || dead.Key != tt.nj.Key || dead.KeyReleased != tt.releases {
					t.Fatalf("dead job: state %s, key %q, released %v; want dead, %q, %v", dead.State, dead.Key, dead.KeyReleased, tt.nj.Key, tt.releases)
				}
				byKey, err := q.GetByKey(ctx, tt.nj.Key)
				r, eerr := q.Enqueue(ctx, tt.nj)
				if eerr != nil {
					t.Fatal(eerr)
				}
				if !tt.releases {
					if err != nil || byKey.ID != id || r != (Enqueued{ID: id, Duplicate: true}) {
						t.Fatalf("kept key: GetByKey = %v, %v; Enqueue = %+v; want job %d", byKey, err, r, id)
					}
					return
				}
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("GetByKey after release = %+v, %v; want ErrNotFound", byKey, err)
				}
				if r.Duplicate || r.ID == id {
					t.Fatalf("Enqueue after release = %+v; want a new job", r)
				}
				if j, err := q.GetByKey(ctx, tt.nj.Key); err != nil || j.ID != r.ID || j.KeyReleased {
					t.Fatalf("GetByKey = %+v, %v; want the new job %d", j, err, r.ID)
				}
			})
		}
	}
}

// TestRequeueReleasedKey: a requeued job that released its key runs
// without it; the key stays with the job that took it, and the requeued
// job cannot die into it again.
func TestRequeueReleasedKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	q := openTest(t, t.TempDir(), &Options{ReleaseKeysOnDeath: true})
	nj := NewJob{Key: "order-7", MaxAttempts: 1}
	first := enqueueT(t, q, nj)
	if err := q.Fail(ctx, leaseT(t, q, "").Token, Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	second := enqueueT(t, q, nj)
	if err := q.Requeue(ctx, []uint64{first}, RequeueOptions{Queue: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	j := getT(t, q, first)
	if j.State != StateReady || j.Key != "order-7" || !j.KeyReleased {
		t.Fatalf("requeued job: %s, key %q, released %v; want ready, order-7, released", j.State, j.Key, j.KeyReleased)
	}
	if h, err := q.GetByKey(ctx, "order-7"); err != nil || h.ID != second {
		t.Fatalf("GetByKey = %+v, %v; want job %d", h, err, second)
	}
	// Both die: the key is free again, and nothing names two jobs.
	for _, name := range []string{"elsewhere", ""} {
		if err := q.Fail(ctx, leaseT(t, q, name).Token, Permanent(errors.New("bad"))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.GetByKey(ctx, "order-7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetByKey after both died: %v; want ErrNotFound", err)
	}
	// Without a release, the requeued job still holds its key.
	q2 := openTest(t, t.TempDir(), nil)
	id := enqueueT(t, q2, nj)
	if err := q2.Fail(ctx, leaseT(t, q2, "").Token, Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	if err := q2.Requeue(ctx, []uint64{id}, RequeueOptions{}); err != nil {
		t.Fatal(err)
	}
	if h, err := q2.GetByKey(ctx, "order-7"); err != nil || h.ID != id || h.KeyReleased {
		t.Fatalf("GetByKey without release = %+v, %v; want job %d", h, err, id)
	}
}

// TestReleasedKeyAcrossCompactionAndReopen: compaction restates a job's
// release policy and a released key (while another job holds the key),
// and replay, with or without compaction, reaches the state the live path
// had.
func TestReleasedKeyAcrossCompactionAndReopen(t *testing.T) {
	t.Parallel()
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dir := t.TempDir()
			mc := startClock()
			q := openTest(t, dir, &Options{Clock: mc})
			nj := NewJob{Key: "k", MaxAttempts: 1, ReleaseKeyOnDeath: true}
			dead := enqueueT(t, q, nj)
			if err := q.Fail(ctx, leaseT(t, q, "").Token, Permanent(errors.New("bad"))); err != nil {
				t.Fatal(err)
			}
			holder := enqueueT(t, q, nj) // takes the released key
			waiting := enqueueT(t, q, NewJob{Key: "other", ReleaseKeyOnDeath: true, Queue: "later"})
			if compact {
				if _, err := q.Compact(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := stateOf(t, q)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q = openTest(t, dir, &Options{Clock: mc})
			after := stateOf(t, q)
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("state after reopen:\n got %+v\nwant %+v", after, before)
			}
			if j := after.gets[dead]; !j.KeyReleased || j.Key != "k" || !j.ReleaseKeyOnDeath {
				t.Fatalf("dead job after reopen: %+v", j)
			}
			if h, err := q.GetByKey(ctx, "k"); err != nil || h.ID != holder {
				t.Fatalf("GetByKey(k) = %+v, %v; want %d", h, err, holder)
			}
			// The restated policy still works: the waiting job, which
			// compaction carried, releases its key when it dies.
			if err := q.Fail(ctx, leaseT(t, q, "later").Token, Permanent(errors.New("bad"))); err != nil {
				t.Fatal(err)
			}
			if j := getT(t, q, waiting); !j.KeyReleased {
				t.Fatalf("carried job did not release its key: %+v", j)
			}
			if _, err := q.GetByKey(ctx, "other"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetByKey(other): %v; want ErrNotFound", err)
			}
		})
	}
}

// TestReleaseKeyOnDeathConcurrent: workers fail jobs to death while
// producers enqueue the same keys and a compactor runs; after a reopen the
// state is what the live queue showed, every key names at most one job and
// never a dead one, and each unfinished job holds its key.
func TestReleaseKeyOnDeathConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	mc := startClock()
	opts := &Options{Clock: mc, ReleaseKeysOnDeath: true, SegmentSize: 64 << 10}
	q := openTest(t, dir, opts)
	const (
		keys      = 4
		producers = 4
		workers   = 3
		perProd   = 60
	)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := map[uint64]string{} // job → key, for every job a producer made
	deaths := 0
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProd {
				k := fmt.Sprintf("key-%d", (p+i)%keys)
				r, err := q.Enqueue(ctx, NewJob{Key: k, MaxAttempts: 1 + i%2, Payload: []byte(k)})
				if err != nil {
					t.Error(err)
					return
				}
				if !r.Duplicate {
					mu.Lock()
					created[r.ID] = k
					mu.Unlock()
				}
			}
		}()
	}
	wctx, stop := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	fail := func(l *Lease) error {
		if err := q.Fail(ctx, l.Token, errors.New("boom")); err != nil {
			return err
		}
		if l.Token.Attempt == l.Job.MaxAttempts {
			mu.Lock()
			deaths++
			mu.Unlock()
		}
		return nil
	}
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for {
				l, err := q.Lease(wctx, "")
				if wctx.Err() != nil {
					return
				}
				if err == nil {
					err = fail(l)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wwg.Add(1)
	go func() { // the compactor
		defer wwg.Done()
		for wctx.Err() == nil {
			if _, err := q.Compact(wctx); err != nil && wctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	stop()
	wwg.Wait()
	if t.Failed() {
		return
	}
	// Kill what is left: retries are due after their backoff.
	for {
		l, err := q.TryLease(ctx, "")
		if errors.Is(err, ErrNoJob) {
			if st, err := q.Stats(ctx); err != nil || st.Queues[DefaultQueue].Scheduled == 0 {
				break
			}
			mc.Add(time.Hour)
			continue
		}
		if err == nil {
			err = fail(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	before := stateOf(t, q)
	checkKeyNames(t, before, created, deaths)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, opts)
	after := stateOf(t, q)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("state after reopen differs:\n got %+v\nwant %+v", after.stats, before.stats)
	}
	for k := range keys {
		key := fmt.Sprintf("key-%d", k)
		j, err := q.GetByKey(ctx, key)
		if err == nil && (j.State == StateDead || j.KeyReleased) {
			t.Errorf("GetByKey(%s) = dead job %d (released %v)", key, j.ID, j.KeyReleased)
		}
	}
}

// checkKeyNames checks a state of TestReleaseKeyOnDeathConcurrent: every
// job a producer made exists, with its key; the dead ones released it;
// at most one job per key holds it, and only an unfinished one.
func checkKeyNames(t *testing.T, s fullState, created map[uint64]string, deaths int) {
	t.Helper()
	holders := map[string][]uint64{}
	dead := 0
	for id, k := range created {
		j := s.gets[id]
		if j == nil {
			t.Fatalf("job %d (key %s) is gone", id, k)
		}
		if j.Key != k {
			t.Fatalf("job %d: key %q, want %q", id, j.Key, k)
		}
		switch {
		case j.State == StateDead:
			dead++
			if !j.KeyReleased {
				t.Errorf("dead job %d kept its key %s", id, k)
			}
		case j.KeyReleased:
			t.Errorf("job %d is %s but released its key", id, j.State)
		default:
			holders[k] = append(holders[k], id)
		}
	}
	for k, ids := range holders {
		if len(ids) > 1 {
			t.Errorf("key %s names %d jobs: %v", k, len(ids), ids)
		}
	}
	if dead != deaths || len(s.gets) != len(created) {
		t.Errorf("%d dead jobs of %d, workers saw %d deaths", dead, len(created), deaths)
	}
}

// TestReleasePolicyNotLostToCheckpoint: an index checkpoint that cannot
// restate a job's release policy is not written, so a reopen still knows
// that the job releases its key when it dies.
func TestReleasePolicyNotLostToCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	mc := startClock()
	q := openTest(t, dir, &Options{Clock: mc})
	id := enqueueT(t, q, NewJob{Key: "k", ReleaseKeyOnDeath: true})
	for i := range 2000 { // enough records for a checkpoint at Close
		enqueueT(t, q, NewJob{Queue: "filler", Payload: []byte{byte(i)}})
	}
	if _, err := q.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, dir, &Options{Clock: mc})
	if err := q.Fail(ctx, leaseT(t, q, "").Token, Permanent(errors.New("bad"))); err != nil {
		t.Fatal(err)
	}
	if j := getT(t, q, id); !j.KeyReleased || !j.ReleaseKeyOnDeath {
		t.Fatalf("after reopen the job lost its policy: %+v (checkpoint %+v)", j, q.Recovery().Checkpoint)
	}
}
