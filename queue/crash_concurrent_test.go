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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
)

// TestCrashKillConcurrent kills, with SIGKILL, a process that drives every
// kind of call at once while compaction runs all the time, and checks
// after each kill that the directory opens and that nothing acknowledged
// was lost or undone.
//
// It differs from TestCrashKill in what the child (TestCrashConcurrentChild)
// does at the moment of the kill. Its log has 2–4 KiB segments, a
// CompactRatio of 0.05 (the background compactor is due after almost every
// segment switch) and a goroutine that calls Compact again as soon as
// anything changed, so kills land in compactions whose cut, carries and
// checkpoint overlap entries in flight. Beside it run, concurrently: producers (Enqueue and EnqueueBatch,
// keyed and not, keys repeated within a batch and across cycles, delayed
// jobs, and keys that race a worker's CompleteAndEnqueue follow-up);
// workers (TryLease and Lease, then Complete, CompleteAndEnqueue or Fail);
// a key-reuse lane that enqueues a few keys again and again on its own
// queue, completes them, and moves the mock clock forward so that their
// retention ends and the next enqueue purges the old job in the same entry
// that creates the new one; a purger to which that lane hands the old job
// at the moment it reuses its key (and now and then a job it just
// completed), so that Purge races the reusing entry; and a pauser that
// pauses and resumes a queue, checking the live state after each call.
// The job features run in the same load: producers put jobs into a few
// ordered groups (producer 0 mostly, the others now and then) and enqueue
// one batch in five with EnqueueBatchThen (callbacks go to queue "cb",
// which the workers also lease); workers report progress on one lease in
// three before finishing it, and check live, for grouped jobs, that no two
// jobs of a group are leased at once (a lease the clock has passed
// excepted) and that no job is leased after a later job of its group
// completed. In about one cycle of three the child stops its load after 10–50 ms,
// closes the queue (Close writes the index checkpoint when due; the kill
// may land in it), opens it again and runs on; compaction writes the
// checkpoint all the time, so most opens, the parent's and the child's,
// start from it.
//
// The child writes each acknowledgement on stdout (a pipe, one write per
// line) after the call returns: "E id key queue" (enqueued), "D id key"
// (a duplicate of id), "C id t key queue" (completed, t being the clock
// before the call), "X id" (written before a Purge), "p"/"PA" and
// "r"/"RA" (before and after Pause and Resume), "k" and "K n" (before and
// after Compact, n segments removed), "B id n" (a batch of n jobs from id,
// with a callback), "G id n" (progress n reported), "S n" (before the
// child's Close, n the log's last index), "CK used index" (after each of
// the child's opens, Recovery().Checkpoint), "ERR …" (any unexpected
// error, live invariant violations included).
//
// Retention is modelled exactly. The clock is a mock that only the key-reuse
// lane moves; cycle n runs between start(n) and start(n)+ccSpan, ccSpan
// being shorter than ccRetention, and the parent reopens at start(n)+ccSpan.
// So a job may be absent only if it was the target of a purge, or it is
// known completed at a time t with t+ccRetention at or before the cycle's
// end; a key may get a new job only once its previous job may be absent,
// and then the previous job must be gone. After every kill the parent
// checks: the directory opens; every acknowledged job exists (within that
// rule) with its key and queue, and no purged job comes back; every
// acknowledged completion is completed, with its result, no earlier than
// the call started; no job completed twice; no key is held by two jobs,
// and every duplicate names a job that held its key; the paused state is
// the one the last acknowledged Pause or Resume left (unless a later one
// was in flight); at most the calls in flight appear without an
// acknowledgement (batch callbacks, which no call acknowledges, aside);
// in each ordered group no job is completed while an earlier one is
// unfinished, and completions are in ID order on the clock; a batch whose
// members have all finished (or were forgotten after finishing) has
// exactly one callback, found by GetByKey("walq:batch:<id>") until it is
// forgotten itself, a batch with an unfinished member has none, and no
// callback key ever had two jobs; every job still held shows at least
// its last acknowledged progress report, with its note; the queue's
// invariants hold, and it works on. The summary counts how many opens
// started from the checkpoint.
//
// The default run does 80 kill cycles (about 6–7 s under -race on 2 cores).
// Run more with
//
//	WALQ_CRASH_CYCLES=300 go test ./queue -run 'TestCrashKillConcurrent$' -timeout 1h -v
//
// (WALQ_CRASH_SEED=n repeats a run's kill timings and the child's choices,
// not its thread interleavings; the log prints it). To tell which part of
// the load a failure needs, WALQ_CC_OFF switches parts of the child off, by
// a comma-separated list of: producer, worker, reuse (the key-reuse lane,
// which also moves the clock), purge, pause, compact (the Compact loop and
// the background compactor).
func TestCrashKillConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping kill cycles in -short mode")
	}
	// Not parallel, for the reason TestCrashKill gives.
	cycles := envInt(t, "WALQ_CRASH_CYCLES", 80)
	seed := uint64(envInt(t, "WALQ_CRASH_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("%d kill cycles, WALQ_CRASH_SEED=%d", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	c := &ccChecker{t: t, dir: t.TempDir(), seed: seed, jobs: map[uint64]*ccJob{}, gens: map[string][]uint64{},
		purges: map[uint64]bool{}, clock: epoch.UnixNano(), batches: map[uint64]int{}, progress: map[uint64]int64{},
		grouped: map[uint64]bool{}, groupedDone: map[uint64]bool{}}
	for cycle := 0; cycle < cycles; cycle++ {
		lines := c.runChild(cycle, rng)
		c.check(cycle, lines)
	}
	t.Logf("%d cycles: %d jobs, %d acknowledged completions (%d found unacknowledged), %d duplicates, "+
		"%d keys reused after retention, %d after a purge, %d jobs gone by retention or purge, "+
		"%d pause/resume acknowledged, %d compactions (%d segments removed), %d kills during a Compact call, %d in-flight jobs found, %d kills during open; "+
		"%d grouped jobs (%d completed), %d batches with callbacks acknowledged (%d callbacks seen), %d progress reports acknowledged (%d checked); "+
		"checkpoint used by %d of %d reopens and %d of %d child opens (%d of %d opens after the child's Close found it covering the whole log); "+
		"log: %d segments from index %d, %d jobs",
		cycles, len(c.jobs), c.n.acked, c.n.foundDone, c.n.dups, c.n.reusedRetention, c.n.reusedPurge, c.n.gone,
		c.n.pauses, c.n.compactions, c.n.segsRemoved, c.n.midCompact, c.n.inflight, c.n.earlyKills,
		len(c.grouped), len(c.groupedDone), c.n.batches, c.n.callbacks, c.n.progress, c.n.progressSeen,
		c.n.ckptParent, cycles, c.n.ckptChild, c.n.childOpens, c.n.ckptClose, c.n.closes, c.log.Segments, c.log.FirstIndex, c.live)
}

const (
	// ccRetention is Options.KeyRetention in the child and the parent.
	ccRetention = time.Hour
	// ccSpan is how far the mock clock moves in one cycle; shorter than
	// ccRetention, so no job finished in a cycle can be purged in it.
	ccSpan = 50 * time.Minute
	// ccStep is how far the key-reuse lane moves the clock per turn.
	ccStep = 100 * time.Second
	// ccProducers, ccWorkers and ccBatch size the child's load; the
	// bounds on what may appear unacknowledged after a kill follow.
	ccProducers = 3
	ccWorkers   = 3
	ccBatch     = 4
	ccFollowUps = 2
	// ccReuseKeys is how many keys the key-reuse lane cycles through.
	ccReuseKeys = 8
	// ccPaused is the queue the pauser pauses and resumes.
	ccPaused = "pq"
)

// ccOptions are the options of the child and of the parent's reopen.
func ccOptions(cycle int, c clock.Clock) *Options {
	return &Options{
		Logger:        openTestLogger(),
		Clock:         c,
		SegmentSize:   []int{2048, 3072, 4096}[(cycle/3)%3],
		Durability:    []Durability{Sync, Interval, None}[cycle%3],
		KeyRetention:  ccRetention,
		CompactRatio:  0.05,
		LeaseDuration: 2 * time.Minute,
		MaxAttempts:   8,
	}
}

// ccJob is what the parent knows about one job.
type ccJob struct {
	key, queue string
	cycle      int   // the cycle in which the parent learnt of it
	completed  bool  // acknowledged, or seen, completed
	finished   int64 // when: a lower bound, exact once seen
	gone       bool  // absent from a reopen (legitimately)
}

// ccChecker is what the parent knows from the acknowledgements so far.
type ccChecker struct {
	t    *testing.T
	dir  string
	seed uint64
	jobs map[uint64]*ccJob
	gens map[string][]uint64 // key → the jobs that held it, in ID order
	// purges are the jobs a Purge was called for (the child may name a
	// job before the parent knows it).
	purges map[uint64]bool
	clock  int64 // the clock at the start of the next cycle
	// paused is the state of ccPaused at the last reopen.
	paused bool
	log    LogStats
	// childErr is the child's unexpected error in this cycle, if any.
	childErr string
	live     int // jobs at the last reopen
	// batches are the acknowledged batches whose callback the checks
	// still follow: batch ID → number of members.
	batches map[uint64]int
	// progress is, per job, the highest progress report acknowledged.
	progress map[uint64]int64
	// grouped are the grouped jobs seen, done those seen completed.
	grouped, groupedDone map[uint64]bool
	n                    struct {
		acked, foundDone, dups, reusedRetention, reusedPurge, gone         int
		pauses, compactions, segsRemoved, midCompact, inflight, earlyKills int
		batches, callbacks, progress, progressSeen                         int
		ckptParent, ckptChild, childOpens, closes, ckptClose               int
	}
}

// runChild starts a child on the directory, kills it at a random moment and
// returns the lines it wrote.
func (c *ccChecker) runChild(cycle int, rng *rand.Rand) []string {
	t := c.t
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConcurrentChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "WALQ_CC_DIR="+c.dir, "WALQ_CC_CYCLE="+strconv.Itoa(cycle),
		"WALQ_CC_CLOCK="+strconv.FormatInt(c.clock, 10), "WALQ_CC_SEED="+strconv.FormatUint(c.seed, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	opened, ended := make(chan struct{}), make(chan struct{})
	done := make(chan []string, 1)
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
		close(ended)
	}()
	// As in TestCrashKill, the delay is real time on purpose: the kill
	// must stop the child wherever it happens to be. One cycle in six
	// may kill it while it opens (recovers) the directory.
	if rng.IntN(6) == 0 {
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		select {
		case <-opened:
		default:
			c.n.earlyKills++
		}
	} else {
		select {
		case <-opened:
		case <-ended: // it failed to open: its lines say why
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("cycle %d: the child did not open the queue: %s", cycle, stderr.String())
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("cycle %d: kill: %v", cycle, err)
	}
	lines := <-done
	cmd.Wait()
	c.childErr = ""
	for _, l := range lines {
		if strings.HasPrefix(l, "ERR ") {
			// The parent checks the directory all the same, to report
			// what the failure left on disk too.
			c.childErr = fmt.Sprintf("child: %s\n%s", l, stderr.String())
			break
		}
	}
	return lines
}

// fatalf fails the test at a cycle, with the child's error if it had one.
func (c *ccChecker) fatalf(cycle int, format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf("cycle %d: ", cycle) + fmt.Sprintf(format, args...)
	if c.childErr != "" {
		msg += "\n(after the child failed first, " + c.childErr + ")"
	}
	c.t.Fatal(msg)
}

// reopenOptions are the child's options for the parent, on a mock clock at
// the cycle's end, without the background compactor (the parent compacts
// when it means to, so that nothing changes under its checks).
func (c *ccChecker) reopenOptions(cycle int) *Options {
	mc := clock.NewMock()
	mc.Set(time.Unix(0, c.clock+int64(ccSpan)))
	o := ccOptions(cycle, mc)
	o.CompactRatio = -1
	o.Durability = Sync
	return o
}

// ccCycle is what one cycle's lines say, gathered before the reopen.
type ccCycle struct {
	dups        [][2]string // id, key
	newKeys     map[string]bool
	done        []uint64 // completions acknowledged in this cycle
	lastPause   string   // the pauser's last line
	lastCompact string   // the compactor's last line
	newJobs     int      // jobs first known from the reopen
	newDone     int      // completions first known from the reopen
	start, end  int64    // the clock's range
}

// learn records a job the parent has just heard of, by a line or a reopen.
func (c *ccChecker) learn(cycle int, cy *ccCycle, id uint64, key, queue string) *ccJob {
	if key == "-" {
		key = ""
	}
	if j := c.jobs[id]; j != nil {
		if j.key != key || (queue != "" && j.queue != "" && j.queue != queue) {
			c.fatalf(cycle, "job %d has key %q in queue %q, known with key %q in queue %q", id, key, queue, j.key, j.queue)
		}
		if j.queue == "" {
			j.queue = queue
		}
		return j
	}
	j := &ccJob{key: key, queue: queue, cycle: cycle}
	c.jobs[id] = j
	if key != "" {
		c.gens[key] = append(c.gens[key], id)
		slices.Sort(c.gens[key])
		cy.newKeys[key] = true
	}
	return j
}

// check applies a cycle's lines, then reopens the directory and checks it
// against everything known so far.
func (c *ccChecker) check(cycle int, lines []string) {
	cy := &ccCycle{newKeys: map[string]bool{}, start: c.clock, end: c.clock + int64(ccSpan)}
	closedAt := "" // the log's last index before the child's Close
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		var id uint64
		if len(f) > 1 {
			id, _ = strconv.ParseUint(f[1], 10, 64)
		}
		switch f[0] {
		case "E":
			c.learn(cycle, cy, id, f[2], f[3])
		case "D":
			c.n.dups++
			cy.dups = append(cy.dups, [2]string{f[1], f[2]})
		case "C":
			j := c.learn(cycle, cy, id, f[3], f[4])
			if j.completed {
				c.fatalf(cycle, "job %d completed twice", id)
			}
			at, _ := strconv.ParseInt(f[2], 10, 64)
			j.completed, j.finished = true, at
			cy.done = append(cy.done, id)
			c.n.acked++
		case "X":
			c.purges[id] = true
		case "B":
			n, _ := strconv.Atoi(f[2])
			c.batches[id] = n
			c.n.batches++
		case "G":
			n, _ := strconv.ParseInt(f[2], 10, 64)
			c.progress[id] = max(c.progress[id], n)
			c.n.progress++
		case "S":
			closedAt = f[1]
		case "CK":
			c.n.childOpens++
			if f[1] == "1" {
				c.n.ckptChild++
			}
			if closedAt != "" {
				c.n.closes++
				if f[1] == "1" && f[2] == closedAt {
					c.n.ckptClose++ // the checkpoint covered the whole log
				}
			}
		case "p", "r", "PA", "RA":
			cy.lastPause = f[0]
			if f[0] == "PA" || f[0] == "RA" {
				c.n.pauses++
			}
		case "K":
			n, _ := strconv.Atoi(f[1])
			c.n.compactions++
			c.n.segsRemoved += n
		}
		if f[0] == "k" || f[0] == "K" {
			cy.lastCompact = f[0]
		}
	}
	if cy.lastCompact == "k" {
		c.n.midCompact++
	}

	q, err := Open(c.dir, c.reopenOptions(cycle))
	if err != nil {
		c.fatalf(cycle, "reopen after the kill: %v", err)
	}
	defer q.Close()
	if q.Recovery().Checkpoint.Used {
		c.n.ckptParent++
	}
	c.clock = cy.end
	c.checkJobs(q, cycle, cy)
	c.checkKeys(cycle, cy)
	c.checkPause(q, cycle, cy)
	c.checkGroups(q, cycle)
	c.checkBatches(q, cycle)
	c.checkProgress(q, cycle)
	// What was in flight at the kill: a batch per producer, the
	// follow-ups of a CompleteAndEnqueue per worker, one enqueue of the
	// key-reuse lane; one completion per worker, per producer (they work
	// when the backlog is long) and one of the lane.
	if cy.newJobs > ccProducers*ccBatch+ccWorkers*ccFollowUps+1 || cy.newDone > ccWorkers+ccProducers+1 {
		c.fatalf(cycle, "%d jobs and %d completions appeared without acknowledgement", cy.newJobs, cy.newDone)
	}
	c.n.inflight += cy.newJobs
	c.n.foundDone += cy.newDone
	if err := q.check(); err != nil {
		c.fatalf(cycle, "invariants: %v", err)
	}
	if c.childErr != "" {
		c.t.Fatalf("cycle %d: %s(the directory passed every check after it)", cycle, c.childErr)
	}
	c.worksOn(q, cycle, cy)
	st, err := q.Stats(context.Background())
	if err != nil {
		c.fatalf(cycle, "%v", err)
	}
	c.log = st.Log
	c.live = 0
	for _, qs := range st.Queues {
		c.live += qs.Ready + qs.Scheduled + qs.Leased + qs.Completed + qs.Dead + qs.Cancelled
	}
}

// checkJobs compares the reopened queue's jobs with the ledger.
func (c *ccChecker) checkJobs(q *Queue, cycle int, cy *ccCycle) {
	ctx := context.Background()
	jobs, err := q.Jobs(ctx, JobFilter{})
	if err != nil {
		c.fatalf(cycle, "%v", err)
	}
	seen := map[uint64]bool{}
	holder := map[string]uint64{}
	for _, s := range jobs {
		seen[s.ID] = true
		if other, ok := holder[s.Key]; ok && s.Key != "" {
			c.fatalf(cycle, "key %q held by jobs %d and %d", s.Key, other, s.ID)
		}
		holder[s.Key] = s.ID
		j := c.jobs[s.ID]
		if j == nil && !strings.HasPrefix(s.Key, ccBatchKey) { // enqueued, but killed before the acknowledgement
			cy.newJobs++
		}
		key := s.Key
		if key == "" {
			key = "-"
		}
		j = c.learn(cycle, cy, s.ID, key, s.Queue)
		if j.gone {
			c.fatalf(cycle, "job %d (key %q) was gone at an earlier reopen and is back, %s", s.ID, s.Key, s.State)
		}
		switch {
		case s.State == StateCompleted && !j.completed: // killed before the acknowledgement
			cy.newDone++
			j.completed, j.finished = true, s.FinishedAt.UnixNano()
			cy.done = append(cy.done, s.ID)
		case s.State == StateCompleted:
			if got := s.FinishedAt.UnixNano(); got < j.finished {
				c.fatalf(cycle, "job %d finished at %v, before its Complete was called (%v)", s.ID, s.FinishedAt, time.Unix(0, j.finished).UTC())
			}
			j.finished = s.FinishedAt.UnixNano()
		case j.completed:
			c.fatalf(cycle, "job %d was completed, now %s", s.ID, s.State)
		}
	}
	var lost []uint64
	for id, j := range c.jobs {
		if j.gone || seen[id] {
			continue
		}
		if !c.purges[id] && !(j.completed && j.finished+int64(ccRetention) <= cy.end) {
			lost = append(lost, id)
		}
		j.gone = true
		c.n.gone++
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		j := c.jobs[lost[0]]
		c.fatalf(cycle, "job %d (key %q, queue %q, known since cycle %d, completed %v) is gone; %d jobs are: %v",
			lost[0], j.key, j.queue, j.cycle, j.completed, len(lost), lost[:min(len(lost), 10)])
	}
	for _, id := range cy.done {
		if c.jobs[id].gone {
			continue
		}
		r, err := q.Get(ctx, id)
		if err != nil {
			c.fatalf(cycle, "Get(%d): %v", id, err)
		}
		if want := fmt.Sprintf("r-%d", id); string(r.Result) != want {
			c.fatalf(cycle, "job %d completed with %q, want %q", id, r.Result, want)
		}
	}
}

// checkKeys checks that each key changed hands only once its job could be
// forgotten, and that every duplicate named a job that held its key.
func (c *ccChecker) checkKeys(cycle int, cy *ccCycle) {
	for key := range cy.newKeys {
		g := c.gens[key]
		for i := 1; i < len(g); i++ {
			n := c.jobs[g[i]]
			if n.cycle != cycle {
				continue
			}
			p := c.jobs[g[i-1]]
			byRetention := p.completed && p.finished+int64(ccRetention) <= cy.end
			purged := c.purges[g[i-1]]
			if !p.gone || !(purged || byRetention) {
				c.fatalf(cycle, "key %q given to job %d while job %d held it (completed %v at %v, purge asked %v, gone %v; clock reached %v at most)", key, g[i], g[i-1], p.completed, time.Unix(0, p.finished).UTC(), purged, p.gone, time.Unix(0, cy.end).UTC())
			}
			if purged {
				c.n.reusedPurge++
			} else {
				c.n.reusedRetention++
			}
		}
	}
	for _, d := range cy.dups {
		id, _ := strconv.ParseUint(d[0], 10, 64)
		if !slices.Contains(c.gens[d[1]], id) {
			c.fatalf(cycle, "key %q reported as a duplicate of job %d, which never held it (holders %v)", d[1], id, c.gens[d[1]])
		}
	}
}

// ccBatchKey prefixes the key of a batch's callback job.
const ccBatchKey = "walq:batch:"

// checkGroups checks the order of each ordered group in the reopened
// queue: a job of a group completes only once every earlier job of the
// group has finished (completed earlier, died or been cancelled; none is
// requeued here), so no earlier job is pending while a later one is
// completed, and completions are in ID order on the clock. The workers
// check, live, that no two jobs of a group are leased at once and that no
// job is leased after a later one of its group completed.
func (c *ccChecker) checkGroups(q *Queue, cycle int) {
	jobs, err := q.Jobs(context.Background(), JobFilter{})
	if err != nil {
		c.fatalf(cycle, "%v", err)
	}
	groups := map[string][]*Job{}
	for _, s := range jobs { // in ID order
		if s.Group != "" {
			groups[s.Group] = append(groups[s.Group], s)
		}
	}
	for g, js := range groups {
		var pending *Job // the first unfinished job of the group
		var last *Job    // the last completed job before it
		for _, s := range js {
			c.grouped[s.ID] = true
			switch s.State {
			case StateCompleted:
				c.groupedDone[s.ID] = true
				if pending != nil {
					c.fatalf(cycle, "job %d of group %q is completed (at %v) while the earlier job %d of it is %s",
						s.ID, g, s.FinishedAt, pending.ID, pending.State)
				}
				if last != nil && s.FinishedAt.Before(last.FinishedAt) {
					c.fatalf(cycle, "job %d of group %q completed at %v, before the earlier job %d of it (%v)",
						s.ID, g, s.FinishedAt, last.ID, last.FinishedAt)
				}
				last = s
			case StateDead, StateCancelled:
			default:
				if pending == nil {
					pending = s
				}
			}
		}
	}
}

// checkBatches checks the batches' callbacks: a batch whose members have
// all finished has exactly one callback job (keyed walq:batch:<id>), and a
// batch with an unfinished member has none. The key guard makes a second
// callback impossible to hold the key at once, so "exactly one" is
// checked over time: the ledger's list of the key's holders never grows
// past one.
func (c *ccChecker) checkBatches(q *Queue, cycle int) {
	ctx := context.Background()
	finished := func(id uint64) bool {
		if j := c.jobs[id]; j != nil && j.gone {
			return true // completed and forgotten, or purged
		}
		s, err := q.Get(ctx, id)
		if err != nil {
			c.fatalf(cycle, "Get(%d), a batch member: %v", id, err)
		}
		return s.State == StateCompleted || s.State == StateDead || s.State == StateCancelled
	}
	for key, g := range c.gens {
		if strings.HasPrefix(key, ccBatchKey) && len(g) > 1 {
			c.fatalf(cycle, "batch callback key %q held by jobs %v: more than one callback", key, g)
		}
	}
	for id, n := range c.batches {
		key := fmt.Sprintf("%s%d", ccBatchKey, id)
		all := true
		for m := id; m < id+uint64(n); m++ {
			if !finished(m) {
				all = false
				break
			}
		}
		cb, err := q.GetByKey(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			c.fatalf(cycle, "GetByKey(%q): %v", key, err)
		}
		holders := c.gens[key]
		switch {
		case !all && (cb != nil || len(holders) > 0):
			c.fatalf(cycle, "batch %d (%d members) has an unfinished member, and a callback (now %v, ever %v)", id, n, cb != nil, holders)
		case all && cb == nil:
			if len(holders) == 1 && c.jobs[holders[0]].gone {
				delete(c.batches, id) // its callback ran and was forgotten
				continue
			}
			c.fatalf(cycle, "batch %d (%d members) has finished, and no callback (holders of its key: %v)", id, n, holders)
		case all:
			if len(holders) != 1 || holders[0] != cb.ID || cb.Queue != ccCallbacks {
				c.fatalf(cycle, "batch %d: callback %d in queue %q, holders of its key %v", id, cb.ID, cb.Queue, holders)
			}
			c.n.callbacks++
			delete(c.batches, id)
		}
	}
}

// checkProgress checks that every job still held shows at least the last
// progress report acknowledged for it (a report in flight at the kill may
// show a later one), with its note.
func (c *ccChecker) checkProgress(q *Queue, cycle int) {
	ctx := context.Background()
	for id, want := range c.progress {
		if c.jobs[id] != nil && c.jobs[id].gone {
			delete(c.progress, id)
			continue
		}
		s, err := q.Get(ctx, id)
		if errors.Is(err, ErrNotFound) && (c.jobs[id] == nil || c.jobs[id].gone) {
			delete(c.progress, id)
			continue
		}
		if err != nil {
			c.fatalf(cycle, "Get(%d), a job with progress: %v", id, err)
		}
		if s.Progress < want || s.ProgressNote != fmt.Sprintf("p%d", s.Progress) {
			c.fatalf(cycle, "job %d shows progress %d %q, want at least %d acknowledged", id, s.Progress, s.ProgressNote, want)
		}
		c.n.progressSeen++
		if s.State == StateCompleted || s.State == StateDead {
			delete(c.progress, id) // it reports no more
		}
	}
}

// checkPause checks that the pauser's last acknowledged call holds.
func (c *ccChecker) checkPause(q *Queue, cycle int, cy *ccCycle) {
	st, err := q.Stats(context.Background())
	if err != nil {
		c.fatalf(cycle, "%v", err)
	}
	paused := st.Queues[ccPaused].Paused
	want, sure := c.paused, true
	switch cy.lastPause {
	case "PA":
		want = true
	case "RA":
		want = false
	case "p", "r": // in flight at the kill: either
		sure = false
	}
	if sure && paused != want {
		c.fatalf(cycle, "queue %q paused = %v, but the last acknowledged call of the cycle was %q (paused = %v before the cycle)", ccPaused, paused, cy.lastPause, c.paused)
	}
	c.paused = paused
}

// worksOn checks that the reopened queue takes and finishes new work, and
// compacts now and then.
func (c *ccChecker) worksOn(q *Queue, cycle int, cy *ccCycle) {
	ctx := context.Background()
	r, err := q.Enqueue(ctx, NewJob{Queue: "parent", Key: fmt.Sprintf("parent-%d", cycle)})
	if err != nil || r.Duplicate {
		c.fatalf(cycle, "Enqueue after the kill: %+v, %v", r, err)
	}
	l, err := q.TryLease(ctx, "parent")
	if err != nil || l.Job.ID != r.ID {
		c.fatalf(cycle, "TryLease after the kill: %v", err)
	}
	if err := q.Complete(ctx, l.Token, []byte(fmt.Sprintf("r-%d", r.ID))); err != nil {
		c.fatalf(cycle, "Complete after the kill: %v", err)
	}
	j := c.learn(cycle, cy, r.ID, fmt.Sprintf("parent-%d", cycle), "parent")
	j.completed, j.finished = true, cy.end
	if cycle%5 == 4 {
		if _, err := q.Compact(ctx); err != nil {
			c.fatalf(cycle, "Compact after the kill: %v", err)
		}
	}
}

// TestCrashConcurrentChild is the child process of TestCrashKillConcurrent;
// run on its own it skips. It works until it is killed (or for ten
// seconds).
func TestCrashConcurrentChild(t *testing.T) {
	dir := os.Getenv("WALQ_CC_DIR")
	if dir == "" {
		t.Skip("the child process of TestCrashKillConcurrent")
	}
	cycle, _ := strconv.Atoi(os.Getenv("WALQ_CC_CYCLE"))
	start, _ := strconv.ParseInt(os.Getenv("WALQ_CC_CLOCK"), 10, 64)
	seed, _ := strconv.ParseUint(os.Getenv("WALQ_CC_SEED"), 10, 64)
	ch := &ccChild{cycle: cycle, seed: seed, start: start, mc: clock.NewMock(),
		deadline: time.Now().Add(10 * time.Second), purgeCh: make(chan uint64, 16),
		changed: make(chan struct{}, 1), held: map[string]map[uint64]time.Time{}, doneMax: map[string]uint64{}}
	ch.mc.Set(time.Unix(0, start))
	off := map[string]bool{}
	for _, f := range strings.Split(os.Getenv("WALQ_CC_OFF"), ",") {
		off[f] = true
	}
	opts := ccOptions(cycle, ch.mc)
	if off["compact"] {
		opts.CompactRatio = -1
	}
	q, err := Open(dir, opts)
	if err != nil {
		ch.say("ERR open: %v", err)
		os.Exit(2)
	}
	ch.q = q
	ch.say("OPEN")
	ch.reportCheckpoint()
	var wg sync.WaitGroup
	run := func(name string, n int, f func(rng *rand.Rand, i int)) {
		if off[name] {
			return
		}
		for i := range n {
			wg.Go(func() { f(ch.rand(name, i), i) })
		}
	}
	load := func() {
		run("producer", ccProducers, ch.produce)
		run("worker", ccWorkers, ch.work)
		run("reuse", 1, ch.reuse)
		run("purge", 1, ch.purge)
		run("pause", 1, ch.pause)
		run("compact", 1, ch.compact)
		wg.Wait()
	}
	// In about one cycle of three the load stops after a moment, the queue is
	// closed (Close writes the index checkpoint when enough was applied
	// since the last one; the kill may land in it) and opened again, and
	// the load runs on: "S n" before Close (n the log's last index) and
	// "CK" after the open say whether it started from the checkpoint.
	if rng := ch.rand("close", 0); rng.IntN(3) == 0 {
		last := ch.deadline
		ch.deadline = time.Now().Add(time.Duration(10+rng.IntN(40)) * time.Millisecond)
		load()
		st, err := q.Stats(context.Background())
		if err != nil {
			ch.fail("stats", err)
		}
		ch.write("S %d", st.Log.LastIndex)
		if err := q.Close(); err != nil {
			ch.fail("close", err)
		}
		if q, err = Open(dir, opts); err != nil {
			ch.fail("reopen", err)
		}
		ch.q, ch.deadline = q, last
		ch.reportCheckpoint()
	}
	load()
	q.Close()
}

// ccChild is the child's state, shared by its goroutines.
type ccChild struct {
	q        *Queue
	mc       *clock.Mock // moved by the key-reuse lane only
	cycle    int
	seed     uint64
	start    int64
	deadline time.Time

	mu     sync.Mutex
	leased []uint64 // recently leased jobs, whose follow-up keys producers race
	// purgeCh passes jobs from the key-reuse lane to the purger.
	purgeCh chan uint64
	// changed wakes the compactor after a change.
	changed chan struct{}
	// held are, per group, the grouped jobs the workers hold a lease on
	// (until just before they finish them), with the lease's deadline;
	// doneMax is, per group, the highest ID whose completion was
	// acknowledged. Both are under mu.
	held    map[string]map[uint64]time.Time
	doneMax map[string]uint64
}

// ccGroups is how many ordered groups the producers enqueue into.
const ccGroups = 4

// ccCallbacks is the queue of the batches' callback jobs.
const ccCallbacks = "cb"

// reportCheckpoint says whether Open started from the index checkpoint.
func (ch *ccChild) reportCheckpoint() {
	ck := ch.q.Recovery().Checkpoint
	used := 0
	if ck.Used {
		used = 1
	}
	ch.write("CK %d %d", used, ck.Index)
}

// leased checks a lease of a grouped job against the other leases the
// workers hold and the completions acknowledged: no other job of the group
// may be leased (unless its lease has expired, the clock being past its
// deadline), and no later job of the group may have completed.
func (ch *ccChild) leasedGrouped(l *Lease) {
	g := l.Job.Group
	ch.mu.Lock()
	defer ch.mu.Unlock()
	now := ch.mc.Now()
	for id, dl := range ch.held[g] {
		if id != l.Job.ID && dl.After(now) {
			ch.say("ERR live: job %d of group %q leased while job %d of it is leased until %v (now %v)", l.Job.ID, g, id, dl, now)
			os.Exit(2)
		}
	}
	if m := ch.doneMax[g]; m > l.Job.ID {
		ch.say("ERR live: job %d of group %q leased after job %d of it completed", l.Job.ID, g, m)
		os.Exit(2)
	}
	if ch.held[g] == nil {
		ch.held[g] = map[uint64]time.Time{}
	}
	ch.held[g][l.Job.ID] = l.Deadline
}

// letGo forgets a worker's lease of a grouped job: called before the call
// that finishes it, so that the next job's lease never looks concurrent.
func (ch *ccChild) letGo(l *Lease) {
	if l.Job.Group == "" {
		return
	}
	ch.mu.Lock()
	delete(ch.held[l.Job.Group], l.Job.ID)
	ch.mu.Unlock()
}

// completedGrouped notes an acknowledged completion of a grouped job.
func (ch *ccChild) completedGrouped(l *Lease) {
	if l.Job.Group == "" {
		return
	}
	ch.mu.Lock()
	ch.doneMax[l.Job.Group] = max(ch.doneMax[l.Job.Group], l.Job.ID)
	ch.mu.Unlock()
}

func (ch *ccChild) rand(name string, i int) *rand.Rand {
	h := uint64(0)
	for _, b := range []byte(name) {
		h = h*31 + uint64(b)
	}
	return rand.New(rand.NewPCG(ch.seed^uint64(ch.cycle)<<20, h<<8|uint64(i)))
}

// write writes one line, in one write, straight to the pipe: once it
// returns the parent will read it, whenever the kill comes.
func (ch *ccChild) write(format string, args ...any) {
	if _, err := os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n"); err != nil {
		os.Exit(3)
	}
}

// say writes a line and pokes the compactor: something changed.
func (ch *ccChild) say(format string, args ...any) {
	ch.write(format, args...)
	select {
	case ch.changed <- struct{}{}:
	default:
	}
}

// fail reports an unexpected error and stops the child.
func (ch *ccChild) fail(what string, err error) {
	ch.say("ERR %s: %v", what, err)
	os.Exit(2)
}

func (ch *ccChild) alive() bool { return time.Now().Before(ch.deadline) }

func (ch *ccChild) now() int64 { return ch.mc.Now().UnixNano() }

func ccKey(k string) string {
	if k == "" {
		return "-"
	}
	return k
}

func ccQueue(name string) string {
	if name == "" {
		return DefaultQueue
	}
	return name
}

// reportEnqueued says what an enqueue acknowledged.
func (ch *ccChild) reportEnqueued(jobs []NewJob, res []Enqueued) {
	for k, r := range res {
		if r.Duplicate {
			ch.say("D %d %s", r.ID, ccKey(jobs[k].Key))
		} else {
			ch.say("E %d %s %s", r.ID, ccKey(jobs[k].Key), ccQueue(jobs[k].Queue))
		}
	}
}

// newJob draws a job for a producer: no key, a fresh key, a key this
// producer used before (in this cycle or an earlier one), or the key of a
// follow-up a worker may be enqueueing right now.
func (ch *ccChild) newJob(rng *rand.Rand, p, i, k int) NewJob {
	nj := NewJob{Queue: []string{"", ccPaused}[rng.IntN(2)], Payload: make([]byte, 16+rng.IntN(160))}
	switch r := rng.IntN(10); {
	case r < 3:
	case r < 6:
		nj.Key = fmt.Sprintf("k%d-p%d-%d-%d", ch.cycle, p, i, k)
	case r < 8:
		nj.Key = fmt.Sprintf("k%d-p%d-%d-%d", rng.IntN(ch.cycle+1), p, rng.IntN(i+1), rng.IntN(ccBatch))
	case r < 9:
		ch.mu.Lock()
		if len(ch.leased) > 0 {
			nj.Key = fmt.Sprintf("f%d", ch.leased[rng.IntN(len(ch.leased))])
		}
		ch.mu.Unlock()
	default:
		nj.Key = fmt.Sprintf("k%d-p%d-%d-%d", ch.cycle, p, i, k)
		nj.Delay = time.Duration(rng.IntN(300)) * time.Second
	}
	if p == 0 || rng.IntN(3) == 0 { // producer 0 mostly, the others now and then
		nj.Group = fmt.Sprintf("g%d", rng.IntN(ccGroups))
	}
	return nj
}

// ccBacklog bounds the live set: a producer works instead of producing
// while more jobs than this wait, so that long runs stay fast.
const ccBacklog = 100

// produce is one producer: single enqueues and batches.
func (ch *ccChild) produce(rng *rand.Rand, p int) {
	ctx := context.Background()
	for i := 0; ch.alive(); i++ {
		st, err := ch.q.Stats(ctx)
		if err != nil {
			ch.fail("stats", err)
		}
		d, pq := st.Queues[DefaultQueue], st.Queues[ccPaused]
		if d.Ready+d.Scheduled+pq.Ready+pq.Scheduled > ccBacklog {
			ch.workOnce(rng)
			continue
		}
		jobs := make([]NewJob, 1+rng.IntN(ccBatch))
		for k := range jobs {
			jobs[k] = ch.newJob(rng, p, i, k)
		}
		var res []Enqueued
		if rng.IntN(5) == 0 { // a batch with a callback: members without keys
			for k := range jobs {
				jobs[k].Key = ""
			}
			b, err := ch.q.EnqueueBatchThen(ctx, jobs, NewJob{Queue: ccCallbacks})
			if err != nil {
				ch.fail("enqueue batch then", err)
			}
			res = make([]Enqueued, len(b.Jobs))
			for k, id := range b.Jobs {
				res[k] = Enqueued{ID: id}
			}
			ch.reportEnqueued(jobs, res)
			ch.say("B %d %d", b.ID, len(b.Jobs))
			continue
		}
		if len(jobs) == 1 && rng.IntN(2) == 0 {
			var r Enqueued
			r, err = ch.q.Enqueue(ctx, jobs[0])
			res = []Enqueued{r}
		} else {
			res, err = ch.q.EnqueueBatch(ctx, jobs)
		}
		if err != nil {
			ch.fail("enqueue", err)
		}
		ch.reportEnqueued(jobs, res)
	}
}

// lease takes a job of the named queue, waiting a little if none is ready.
func (ch *ccChild) lease(name string) *Lease {
	l, err := ch.q.TryLease(context.Background(), name)
	if errors.Is(err, ErrNoJob) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		l, err = ch.q.Lease(ctx, name)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil
		}
	}
	if err != nil {
		ch.fail("lease", err)
	}
	return l
}

// work is one worker: lease, then complete, complete with follow-ups, or
// fail.
func (ch *ccChild) work(rng *rand.Rand, _ int) {
	for ch.alive() {
		ch.workOnce(rng)
	}
}

// workOnce leases a job and finishes it, if one comes.
func (ch *ccChild) workOnce(rng *rand.Rand) {
	ctx := context.Background()
	l := ch.lease([]string{"", ccPaused, "", ccPaused, ccCallbacks}[rng.IntN(5)])
	if l == nil {
		return
	}
	id := l.Job.ID
	if l.Job.Group != "" {
		ch.leasedGrouped(l)
	}
	if rng.IntN(3) == 0 { // progress reports, numbered to grow with the attempt
		for k := range 1 + rng.IntN(2) {
			n := int64(l.Job.Attempt)*100 + int64(k) + 1
			err := ch.q.Progress(ctx, l.Token, n, fmt.Sprintf("p%d", n))
			if errors.Is(err, ErrLeaseLost) {
				break
			}
			if err != nil {
				ch.fail("progress", err)
			}
			ch.say("G %d %d", id, n)
		}
	}
	ch.letGo(l)
	ch.mu.Lock()
	if len(ch.leased) == 64 {
		ch.leased = ch.leased[1:]
	}
	ch.leased = append(ch.leased, id)
	ch.mu.Unlock()
	at := ch.now()
	result := []byte(fmt.Sprintf("r-%d", id))
	var err error
	switch r := rng.IntN(10); {
	case r < 6:
		if err = ch.q.Complete(ctx, l.Token, result); err == nil {
			ch.completedGrouped(l)
			ch.say("C %d %d %s %s", id, at, ccKey(l.Job.Key), l.Job.Queue)
		}
	case r < 8:
		then := make([]NewJob, 1+rng.IntN(ccFollowUps))
		for k := range then {
			then[k] = NewJob{Queue: []string{"", ccPaused}[rng.IntN(2)], Payload: []byte("follow-up")}
			if k == 0 {
				then[k].Key = fmt.Sprintf("f%d", id)
			}
		}
		var res []Enqueued
		if res, err = ch.q.CompleteAndEnqueue(ctx, l.Token, result, then); err == nil {
			ch.completedGrouped(l)
			ch.say("C %d %d %s %s", id, at, ccKey(l.Job.Key), l.Job.Queue)
			ch.reportEnqueued(then, res)
		}
	default:
		err = ch.q.Fail(ctx, l.Token, errors.New("flaky"))
	}
	// The key-reuse lane moves the clock: a lease may expire.
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		ch.fail("finish", err)
	}
}

// reuse is the key-reuse lane: it moves the clock, enqueues one of a few
// keys on its own queue and completes what it leases, so that the keys'
// jobs finish and their retention ends (in this cycle or a later one).
// Mostly it enqueues a key whose job's retention is over, so that the
// enqueue forgets the old job in the entry that creates the new one, and
// hands the old job to the purger at the same moment, so that a Purge of
// it races that entry.
func (ch *ccChild) reuse(rng *rand.Rand, _ int) {
	ctx := context.Background()
	end := ch.start + int64(ccSpan)
	type done struct {
		id uint64
		at int64 // when it finished
	}
	finished := map[string]done{}
	js, err := ch.q.Jobs(ctx, JobFilter{Queue: "reuse", State: StateCompleted})
	if err != nil {
		ch.fail("reuse jobs", err)
	}
	for _, j := range js {
		finished[j.Key] = done{j.ID, j.FinishedAt.UnixNano()}
	}
	for ch.alive() {
		if next := min(ch.now()+int64(ccStep), end); next > ch.now() {
			ch.mc.Set(time.Unix(0, next))
		}
		key := fmt.Sprintf("r%d", rng.IntN(ccReuseKeys))
		for k, d := range finished { // map order: a random one
			if d.at+int64(ccRetention) <= ch.now() && rng.IntN(4) != 0 {
				key = k
				ch.toPurge(d.id)
				break
			}
		}
		nj := NewJob{Queue: "reuse", Key: key, Payload: make([]byte, 32)}
		r, err := ch.q.Enqueue(ctx, nj)
		if err != nil {
			ch.fail("reuse enqueue", err)
		}
		ch.reportEnqueued([]NewJob{nj}, []Enqueued{r})
		if !r.Duplicate {
			delete(finished, key)
		}
		l, err := ch.q.TryLease(ctx, "reuse")
		if errors.Is(err, ErrNoJob) {
			continue
		}
		if err != nil {
			ch.fail("reuse lease", err)
		}
		at := ch.now()
		if err := ch.q.Complete(ctx, l.Token, []byte(fmt.Sprintf("r-%d", l.Job.ID))); err != nil {
			ch.fail("reuse complete", err)
		}
		ch.say("C %d %d %s reuse", l.Job.ID, at, ccKey(l.Job.Key))
		finished[l.Job.Key] = done{l.Job.ID, at}
		if rng.IntN(6) == 0 {
			ch.toPurge(l.Job.ID)
		}
	}
}

// toPurge hands a job to the purger, unless it is behind.
func (ch *ccChild) toPurge(id uint64) {
	select {
	case ch.purgeCh <- id:
	default:
	}
}

// purge purges the jobs the key-reuse lane hands it: some just completed,
// most past their retention, whose key the lane is reusing at that moment.
func (ch *ccChild) purge(_ *rand.Rand, _ int) {
	ctx := context.Background()
	for ch.alive() {
		var id uint64
		select {
		case id = <-ch.purgeCh:
		case <-time.After(time.Until(ch.deadline)):
			return
		}
		ch.say("X %d", id)
		if err := ch.q.Purge(ctx, []uint64{id}); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrState) {
			ch.fail("purge", err)
		}
	}
}

// pause pauses and resumes ccPaused by turns, checking after each call
// that the live queue says what the call did (nothing else pauses it).
func (ch *ccChild) pause(_ *rand.Rand, _ int) {
	ctx := context.Background()
	st, err := ch.q.Stats(ctx)
	if err != nil {
		ch.fail("stats", err)
	}
	paused := st.Queues[ccPaused].Paused
	for ch.alive() {
		if paused {
			ch.say("r")
			if err := ch.q.Resume(ctx, ccPaused); err != nil {
				ch.fail("resume", err)
			}
			ch.say("RA")
		} else {
			ch.say("p")
			if err := ch.q.Pause(ctx, ccPaused); err != nil {
				ch.fail("pause", err)
			}
			ch.say("PA")
		}
		paused = !paused
		if st, err = ch.q.Stats(ctx); err != nil {
			ch.fail("stats", err)
		}
		if st.Queues[ccPaused].Paused != paused {
			ch.say("ERR live: queue %q paused = %v right after the call that set it to %v returned", ccPaused, !paused, paused)
			os.Exit(2)
		}
	}
}

// compact calls Compact after every change acknowledged meanwhile (the
// others poke it), so that it runs as often as it can without spinning on
// a log with nothing to compact.
func (ch *ccChild) compact(_ *rand.Rand, _ int) {
	for ch.alive() {
		select {
		case <-ch.changed:
		case <-time.After(time.Until(ch.deadline)):
			return
		}
		ch.write("k")
		st, err := ch.q.Compact(context.Background())
		if err != nil {
			ch.fail("compact", err)
		}
		ch.write("K %d", st.SegmentsRemoved)
	}
}
