package index

import (
	"testing"
	"unsafe"
)

// TestJobSize keeps Job in the 80-byte size class: every pending job costs
// one, so a field added here costs 16 bytes per job (the next class is 96)
// unless something else moves to Extra.
func TestJobSize(t *testing.T) {
	if got := unsafe.Sizeof(Job{}); got > 80 {
		t.Fatalf("Job is %d bytes, want at most 80 (see the Memory section of DESIGN.md)", got)
	}
}
