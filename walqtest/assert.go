package walqtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/walq/walq/queue"
)

// The assertions report a failure with t.Errorf (the test goes on) and
// describe what they found instead: the jobs on the queue, the job's state
// and last error, the dead jobs and why they died.

// AssertEnqueued checks that a job on the named queue has a payload equal
// to payload and returns the first such job (nil if none). payload is
// compared as bytes if it is a []byte or a string, else as JSON: the job's
// payload is decoded into a value of payload's type and compared with it
// (so a typed job's arguments can be given as the struct).
func (q *Queue) AssertEnqueued(queueName string, payload any) *queue.Job {
	q.t.Helper()
	if queueName == "" {
		queueName = queue.DefaultQueue
	}
	js := q.jobs(queueName)
	for _, j := range js {
		if same(j.Payload, payload) {
			return j
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "walqtest: no job on queue %q has payload %s", queueName, show(payload))
	if len(js) == 0 {
		fmt.Fprintf(&b, "; the queue has no jobs")
	} else {
		fmt.Fprintf(&b, "; its %d jobs:", len(js))
		for _, j := range js {
			fmt.Fprintf(&b, "\n\tjob %d (%s): %s", j.ID, j.State, show(j.Payload))
		}
	}
	q.t.Errorf("%s", b.String())
	return nil
}

// AssertCompleted checks that job id completed with a result equal to
// result (compared as AssertEnqueued compares payloads); a nil result
// checks only that it completed.
func (q *Queue) AssertCompleted(id uint64, result any) {
	q.t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		q.t.Errorf("walqtest: job %d: %v", id, err)
		return
	}
	if j.State != queue.StateCompleted {
		msg := fmt.Sprintf("walqtest: job %d (queue %q) is %s after %d attempts, not completed", id, j.Queue, j.State, j.Attempt)
		if j.LastError != "" {
			msg += "; last error: " + j.LastError
		}
		q.t.Errorf("%s", msg)
		return
	}
	if result != nil && !same(j.Result, result) {
		q.t.Errorf("walqtest: job %d (queue %q) completed with result %s, want %s", id, j.Queue, show(j.Result), show(result))
	}
}

// AssertNoneDead checks that no job is in the dead-letter queue.
func (q *Queue) AssertNoneDead() {
	q.t.Helper()
	dead, err := q.Dead(context.Background(), queue.DeadFilter{})
	if err != nil {
		q.t.Errorf("walqtest: listing dead jobs: %v", err)
		return
	}
	if len(dead) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "walqtest: %d dead jobs, want none:", len(dead))
	for _, j := range dead {
		fmt.Fprintf(&b, "\n\tjob %d (queue %q) after %d attempts: %s", j.ID, j.Queue, j.Attempt, j.LastError)
	}
	q.t.Errorf("%s", b.String())
}

// jobs returns the jobs of a queue with their payloads.
func (q *Queue) jobs(name string) []*queue.Job {
	ctx := context.Background()
	list, err := q.Jobs(ctx, queue.JobFilter{Queue: name})
	if err != nil {
		q.t.Fatalf("walqtest: listing jobs: %v", err)
	}
	out := make([]*queue.Job, 0, len(list))
	for _, j := range list {
		full, err := q.Get(ctx, j.ID)
		if err != nil {
			q.t.Fatalf("walqtest: job %d: %v", j.ID, err)
		}
		out = append(out, full)
	}
	return out
}

// same reports whether stored bytes b equal want (see AssertEnqueued).
func same(b []byte, want any) bool {
	switch w := want.(type) {
	case []byte:
		return bytes.Equal(b, w)
	case string:
		return string(b) == w
	}
	v := reflect.New(reflect.TypeOf(want))
	if err := json.Unmarshal(b, v.Interface()); err != nil {
		return false
	}
	return reflect.DeepEqual(v.Elem().Interface(), want)
}

// show prints a payload or result for a failure message.
func show(v any) string {
	switch v := v.(type) {
	case []byte:
		return fmt.Sprintf("%q", v)
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%+v", v)
}
