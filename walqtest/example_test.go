package walqtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/walqtest"
	"github.com/walq/walq/worker"
)

// The app under test: signing up enqueues a welcome email, whose handler
// calls a mail service that fails once before it delivers.

type Welcome struct {
	To string `json:"to"`
}

type Sent struct {
	MessageID string `json:"message_id"`
}

var welcome = worker.NewKind[Welcome, Sent]("email")

func signup(ctx context.Context, q *queue.Queue, email string) (uint64, error) {
	e, err := welcome.Enqueue(ctx, q, Welcome{To: email}, &queue.NewJob{Key: "welcome/" + email})
	return e.ID, err
}

type flakyMailer struct{ calls int }

func (m *flakyMailer) send(ctx context.Context, job *queue.Job, w Welcome) (Sent, error) {
	m.calls++
	if m.calls == 1 {
		return Sent{}, errors.New("421 try again later")
	}
	return Sent{MessageID: "m-" + w.To}, nil
}

// An app's handler tested end to end: one call opens a queue on a mock
// clock, Run drives the job through its retry, and the assertions check
// the outcome. In a real test t is the *testing.T.
func Example() {
	t := &exampleT{}
	defer t.cleanup()

	ctx := context.Background()
	q := walqtest.Open(t, nil)
	mailer := &flakyMailer{}
	q.Handle("email", welcome.Handler(mailer.send))

	id, err := signup(ctx, q.Queue, "ada@example.com")
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	q.AssertEnqueued("email", Welcome{To: "ada@example.com"})

	rep := q.Run(ctx, &walqtest.RunOptions{Advance: true}) // through the 1s backoff
	q.AssertCompleted(id, Sent{MessageID: "m-ada@example.com"})
	q.AssertNoneDead()

	fmt.Printf("%d attempts, %d failed, clock advanced %v\n", rep.Attempts, rep.Failed, rep.Advanced)
	fmt.Println("failures:", t.failures)
	// Output:
	// 2 attempts, 1 failed, clock advanced 1s
	// failures: 0
}

// exampleT stands in for *testing.T in an Example, which has none.
type exampleT struct {
	failures int
	dirs     []string
	cleanups []func()
}

func (t *exampleT) Helper() {}
func (t *exampleT) Errorf(format string, args ...any) {
	t.failures++
	fmt.Printf(format+"\n", args...)
}
func (t *exampleT) Fatalf(format string, args ...any) { t.Errorf(format, args...); panic("fatal") }
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "walqtest-example")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, dir)
	return dir
}
func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}
