package index

// State is where a job is in its life. The numeric values are stored in
// carry records: part of the on-disk format, never change or reuse them.
type State uint8

const (
	// Pending jobs wait to be leased: ready once the clock reaches RunAt,
	// scheduled before. Leased (by Lease), Cancelled (by Cancel).
	Pending State = 1
	// Leased jobs are running under a lease. Completed, Pending again (by
	// Fail with retries left, lease expiry, release), or Dead.
	Leased State = 2
	// Completed jobs finished successfully; kept (with result and key) for
	// the key-retention window, then purged.
	Completed State = 3
	// Dead jobs failed permanently or ran out of attempts: the dead-letter
	// queue. Pending again by Requeue, or Purged.
	Dead State = 4
	// Cancelled jobs were removed before running; purged like completed.
	Cancelled State = 5

	numStates = 6
)

var stateNames = [numStates]string{"", "pending", "leased", "completed", "dead", "cancelled"}

// String returns the state's lower-case name.
func (s State) String() string {
	if s.Valid() {
		return stateNames[s]
	}
	return "invalid"
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s > 0 && s < numStates }

// States returns every state in numeric order.
func States() []State { return []State{Pending, Leased, Completed, Dead, Cancelled} }

// Terminal reports whether a job in state s will not run again unless an
// operator requeues it.
func (s State) Terminal() bool { return s == Completed || s == Dead || s == Cancelled }
