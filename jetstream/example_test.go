package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/walq/walq/jetstream"
	"github.com/walq/walq/queue"
)

// natsURL starts an in-process nats-server with JetStream, standing in for
// the one README.md starts with `nats-server -js`.
func natsURL() (string, func()) {
	dir, err := os.MkdirTemp("", "walq-nats")
	if err != nil {
		panic(err)
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		panic("nats-server not ready")
	}
	return s.ClientURL(), func() { s.Shutdown(); os.RemoveAll(dir) }
}

// Example opens the JetStream engine and runs the README's quick start on
// it: only the opening differs from the WAL engine.
func Example() {
	url, stop := natsURL()
	defer stop()
	ctx := context.Background()

	nc, err := nats.Connect(url) // e.g. "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	q, err := jetstream.Open(ctx, nc, &jetstream.Options{Replicas: 1}) // 3 on a cluster
	if err != nil {
		panic(err)
	}
	defer q.Close()

	// From here on, the same code as with queue.Open.
	job, err := q.Enqueue(ctx, queue.NewJob{Queue: "email", Payload: []byte("welcome ada@example.com"), Key: "welcome/ada"})
	if err != nil {
		panic(err)
	}
	lease, err := q.Lease(ctx, "email")
	if err != nil {
		panic(err)
	}
	fmt.Printf("sending %q (attempt %d)\n", lease.Job.Payload, lease.Token.Attempt)
	if err := q.Complete(ctx, lease.Token, []byte("250 OK")); err != nil {
		panic(err)
	}
	result, err := q.Wait(ctx, job.ID)
	if err != nil {
		panic(err)
	}
	fmt.Printf("job %d: %s\n", job.ID, result)
	// Output:
	// sending "welcome ada@example.com" (attempt 1)
	// job 1: 250 OK
}
