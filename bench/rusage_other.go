//go:build !linux

package bench

// peakRSS returns 0 (unknown): ru_maxrss is read on Linux only, where its
// unit is known to be KiB.
func peakRSS() int64 { return 0 }
