package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

var enqueueCmd = &command{
	name:    "enqueue",
	args:    "DIR (--data TEXT | --file FILE | -)",
	group:   "Change (takes the write lock)",
	summary: "add a job (for scripts and tests)",
	help: `Add one job, durable when walq returns. The payload comes from --data, from
--file, or from standard input ("-"). With --key, a key the queue already
holds enqueues nothing: walq names the job that holds it. The directory
must be a queue already, unless --create makes a new one.`,
	example: `walq enqueue /var/lib/myapp/queue --queue emails --key welcome:42 --data '{"user":42}'
echo hello | walq enqueue /tmp/q --create --delay 30s -`,
	run: runEnqueue,
}

// enqueueJSON is the output of enqueue --json.
type enqueueJSON struct {
	ID        uint64 `json:"id"`
	Queue     string `json:"queue"`
	Duplicate bool   `json:"duplicate"`
}

func runEnqueue(a *app, c *command, args []string) error {
	fset := flagSet(c)
	name := fset.String("queue", queue.DefaultQueue, "the named `queue` to add the job to")
	key := fset.String("key", "", "idempotency `key`: if the queue holds it, nothing is added")
	delay := durationFlag(fset, "delay", "run the job after this `duration`")
	priority := fset.Int("priority", 0, "higher `n` runs first among ready jobs")
	attempts := fset.Int("max-attempts", 0, "run the job at most `n` times (default: the queue's)")
	data := fset.String("data", "", "the payload as `text`")
	file := fset.String("file", "", "read the payload from `file`")
	create := fset.Bool("create", false, "create the queue directory if it is new or empty")
	asJSON := fset.Bool("json", false, "print JSON")
	pos, err := a.parse(c, fset, args)
	if err != nil {
		return err
	}
	stdin := len(pos) == 2 && pos[1] == "-"
	if stdin {
		pos = pos[:1]
	}
	dir, err := oneDir(pos)
	if err != nil {
		return err
	}
	if *priority < math.MinInt32 || *priority > math.MaxInt32 {
		return usagef("--priority %d is out of range: want %d to %d", *priority, math.MinInt32, math.MaxInt32)
	}
	if *attempts < 0 {
		return usagef("--max-attempts %d is negative: want 0 or more (0: the queue's default)", *attempts)
	}
	payload, err := a.payload(fset, *data, *file, stdin)
	if err != nil {
		return err
	}
	q, err := a.openForEnqueue(dir, *create)
	if err != nil {
		r, err := a.adminOf(dir, err)
		if err != nil {
			return err
		}
		var out web.EnqueueJSON
		req := web.ActionRequest{Queue: *name, Key: *key, PayloadBase64: base64.StdEncoding.EncodeToString(payload),
			DelaySeconds: delay.d.Seconds(), Priority: int32(*priority), MaxAttempts: *attempts}
		if err := r.call(a.ctx, "enqueue", req, &out); err != nil {
			return fmt.Errorf("enqueue: %s", err)
		}
		return a.printEnqueued(enqueueJSON(out), *key, *asJSON)
	}
	defer q.Close()
	res, err := q.Enqueue(a.ctx, queue.NewJob{Queue: *name, Key: *key, Payload: payload, Delay: delay.d,
		Priority: int32(*priority), MaxAttempts: *attempts})
	if err != nil {
		return fmt.Errorf("enqueue: %s", oneLine(err))
	}
	// The job's queue is the holder's for a duplicate key (whatever
	// --queue said), and the default one for an empty --queue.
	in := *name
	if in == "" {
		in = queue.DefaultQueue
	}
	if res.Duplicate {
		j, err := q.Get(a.ctx, res.ID)
		if err != nil {
			return jobError(dir, res.ID, err)
		}
		in = j.Queue
	}
	if err := q.Close(); err != nil {
		return err
	}
	return a.printEnqueued(enqueueJSON{ID: res.ID, Queue: in, Duplicate: res.Duplicate}, *key, *asJSON)
}

// printEnqueued reports an enqueue.
func (a *app) printEnqueued(res enqueueJSON, key string, asJSON bool) error {
	switch {
	case asJSON:
		return writeJSON(a.stdout, res)
	case res.Duplicate:
		fmt.Fprintf(a.stdout, "duplicate: key %q is held by job %d in queue %s; nothing enqueued\n", key, res.ID, res.Queue)
	default:
		fmt.Fprintf(a.stdout, "enqueued job %d in queue %s\n", res.ID, res.Queue)
	}
	return nil
}

// payload reads the job's payload from exactly one of its sources.
func (a *app) payload(fset *flag.FlagSet, data, file string, stdin bool) ([]byte, error) {
	n := 0
	fset.Visit(func(f *flag.Flag) {
		if f.Name == "data" || f.Name == "file" {
			n++
		}
	})
	if stdin {
		n++
	}
	switch {
	case n == 0:
		return nil, usagef("no payload: give --data TEXT, --file FILE, or - to read standard input")
	case n > 1:
		return nil, usagef("give one payload source: --data, --file or -")
	case stdin:
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		return b, nil
	}
	return []byte(data), nil
}

// openForEnqueue opens dir for writing; with create, a missing or empty
// directory becomes a new queue (a directory holding anything else must be
// a queue already).
func (a *app) openForEnqueue(dir string, create bool) (*queue.Queue, error) {
	if !create {
		return a.openWriter(dir)
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, checkDir(dir)
	case len(ents) > 0:
		return a.openWriter(dir)
	}
	return a.openWriterUnchecked(dir)
}
