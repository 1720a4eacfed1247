package bench

import (
	"os"
	"strconv"
	"strings"
)

// peakRSS returns the calling process's peak resident set size in bytes:
// the VmHWM line of /proc/self/status, the high-water mark of this
// process image's own memory, or 0 if it cannot be read.
//
// Not getrusage(RUSAGE_SELF).ru_maxrss: Go starts a child with vfork, so
// the child execs out of its parent's address space, and Linux keeps that
// space's high-water mark in ru_maxrss across the exec. A child of a
// parent that once held 300 MiB reports ru_maxrss ≥ 300 MiB even if it
// never used more than 3 MiB (wait4's rusage has the same value); VmHWM
// is reset with the new address space.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kib << 10
	}
	return 0
}
