package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
)

func main() {
	os.Exit(runAs(invokedAs(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// invokedAs returns how the user ran walq, for the commands walq prints:
// "walq" when the binary is found on PATH under that name, the path as
// typed ("./walq") otherwise, and "go run ./cmd/walq" when go run built it
// from a clone (go run leaves no binary behind to name).
func invokedAs() string {
	exe, err := os.Executable()
	if err != nil {
		return "walq"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		if _, err := os.Stat(filepath.Join("cmd", "walq", "main.go")); err == nil {
			return "go run ./cmd/walq"
		}
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return "go run " + bi.Path + "@" + bi.Main.Version
		}
		return "go run ./cmd/walq"
	}
	arg0 := os.Args[0]
	if p, err := exec.LookPath(filepath.Base(arg0)); err == nil && sameFile(p, exe) {
		return filepath.Base(arg0)
	}
	return shellQuote(arg0)
}

// sameFile reports whether two paths name the same file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}
