package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/walq/walq/queue"
)

// durationValue is a flag holding a duration. Beyond time.ParseDuration's
// units it accepts days ("7d", "1d12h"), which is how people say retention.
type durationValue struct {
	d   time.Duration
	set bool
}

func (v *durationValue) String() string {
	if v == nil || !v.set {
		return ""
	}
	return v.d.String()
}

func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	v.d, v.set = d, true
	return nil
}

// durationFlag defines a duration flag on fs.
func durationFlag(fs *flag.FlagSet, name, usage string) *durationValue {
	v := &durationValue{}
	fs.Var(v, name, usage)
	return v
}

// parseDuration parses a non-negative duration such as 90s, 15m, 2h or 7d.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration (examples: 500ms, 90s, 15m, 2h, 7d)", s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 31)
		if err != nil {
			return 0, bad
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return days + d, nil
}

// parseIDs parses job IDs given as arguments; an ID given twice counts
// once.
func parseIDs(args []string) ([]uint64, error) {
	ids := make([]uint64, 0, len(args))
	seen := make(map[uint64]bool, len(args))
	for _, s := range args {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil || id == 0 {
			return nil, usagef("%q is not a job ID (a positive number, as 'walq jobs' shows)", s)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// dirAndIDs splits DIR ID... and requires at least one ID.
func dirAndIDs(pos []string) (string, []uint64, error) {
	if len(pos) == 0 {
		return "", nil, usagef("missing DIR, the queue directory")
	}
	if len(pos) == 1 {
		return "", nil, usagef("missing job ID after DIR")
	}
	ids, err := parseIDs(pos[1:])
	return pos[0], ids, err
}

// parseState checks a --state value against the job states.
func parseState(s string) (queue.JobState, error) {
	if s == "" {
		return "", nil
	}
	var names []string
	for _, st := range queue.JobStates() {
		if string(st) == s {
			return st, nil
		}
		names = append(names, string(st))
	}
	return "", usagef("invalid value %q for --state: want one of %s", s, strings.Join(names, ", "))
}
