package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/walq/walq/queue"
)

// Codec turns typed job arguments and results into payload bytes and back.
// JSON is the default; Msgpack is the other one walq offers.
type Codec interface {
	// Name names the codec in errors ("json").
	Name() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes b into v, a pointer.
	Unmarshal(b []byte, v any) error
}

// JSON returns the JSON codec (encoding/json).
func JSON() Codec { return jsonCodec{} }

// Msgpack returns the MessagePack codec (github.com/vmihailenco/msgpack/v5,
// walq's own encoding): smaller and faster than JSON for binary fields.
func Msgpack() Codec { return msgpackCodec{} }

type jsonCodec struct{}

func (jsonCodec) Name() string                    { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

type msgpackCodec struct{}

func (msgpackCodec) Name() string                    { return "msgpack" }
func (msgpackCodec) Marshal(v any) ([]byte, error)   { return msgpack.Marshal(v) }
func (msgpackCodec) Unmarshal(b []byte, v any) error { return msgpack.Unmarshal(b, v) }

// DecodeError is the error recorded for a job whose payload does not
// decode as its Kind's arguments. A Kind's handler returns it wrapped in
// queue.Permanent: the same bytes would fail every retry.
type DecodeError struct {
	// Job is the job's ID and Queue its queue.
	Job   uint64
	Queue string
	// Type is the Go type the payload was decoded into; Codec the codec.
	Type  string
	Codec string
	// Err is the codec's error.
	Err error
}

// Error says which job, which type and why.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("walq/worker: job %d (queue %q): payload does not decode as %s %s: %v", e.Job, e.Queue, e.Codec, e.Type, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Enqueuer is what Kind.Enqueue needs of a queue: *queue.Queue has it.
type Enqueuer interface {
	Enqueue(ctx context.Context, job queue.NewJob) (queue.Enqueued, error)
}

// Waiter is what Kind.Wait needs of a queue: *queue.Queue has it.
type Waiter interface {
	Wait(ctx context.Context, id uint64) ([]byte, error)
}

// Kind is a typed job: its queue, the Go type A of its arguments and R of
// its result, and the codec between them and payload bytes. An app
// declares one per job type, registers a typed handler with Handle and
// enqueues values of A with Enqueue, writing no encoding code. A Kind is
// a value; it is safe for concurrent use.
type Kind[A, R any] struct {
	// Queue is the named queue the jobs go to ("" is queue.DefaultQueue).
	Queue string
	// Codec encodes arguments and results. Defaults to JSON.
	Codec Codec
}

// NewKind returns the Kind of jobs on queue queueName with JSON arguments
// and results.
func NewKind[A, R any](queueName string) Kind[A, R] {
	return Kind[A, R]{Queue: queueName}
}

func (k Kind[A, R]) codec() Codec {
	if k.Codec == nil {
		return jsonCodec{}
	}
	return k.Codec
}

// Job returns a NewJob for args on k's queue: opts (nil for none) with
// Queue set to k.Queue and Payload to args encoded. An encoding failure
// names the type and codec.
func (k Kind[A, R]) Job(args A, opts *queue.NewJob) (queue.NewJob, error) {
	var nj queue.NewJob
	if opts != nil {
		nj = *opts
	}
	b, err := k.codec().Marshal(args)
	if err != nil {
		return nj, fmt.Errorf("%w: encoding %T as %s: %w", queue.ErrInvalid, args, k.codec().Name(), err)
	}
	nj.Queue, nj.Payload = k.Queue, b
	return nj, nil
}

// Enqueue encodes args and enqueues them on k's queue, with the other
// fields of opts (nil for the defaults: a key, a delay, metadata).
func (k Kind[A, R]) Enqueue(ctx context.Context, q Enqueuer, args A, opts *queue.NewJob) (queue.Enqueued, error) {
	nj, err := k.Job(args, opts)
	if err != nil {
		return queue.Enqueued{}, err
	}
	return q.Enqueue(ctx, nj)
}

// Handler returns a Handler that decodes each job's payload as A, calls h,
// and encodes its result as the job's result. A payload that does not
// decode fails the job permanently with a *DecodeError; a result that does
// not encode fails it permanently too. h's errors steer retries as a
// Handler's do (queue.Permanent, queue.RetryAfter, queue.Snooze).
func (k Kind[A, R]) Handler(h func(ctx context.Context, job *queue.Job, args A) (R, error)) Handler {
	c := k.codec()
	return func(ctx context.Context, job *queue.Job) ([]byte, error) {
		var args A
		if err := c.Unmarshal(job.Payload, &args); err != nil {
			return nil, queue.Permanent(&DecodeError{Job: job.ID, Queue: job.Queue,
				Type: fmt.Sprintf("%T", args), Codec: c.Name(), Err: err})
		}
		res, err := h(ctx, job, args)
		if err != nil {
			return nil, err
		}
		b, err := c.Marshal(res)
		if err != nil {
			return nil, queue.Permanent(fmt.Errorf("walq/worker: job %d: encoding its %T result as %s: %w", job.ID, res, c.Name(), err))
		}
		return b, nil
	}
}

// Handle registers h, through Handler, as rt's handler for k's queue.
func (k Kind[A, R]) Handle(rt *Runtime, h func(ctx context.Context, job *queue.Job, args A) (R, error), opts *HandlerOptions) error {
	if h == nil {
		return fmt.Errorf("%w: nil handler for queue %q", queue.ErrInvalid, k.Queue)
	}
	return rt.Handle(k.Queue, k.Handler(h), opts)
}

// Decode decodes a job's result (what Wait returns) as R.
func (k Kind[A, R]) Decode(result []byte) (R, error) {
	var r R
	if err := k.codec().Unmarshal(result, &r); err != nil {
		return r, fmt.Errorf("walq/worker: result does not decode as %s %T: %w", k.codec().Name(), r, err)
	}
	return r, nil
}

// Wait waits for job id's outcome (q.Wait) and decodes its result as R.
func (k Kind[A, R]) Wait(ctx context.Context, q Waiter, id uint64) (R, error) {
	b, err := q.Wait(ctx, id)
	if err != nil {
		var zero R
		return zero, err
	}
	return k.Decode(b)
}
