package bench

import "syscall"

// peakRSS returns the calling process's peak resident set size in bytes,
// from getrusage(RUSAGE_SELF): ru_maxrss is in KiB on Linux.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) * 1024
}
