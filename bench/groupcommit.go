package bench

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// GroupProducers is how many producers the group-commit baseline runs: W2's.
const GroupProducers = 64

// groupRun is the disk's limit for W2: producers goroutines each append a
// size-byte record and wait until it is durable, again and again, for d,
// through the best group commit there can be: every group holds one record
// of every producer (the committer waits for all of them, which no real
// log can afford, since it never knows how many are coming), and nothing
// else is done (no encoding, no index, no queue): one write(2) and one
// fdatasync per group. It returns records per second. A producer has one
// record in flight, so no group commit of these producers puts more
// records into an fsync; walq's W2 cannot beat it on the same disk.
func groupRun(dir string, d time.Duration, producers, size int) (float64, error) {
	f, err := os.CreateTemp(dir, "group-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	g := &groupLog{f: f, cond: sync.NewCond(new(sync.Mutex)), open: newBatch(), done: make(chan struct{}), active: producers}
	go g.commitLoop()
	rec := make([]byte, size)
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.leave()
			for time.Now().Before(deadline) {
				if err := g.append(rec); err != nil {
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	return float64(n.Load()) / took.Seconds(), g.close()
}

// groupLog is groupRun's log: appenders join the open batch; one committer
// writes and fdatasyncs a batch at a time.
type groupLog struct {
	f       *os.File
	cond    *sync.Cond // on cond.L: the open batch got an entry, or closing
	open    *groupBatch
	active  int // producers still appending: a full group holds one record of each
	closing bool
	err     error
	done    chan struct{} // closed when the committer returns
}

// groupBatch is the records committed by one write and one fdatasync.
type groupBatch struct {
	n    int // records in buf
	buf  []byte
	done chan struct{}
	err  error
}

func newBatch() *groupBatch { return &groupBatch{done: make(chan struct{})} }

// append adds rec to the open batch and waits until it is durable.
func (g *groupLog) append(rec []byte) error {
	g.cond.L.Lock()
	b := g.open
	b.buf = append(b.buf, rec...)
	b.n++
	g.cond.Signal()
	g.cond.L.Unlock()
	<-b.done
	return b.err
}

// leave tells the committer that a producer appends no more.
func (g *groupLog) leave() {
	g.cond.L.Lock()
	g.active--
	g.cond.Signal()
	g.cond.L.Unlock()
}

// commitLoop takes the open batch once it holds a record of every active
// producer, writes it, fdatasyncs and releases its appenders.
func (g *groupLog) commitLoop() {
	defer close(g.done)
	for {
		g.cond.L.Lock()
		for (g.open.n == 0 || g.open.n < g.active) && !g.closing {
			g.cond.Wait()
		}
		b := g.open
		if len(b.buf) == 0 { // closing
			g.cond.L.Unlock()
			return
		}
		g.open = newBatch()
		g.cond.L.Unlock()
		_, b.err = g.f.Write(b.buf)
		if b.err == nil {
			b.err = fdatasync(g.f)
		}
		if b.err != nil && g.err == nil {
			g.err = b.err
		}
		close(b.done)
	}
}

// close stops the committer once the open batch is committed and returns
// the first write or fdatasync error.
func (g *groupLog) close() error {
	g.cond.L.Lock()
	g.closing = true
	g.cond.Broadcast()
	g.cond.L.Unlock()
	<-g.done
	return g.err
}

// groupLimit describes GroupRate for the table's line of limits, or is
// empty when it was not measured (a report from before it was).
func (b *Baseline) groupLimit() string {
	if b.GroupRate.Median <= 0 {
		return ""
	}
	return fmt.Sprintf(" · %s records/s by %d producers through an ideal group commit (256 B append+fdatasync)", num(b.GroupRate.Median), GroupProducers)
}
