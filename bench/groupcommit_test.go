package bench

import (
	"strings"
	"testing"
	"time"
)

// The group-commit baseline runs its producers to the end (each append
// waits for a group holding one record of every producer still running, so
// a producer that stops must not strand the others) and reports a rate.
func TestGroupRunFinishes(t *testing.T) {
	rate, err := groupRun(t.TempDir(), 50*time.Millisecond, 8, PayloadSize)
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("groupRun rate = %v, want > 0", rate)
	}
	b := Baseline{GroupRate: Stat{Median: rate}}
	if got := b.groupLimit(); !strings.Contains(got, "64 producers") {
		t.Fatalf("groupLimit = %q", got)
	}
	if got := (&Baseline{}).groupLimit(); got != "" {
		t.Fatalf("groupLimit without a measurement = %q, want empty", got)
	}
}
