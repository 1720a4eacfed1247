//go:build !linux

package bench

// peakRSS returns 0 (unknown): the peak RSS is read from /proc/self/status
// (VmHWM), which only Linux has; see peakrss_linux.go for why not
// getrusage's ru_maxrss.
func peakRSS() int64 { return 0 }
