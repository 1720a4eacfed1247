package wal

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs tidwall/wal's tests in a temporary working directory: they
// create and (not always) remove logs under relative paths such as
// "testlog" and "log", which would otherwise be left in the package
// directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "walq-wal-test-*")
	if err == nil {
		err = os.Chdir(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
