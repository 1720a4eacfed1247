package worker

import (
	"context"
	"errors"
	"testing"

	"github.com/walq/walq/queue"
)

// TestReportProgress checks that a handler's reports reach the job.
func TestReportProgress(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	id := enqueue(t, q, queue.NewJob{Queue: "import"})
	startRuntime(t, q, nil, map[string]Handler{
		"import": func(ctx context.Context, job *queue.Job) ([]byte, error) {
			for i := range 3 {
				if err := ReportProgress(ctx, int64(i+1), "rows imported"); err != nil {
					return nil, err
				}
			}
			return nil, nil
		},
	})
	if _, err := waitResult(t, q, id); err != nil {
		t.Fatal(err)
	}
	if j := getJob(t, q, id); j.Progress != 3 || j.ProgressNote != "rows imported" {
		t.Fatalf("progress %d %q", j.Progress, j.ProgressNote)
	}
	if err := ReportProgress(context.Background(), 1, ""); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("outside a handler: %v", err)
	}
}
