package main

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/walq/walq/queue"
)

// The change commands (cancel, requeue, purge) follow one rule: every job
// they name is checked before anything changes, and if one cannot be
// changed (unknown, or in the wrong state) nothing changes and walq says
// which and why. --dry-run runs the same checks on a read-only open (so it
// works while an application holds the queue) and changes nothing; --json
// prints the outcome as changeJSON.

// changeJSON is the output of cancel, requeue and purge with --json.
type changeJSON struct {
	// DryRun reports that nothing was changed: Count and IDs are what
	// would have been.
	DryRun bool `json:"dry_run"`
	// Count is how many jobs changed; IDs lists them in ID order.
	Count int      `json:"count"`
	IDs   []uint64 `json:"ids"`
}

// change is one run of a change command: what it does to which jobs.
type change struct {
	verb   string // past tense, as printed: "cancelled"
	would  string // the dry run's verb: "would cancel"
	noun   string // what is counted: "job", "dead job"
	dryRun bool
	asJSON bool
}

// report prints what the change did (or would do) to ids.
func (a *app) report(c change, ids []uint64) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	if c.asJSON {
		return writeJSON(a.stdout, changeJSON{DryRun: c.dryRun, Count: len(ids), IDs: append([]uint64{}, ids...)})
	}
	verb := c.verb
	if c.dryRun {
		verb = c.would
	}
	line := verb + " " + plural(len(ids), c.noun)
	if len(ids) > 0 {
		line += ": " + idList(ids)
	}
	if c.dryRun {
		line += " (dry run: nothing changed)"
	}
	_, err := fmt.Fprintln(a.stdout, line)
	return err
}

// idListMax is how many IDs a change's text output lists.
const idListMax = 20

// idList renders IDs as "3, 5, 8", cut after idListMax.
func idList(ids []uint64) string {
	var b strings.Builder
	for i, id := range ids {
		if i == idListMax {
			fmt.Fprintf(&b, ", … (%d more; --json lists them all)", len(ids)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, id)
	}
	return b.String()
}

// openForChange opens dir read-only for a dry run, for writing otherwise.
func (a *app) openForChange(dir string, dryRun bool) (*queue.Queue, error) {
	if dryRun {
		return a.openReadOnly(dir)
	}
	return a.openWriter(dir)
}

// checkJobs checks, before anything changes, that every job exists and
// is in a state ok accepts; want says which states those are.
func (a *app) checkJobs(q *queue.Queue, dir string, ids []uint64, ok func(queue.JobState) bool, want string) error {
	for _, id := range ids {
		j, err := q.Get(a.ctx, id)
		if errors.Is(err, queue.ErrNotFound) {
			return fmt.Errorf("job %d not found in %s (never enqueued, or purged); nothing changed", id, dir)
		}
		if err != nil {
			return err
		}
		if !ok(j.State) {
			return fmt.Errorf("job %d is %s; %s; nothing changed", id, j.State, want)
		}
	}
	return nil
}

// changeError explains an error from a change the checks passed: the
// queue refused it after all (another writer cannot hold the lock, so
// this is an I/O failure, or a check the CLI does not know).
func changeError(dir string, err error) error {
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("%s in %s (never enqueued, or purged)", oneLine(err), dir)
	}
	return errors.New(oneLine(err))
}

// changeChunk is how many jobs one atomic change of --all or --dead
// covers, so that each log entry stays small.
const changeChunk = 10000

// inChunks applies fn to ids changeChunk at a time and returns how many
// it changed before any error.
func inChunks(ids []uint64, fn func([]uint64) error) (int, error) {
	for i := 0; i < len(ids); i += changeChunk {
		if err := fn(ids[i:min(i+changeChunk, len(ids))]); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// deadIDs lists the IDs of the dead jobs f selects.
func (a *app) deadIDs(q *queue.Queue, f queue.DeadFilter) ([]uint64, error) {
	jobs, err := q.Dead(a.ctx, f)
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids, nil
}

// noteUnknownQueue says on stderr, when a --queue filter names a queue
// the directory does not have, which queues it has: a typo otherwise
// looks like an empty queue.
func (a *app) noteUnknownQueue(q *queue.Queue, dir, name string) {
	if name == "" {
		return
	}
	st, err := q.Stats(a.ctx)
	if err != nil {
		return
	}
	if _, ok := st.Queues[name]; ok {
		return
	}
	names := make([]string, 0, len(st.Queues))
	for n := range st.Queues {
		names = append(names, n)
	}
	sort.Strings(names)
	has := "it has no queues"
	if len(names) > 0 {
		has = "its queues are " + strings.Join(names, ", ")
	}
	fmt.Fprintf(a.stderr, "walq: note: there is no queue named %q in %s; %s\n", name, dir, has)
}
