package jetstream

import (
	"errors"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
)

// TestMetaAndGroup checks that a job's metadata travels with it as on the
// WAL engine (returned by Lease and Get, bounded by queue.CheckMeta), and
// that an ordered group, a WAL-engine feature, is refused rather than
// silently ignored, as is releasing a dead job's key.
func TestMetaAndGroup(t *testing.T) {
	q := openR1(t, nil)
	ctx := ctxT(t)
	meta := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "note": "line 1\nline 2 <b>"}
	e, err := q.Enqueue(ctx, queue.NewJob{Queue: "m", Payload: []byte("p"), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	l, err := q.Lease(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if l.Job.ID != e.ID || len(l.Job.Meta) != 2 || l.Job.Meta["note"] != meta["note"] || l.Job.Meta["traceparent"] != meta["traceparent"] {
		t.Fatalf("leased job's Meta = %q, want %q", l.Job.Meta, meta)
	}
	if j, err := q.Get(ctx, e.ID); err != nil || j.Meta["note"] != meta["note"] {
		t.Fatalf("Get: Meta = %q, %v", j.Meta, err)
	}
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "m", Meta: map[string]string{"": "x"}})
	var me *queue.MetaError
	if !errors.As(err, &me) || !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("empty metadata key: %v, want a *queue.MetaError matching ErrInvalid", err)
	}
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "m", Group: "customer-42"})
	if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "Group") {
		t.Fatalf("grouped job: %v, want ErrInvalid naming Group", err)
	}
	_, err = q.Enqueue(ctx, queue.NewJob{Queue: "m", Key: "k", ReleaseKeyOnDeath: true})
	if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "ReleaseKeyOnDeath") {
		t.Fatalf("ReleaseKeyOnDeath: %v, want ErrInvalid naming it", err)
	}
}
