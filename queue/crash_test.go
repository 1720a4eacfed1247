package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashKill kills a process that uses the queue at full speed with
// SIGKILL, again and again, and checks what every kill leaves behind.
//
// The test binary re-executes itself as a child (TestCrashChild) that opens
// the queue directory (in Sync, Interval or None mode by turns: each
// promises that a process crash loses nothing acknowledged) and, in four
// goroutines at once, enqueues (with unique idempotency keys, and
// sometimes a key of an earlier cycle again), leases, completes and fails
// jobs as fast as it can, and compacts now and then, with small segments so
// that kills also land in compactions, segment switches and opens. After each call returns it writes a line on stdout (a pipe, one
// write per line): "E id key" (enqueued), "D id key" (a duplicate of id),
// "C id" (completed). The parent kills it at a random moment, reopens the
// directory and checks that every acknowledged job exists with its key,
// every acknowledged completion is completed with its result, no key was
// given to two jobs, no job completed twice, at most the calls in flight at
// the kill appear without an acknowledgement, the queue's invariants hold,
// and the queue works on.
//
// The default run does 60 kill cycles on one directory. Run thousands with
//
//	WALQ_CRASH_CYCLES=5000 go test ./queue -run 'TestCrashKill$' -timeout 1h -v
//
// (WALQ_CRASH_SEED=n repeats the kill timings of a run; the log prints it).
// TestCrashKillConcurrent does the same with every kind of call at once
// and compaction running all the time.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping kill cycles in -short mode")
	}
	// Not parallel: the kill cycles are timing-sensitive, and other tests
	// running beside them on 2 cores only make the child slower.
	cycles := envInt(t, "WALQ_CRASH_CYCLES", 60)
	seed := uint64(envInt(t, "WALQ_CRASH_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("%d kill cycles, WALQ_CRASH_SEED=%d", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := &crashChecker{t: t, dir: t.TempDir(), acked: map[uint64]string{}, keyID: map[string]uint64{},
		completed: map[uint64]bool{}}
	for cycle := 0; cycle < cycles; cycle++ {
		lines := c.runChild(cycle, rng)
		c.check(cycle, lines)
	}
	t.Logf("%d cycles: %d jobs acknowledged, %d completions, %d duplicate keys seen, %d in-flight jobs found, %d kills during open; "+
		"log: %d segments from index %d (%d compacted away)",
		cycles, len(c.acked), len(c.completed), c.dups, c.inflight, c.earlyKills, c.log.Segments, c.log.FirstIndex, c.log.FirstIndex-1)
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// crashChecker is what the parent knows from the acknowledgements so far.
type crashChecker struct {
	t          *testing.T
	dir        string
	acked      map[uint64]string // job → key, acknowledged (or found after a kill)
	keyID      map[string]uint64 // key → job
	completed  map[uint64]bool   // acknowledged (or found) completions
	dups       int
	inflight   int
	earlyKills int
	log        LogStats // at the last reopen
}

// runChild starts a child on the directory, kills it at a random moment and
// returns the lines it wrote.
func (c *crashChecker) runChild(cycle int, rng *rand.Rand) []string {
	t := c.t
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WALQ_CRASH_DIR="+c.dir, "WALQ_CRASH_CYCLE="+strconv.Itoa(cycle))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	done := make(chan []string)
	go func() {
		var lines []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "OPEN" {
				close(opened)
			}
			lines = append(lines, sc.Text())
		}
		io.Copy(io.Discard, out)
		done <- lines
	}()
	// The kill comes at a random moment: mostly while the child works, in
	// one cycle out of five while it may still be opening (recovering)
	// the directory. The delay is real time on purpose: the point is to
	// stop the child wherever it happens to be.
	if rng.IntN(5) == 0 {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		select {
		case <-opened:
		default:
			c.earlyKills++
		}
	} else {
		select {
		case <-opened:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("cycle %d: the child did not open the queue: %s", cycle, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("cycle %d: kill: %v", cycle, err)
	}
	lines := <-done
	cmd.Wait()
	for _, l := range lines {
		if strings.HasPrefix(l, "ERR ") {
			t.Fatalf("cycle %d: child: %s\n%s", cycle, l, stderr.String())
		}
	}
	return lines
}

// check applies a cycle's acknowledgements, then reopens the directory and
// checks it against everything acknowledged so far.
func (c *crashChecker) check(cycle int, lines []string) {
	t := c.t
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		id, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "E":
			if prev, ok := c.keyID[f[2]]; ok {
				t.Fatalf("cycle %d: key %q given to job %d, but job %d holds it", cycle, f[2], id, prev)
			}
			c.acked[id], c.keyID[f[2]] = f[2], id
		case "D":
			c.dups++
			if prev, ok := c.keyID[f[2]]; ok && prev != id {
				t.Fatalf("cycle %d: key %q reported as a duplicate of job %d, but job %d holds it", cycle, f[2], id, prev)
			}
		case "C":
			if c.completed[id] {
				t.Fatalf("cycle %d: job %d completed twice", cycle, id)
			}
			c.completed[id] = true
		}
	}
	q, err := Open(c.dir, &Options{Logger: openTestLogger(), SegmentSize: 32 << 10, KeyRetention: 365 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("cycle %d: reopen after the kill: %v", cycle, err)
	}
	defer q.Close()
	ctx := context.Background()
	jobs, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]*Job{}
	keys := map[string]uint64{}
	newJobs, newDone := 0, 0
	for _, j := range jobs {
		seen[j.ID] = j
		if other, ok := keys[j.Key]; ok && j.Key != "" {
			t.Fatalf("cycle %d: key %q held by jobs %d and %d", cycle, j.Key, other, j.ID)
		}
		keys[j.Key] = j.ID
		key, ok := c.acked[j.ID]
		if !ok { // enqueued, but killed before the acknowledgement
			newJobs++
			if prev, held := c.keyID[j.Key]; held && j.Key != "" {
				t.Fatalf("cycle %d: job %d has key %q, acknowledged for job %d", cycle, j.ID, j.Key, prev)
			}
			c.acked[j.ID], c.keyID[j.Key] = j.Key, j.ID
		} else if key != j.Key {
			t.Fatalf("cycle %d: job %d has key %q, acknowledged with %q", cycle, j.ID, j.Key, key)
		}
		if j.State == StateCompleted && !c.completed[j.ID] { // completed, killed before the acknowledgement
			newDone++
			c.completed[j.ID] = true
			c.checkResult(q, cycle, j.ID)
		}
	}
	for id, key := range c.acked {
		j := seen[id]
		if j == nil {
			t.Fatalf("cycle %d: acknowledged job %d (key %q) is gone", cycle, id, key)
		}
		if c.completed[id] && j.State != StateCompleted {
			t.Fatalf("cycle %d: job %d was completed, now %s", cycle, id, j.State)
		}
	}
	for _, l := range lines { // results of this cycle's completions
		if f := strings.Fields(l); len(f) == 2 && f[0] == "C" {
			id, _ := strconv.ParseUint(f[1], 10, 64)
			c.checkResult(q, cycle, id)
		}
	}
	// What was in flight at the kill: one batch (up to three jobs) and one
	// completion per worker at most.
	if newJobs > 3*crashWorkers || newDone > crashWorkers {
		t.Fatalf("cycle %d: %d jobs and %d completions appeared without acknowledgement", cycle, newJobs, newDone)
	}
	c.inflight += newJobs
	// The background pass that Open starts reserves jobs while it runs:
	// check between passes.
	q.compactMu.Lock()
	err = q.check()
	q.compactMu.Unlock()
	if err != nil {
		t.Fatalf("cycle %d: invariants: %v", cycle, err)
	}
	c.worksOn(q, cycle)
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.log = st.Log
}

func (c *crashChecker) checkResult(q *Queue, cycle int, id uint64) {
	j, err := q.Get(context.Background(), id)
	if err != nil {
		c.t.Fatalf("cycle %d: Get(%d): %v", cycle, id, err)
	}
	if want := fmt.Sprintf("r-%d", id); string(j.Result) != want {
		c.t.Fatalf("cycle %d: job %d completed with %q, want %q", cycle, id, j.Result, want)
	}
}

// worksOn checks that the reopened queue takes and finishes new work.
func (c *crashChecker) worksOn(q *Queue, cycle int) {
	ctx := context.Background()
	key := fmt.Sprintf("parent-%d", cycle)
	r, err := q.Enqueue(ctx, NewJob{Queue: "parent", Key: key})
	if err != nil || r.Duplicate {
		c.t.Fatalf("cycle %d: Enqueue after the kill: %+v, %v", cycle, r, err)
	}
	l, err := q.TryLease(ctx, "parent")
	if err != nil || l.Job.ID != r.ID {
		c.t.Fatalf("cycle %d: TryLease after the kill: %v", cycle, err)
	}
	if err := q.Complete(ctx, l.Token, []byte(fmt.Sprintf("r-%d", r.ID))); err != nil {
		c.t.Fatalf("cycle %d: Complete after the kill: %v", cycle, err)
	}
	c.acked[r.ID], c.keyID[key], c.completed[r.ID] = key, r.ID, true
	if cycle%10 == 9 {
		// The child's compactions are often killed midway; finish one
		// now and then so that the front of the log goes too.
		if _, err := q.Compact(ctx); err != nil {
			c.t.Fatalf("cycle %d: Compact after the kill: %v", cycle, err)
		}
	}
}

// TestCrashChild is the child process of TestCrashKill; run on its own it
// skips. It works until it is killed (or for ten seconds).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("WALQ_CRASH_DIR")
	if dir == "" {
		t.Skip("the child process of TestCrashKill")
	}
	cycle, _ := strconv.Atoi(os.Getenv("WALQ_CRASH_CYCLE"))
	say := func(format string, args ...any) {
		// One write per line, straight to the pipe: once it returns the
		// parent will read it, whenever the kill comes.
		if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
			os.Exit(3)
		}
	}
	// Every durability mode promises that a process crash loses nothing
	// acknowledged; the cycles take turns.
	mode := []Durability{Sync, Interval, None}[cycle%3]
	q, err := Open(dir, &Options{Logger: openTestLogger(), SegmentSize: 32 << 10, KeyRetention: 365 * 24 * time.Hour,
		Durability: mode})
	if err != nil {
		say("ERR open: %v", err)
		os.Exit(2)
	}
	say("OPEN")
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			crashWork(q, cycle, w, say)
		}()
	}
	wg.Wait()
	q.Close()
}

// crashWorkers is how many goroutines of the child work at once, so that
// kills also land inside group commits shared by several calls.
const crashWorkers = 4

// crashWork is one goroutine of the child: enqueue a batch, lease and
// finish up to two jobs, again and again, saying what was acknowledged.
func crashWork(q *Queue, cycle, worker int, say func(string, ...any)) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(cycle), uint64(worker)))
	payload := make([]byte, 200)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if worker == 0 && i%40 == 39 {
			// Compaction: with a year of retention nothing is purged,
			// but live jobs are carried and old segments removed, so
			// kills land in every step of it.
			if _, err := q.Compact(ctx); err != nil {
				say("ERR compact: %v", err)
				os.Exit(2)
			}
		}
		var jobs []NewJob
		for k := rng.IntN(3); k >= 0; k-- {
			key := fmt.Sprintf("c%d-w%d-%d-%d", cycle, worker, i, k)
			if cycle > 0 && rng.IntN(4) == 0 { // a key of an earlier cycle
				key = fmt.Sprintf("c%d-w%d-%d-0", rng.IntN(cycle), rng.IntN(crashWorkers), rng.IntN(3))
			}
			jobs = append(jobs, NewJob{Key: key, Payload: payload})
		}
		res, err := q.EnqueueBatch(ctx, jobs)
		if err != nil {
			say("ERR enqueue: %v", err)
			os.Exit(2)
		}
		for k, r := range res {
			if r.Duplicate {
				say("D %d %s", r.ID, jobs[k].Key)
			} else {
				say("E %d %s", r.ID, jobs[k].Key)
			}
		}
		for range 2 {
			l, err := q.TryLease(ctx, "")
			if errors.Is(err, ErrNoJob) {
				break
			}
			if err != nil {
				say("ERR lease: %v", err)
				os.Exit(2)
			}
			if rng.IntN(6) == 0 {
				err = q.Fail(ctx, l.Token, errors.New("flaky"))
			} else if err = q.Complete(ctx, l.Token, []byte(fmt.Sprintf("r-%d", l.Job.ID))); err == nil {
				say("C %d", l.Job.ID)
			}
			if err != nil {
				say("ERR finish: %v", err)
				os.Exit(2)
			}
		}
	}
}
