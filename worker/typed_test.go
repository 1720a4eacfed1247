package worker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
)

type typedArgs struct {
	Name  string
	Count int
}

type typedResult struct {
	Greeting string
}

// TestKindRoundTrip: with each codec, a typed job's arguments reach the
// handler and its result comes back decoded; the payload is the codec's
// encoding, readable by anything that speaks it.
func TestKindRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{nil, JSON(), Msgpack()} {
		name := "default"
		if c != nil {
			name = c.Name()
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			q, _ := openQueue(t, nil)
			k := Kind[typedArgs, typedResult]{Queue: "greet", Codec: c}
			rt := newRuntime(t, q, nil)
			if err := k.Handle(rt, func(ctx context.Context, job *queue.Job, a typedArgs) (typedResult, error) {
				return typedResult{Greeting: strings.Repeat("hi "+a.Name+" ", a.Count)}, nil
			}, nil); err != nil {
				t.Fatal(err)
			}
			if err := rt.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			e, err := k.Enqueue(t.Context(), q, typedArgs{Name: "ada", Count: 2}, &queue.NewJob{Key: "k1", Queue: "ignored"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Wait(t.Context(), q, e.ID)
			if err != nil || got.Greeting != "hi ada hi ada " {
				t.Fatalf("Wait = %+v, %v", got, err)
			}
			j := getJob(t, q, e.ID)
			if j.Queue != "greet" || j.Key != "k1" {
				t.Errorf("job on queue %q key %q, want greet, k1", j.Queue, j.Key)
			}
			if name == "default" && string(j.Payload) != `{"Name":"ada","Count":2}` {
				t.Errorf("default payload %s, want JSON", j.Payload)
			}
		})
	}
}

// TestKindDecodeFailure: a payload that is not the Kind's arguments dead-
// letters the job at once with an error naming the job, type and codec.
func TestKindDecodeFailure(t *testing.T) {
	t.Parallel()
	q, _ := openQueue(t, nil)
	k := NewKind[typedArgs, typedResult]("greet")
	called := false
	rt := newRuntime(t, q, nil)
	if err := k.Handle(rt, func(context.Context, *queue.Job, typedArgs) (typedResult, error) {
		called = true
		return typedResult{}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := rt.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	id := enqueue(t, q, queue.NewJob{Queue: "greet", Payload: []byte(`{"Name": 42}`)})
	_, err := waitResult(t, q, id)
	var dead *queue.DeadError
	if !errors.As(err, &dead) || dead.Attempts != 1 {
		t.Fatalf("Wait: %v, want dead after one attempt", err)
	}
	for _, want := range []string{"does not decode as json worker.typedArgs", "queue \"greet\"", "cannot unmarshal number"} {
		if !strings.Contains(dead.Reason, want) {
			t.Errorf("reason %q lacks %q", dead.Reason, want)
		}
	}
	if called {
		t.Error("the handler ran on a payload that did not decode")
	}
	// Direct: the error is a permanent *DecodeError.
	_, herr := k.Handler(func(context.Context, *queue.Job, typedArgs) (typedResult, error) { return typedResult{}, nil })(
		t.Context(), &queue.Job{ID: 7, Queue: "greet", Payload: []byte("nope")})
	var de *DecodeError
	if !queue.IsPermanent(herr) || !errors.As(herr, &de) || de.Job != 7 {
		t.Errorf("handler error %v, want a permanent *DecodeError for job 7", herr)
	}
	if _, err := NewKind[chan int, int]("x").Job(make(chan int), nil); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("encoding a channel: %v, want ErrInvalid", err)
	}
}
