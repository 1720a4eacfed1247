package queue

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestWriteAmplification runs a steady enqueue → lease → complete workload
// with the background compactor on and retention purging finished jobs,
// and measures write amplification: bytes written to the log (records,
// frames, compaction's carries and checkpoints) ÷ payload bytes enqueued.
// It bounds the figure, so that a compactor that restates an unchanged live
// set on every pass (as it once did) fails here. WALQ_WA_JOBS sets the
// number of jobs (default 6,000); run with -v to see the figures.
func TestWriteAmplification(t *testing.T) {
	jobs := 6000
	if s := os.Getenv("WALQ_WA_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("WALQ_WA_JOBS=%q: %v", s, err)
		}
		jobs = n
	}
	for _, tc := range []struct {
		name  string
		retry int // one job in retry fails its first attempt
	}{
		{"steady", 0},
		{"retry=10%", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			q := openTest(t, t.TempDir(), &Options{SegmentSize: 64 << 10, KeyRetention: 5 * time.Second, Durability: None,
				MaintenanceInterval: time.Second, Backoff: Backoff{Base: 50 * time.Millisecond}})
			mc := mockOf(t, q)
			const payload = 256
			p := make([]byte, payload)
			for i := range jobs {
				enqueueT(t, q, NewJob{Payload: p})
				if i%10 == 9 { // the mock's Add yields for 1ms: not every job
					mc.Add(200 * time.Millisecond)
				}
				l, err := q.TryLease(ctx, "")
				if errors.Is(err, ErrNoJob) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if tc.retry > 0 && i%tc.retry == 0 && l.Token.Attempt == 1 {
					err = q.Fail(ctx, l.Token, errors.New("retry me"))
				} else {
					err = q.Complete(ctx, l.Token, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			st, err := q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			wa := float64(st.Log.Appended) / float64(jobs*payload)
			t.Logf("%d jobs of %d B: %d B written, write amplification %.2f; log %d B in %d segments, live %d B; last compaction %+v",
				jobs, payload, st.Log.Appended, wa, st.Log.Size, st.Log.Segments, st.Log.LiveBytes, st.LastCompaction)
			if wa > 3 {
				t.Errorf("write amplification %.2f, want at most 3", wa)
			}
			if st.Log.Size > 8*st.Log.LiveBytes+4*(64<<10) {
				t.Errorf("log %d B for %d live bytes: compaction did not keep up", st.Log.Size, st.Log.LiveBytes)
			}
		})
	}
}
