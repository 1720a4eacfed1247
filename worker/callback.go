package worker

import (
	"encoding/json"
	"strconv"

	"github.com/walq/walq/queue"
)

// CallbackPayload is the payload of a callback job made by Callback.
type CallbackPayload struct {
	// Job is the completed job's ID, Queue its queue and Key its key.
	Job   uint64 `json:"job"`
	Queue string `json:"queue"`
	Key   string `json:"key,omitempty"`
	// Result is the completed job's result.
	Result []byte `json:"result,omitempty"`
}

// Callback returns an Options.OnComplete that enqueues, with every
// completion and in the same atomic log entry, a callback job on queue
// callbackQueue whose payload is a JSON CallbackPayload. Register a handler
// on callbackQueue that delivers it (a webhook POST, say): it is retried
// with backoff and dead-lettered like any job, and its key
// ("walq:callback:<job id>", in the "walq:" key namespace that walq
// reserves for its own keys) makes it exactly one callback per completion.
// Completions of callbackQueue's own jobs make no callbacks.
func Callback(callbackQueue string) func(*queue.Job, []byte) []queue.NewJob {
	return func(j *queue.Job, result []byte) []queue.NewJob {
		if j.Queue == callbackQueue {
			return nil
		}
		b, err := json.Marshal(CallbackPayload{Job: j.ID, Queue: j.Queue, Key: j.Key, Result: result})
		if err != nil {
			return nil
		}
		return []queue.NewJob{{Queue: callbackQueue, Payload: b, Key: "walq:callback:" + strconv.FormatUint(j.ID, 10)}}
	}
}
