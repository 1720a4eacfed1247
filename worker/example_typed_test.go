package worker_test

import (
	"context"
	"fmt"
	"os"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/worker"
)

// SendEmail is the arguments of an "email" job; Receipt its result.
type SendEmail struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

type Receipt struct {
	MessageID string `json:"message_id"`
}

// A typed job: the handler takes SendEmail and returns a Receipt, the
// producer enqueues a SendEmail, and nobody writes encoding code (JSON by
// default; set Kind.Codec to worker.Msgpack() for MessagePack).
func ExampleKind() {
	dir, err := os.MkdirTemp("", "walq-typed-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	ctx := context.Background()

	emails := worker.NewKind[SendEmail, Receipt]("email")

	rt, err := worker.New(q, nil)
	if err != nil {
		panic(err)
	}
	err = emails.Handle(rt, func(ctx context.Context, job *queue.Job, args SendEmail) (Receipt, error) {
		fmt.Printf("sending %q to %s (attempt %d)\n", args.Subject, args.To, job.Attempt)
		return Receipt{MessageID: fmt.Sprintf("msg-%d", job.ID)}, nil
	}, nil)
	if err != nil {
		panic(err)
	}
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	defer rt.Stop(ctx)

	job, err := emails.Enqueue(ctx, q, SendEmail{To: "ada@example.com", Subject: "Welcome"}, nil)
	if err != nil {
		panic(err)
	}
	receipt, err := emails.Wait(ctx, q, job.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("receipt:", receipt.MessageID)
	// Output:
	// sending "Welcome" to ada@example.com (attempt 1)
	// receipt: msg-1
}
