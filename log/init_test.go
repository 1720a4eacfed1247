package log

import (
	"os"
	"path/filepath"
	"testing"
)

// A first Open killed while it wrote the FORMAT file leaves FORMAT.tmp
// (and LOCK) behind; the next Open must take the directory as new, not
// refuse it as foreign (found by the kill test).
func TestOpenAfterCrashDuringInit(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{lockName: "", formatName + ".tmp": "wal"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := openLog(t, dir, nil)
	appendJobs(t, l, 1, 3, 10)
	if ok, err := checkFormat(dir); !ok || err != nil {
		t.Fatalf("FORMAT after Open: %v, %v", ok, err)
	}
}
