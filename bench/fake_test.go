package bench

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// fault is a way for the in-memory backend to break its promises, so tests
// can check that the workloads' verification catches it.
type fault int

const (
	faultNone         fault = iota
	faultDrop               // acknowledge an enqueue but drop the job
	faultDuplicate          // deliver one job twice
	faultCorrupt            // flip a byte of a leased payload
	faultLoseComplete       // acknowledge a completion but keep the job
)

// memTarget returns a target backed by an in-memory queue per directory
// (so W4–W6's fixtures survive close and reopen) that misbehaves as f says.
func memTarget(f fault) Target {
	var mu sync.Mutex
	stores := map[string]*memStore{}
	return Target{Name: "mem", Durability: Sync, Config: "in-memory test double",
		Open: func(_ context.Context, p Params) (Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			s, ok := stores[p.Dir]
			if !ok {
				s = &memStore{leased: map[int][]byte{}, wake: make(chan struct{})}
				stores[p.Dir] = s
			}
			return &memBackend{s: s, fault: f}, nil
		}}
}

// memStore is one directory's state.
type memStore struct {
	mu      sync.Mutex
	ready   [][]byte
	leased  map[int][]byte
	lastID  int
	wake    chan struct{} // closed and replaced on enqueue
	calls   int           // chances the fault had
	faulted bool          // the fault has struck
}

// memBackend is a minimal correct queue, but for its fault, which strikes
// once.
type memBackend struct {
	s     *memStore
	fault fault
}

func (m *memBackend) strike(f fault) bool {
	if m.fault != f || m.s.faulted {
		return false
	}
	m.s.calls++ // let a few jobs through first
	if m.s.calls < 3 {
		return false
	}
	m.s.faulted = true
	return true
}

func (m *memBackend) Enqueue(ctx context.Context, payload []byte) error {
	return m.EnqueueBatch(ctx, [][]byte{payload})
}

func (m *memBackend) EnqueueBatch(_ context.Context, payloads [][]byte) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	for _, p := range payloads {
		if !m.strike(faultDrop) {
			m.s.ready = append(m.s.ready, slices.Clone(p))
		}
	}
	close(m.s.wake)
	m.s.wake = make(chan struct{})
	return nil
}

func (m *memBackend) Lease(ctx context.Context, wait bool) (Job, error) {
	for {
		m.s.mu.Lock()
		wake := m.s.wake
		if len(m.s.ready) > 0 {
			p := m.s.ready[0]
			if !m.strike(faultDuplicate) {
				m.s.ready = m.s.ready[1:]
			}
			m.s.lastID++
			id := m.s.lastID
			m.s.leased[id] = p
			out := slices.Clone(p)
			if m.strike(faultCorrupt) {
				out[len(out)-1]++
			}
			m.s.mu.Unlock()
			return Job{Payload: out, Ref: id}, nil
		}
		m.s.mu.Unlock()
		if !wait {
			return Job{}, ErrEmpty
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Job{}, ctx.Err()
		}
	}
}

func (m *memBackend) Complete(_ context.Context, j Job) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	id := j.Ref.(int)
	if _, ok := m.s.leased[id]; !ok {
		return errors.New("mem: not leased")
	}
	if !m.strike(faultLoseComplete) {
		delete(m.s.leased, id)
	}
	return nil
}

func (m *memBackend) Pending(context.Context) (int, error) {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	return len(m.s.ready) + len(m.s.leased), nil
}

func (m *memBackend) Close() error { return nil }
