package fault

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestRegister: an injector is found by its directory, under any spelling
// of the path, until it is unregistered; a later registration for the same
// directory replaces it and survives the earlier one's unregister.
func TestRegister(t *testing.T) {
	dir := t.TempDir()
	if Lookup(dir) != nil {
		t.Fatal("an injector for a new directory")
	}
	errA, errB := errors.New("a"), errors.New("b")
	undoA := Register(dir, Func(func(Op) error { return errA }))
	if inj := Lookup(filepath.Join(dir, "x", "..")); inj == nil || inj.MaybeError(Op{Kind: Write}) != errA {
		t.Fatalf("Lookup by another spelling of the path = %v", inj)
	}
	if Lookup(t.TempDir()) != nil {
		t.Fatal("an injector for another directory")
	}
	undoB := Register(dir, Func(func(Op) error { return errB }))
	undoA()
	if inj := Lookup(dir); inj == nil || inj.MaybeError(Op{Kind: Write}) != errB {
		t.Fatalf("after the first registration's unregister: %v, want the second injector", inj)
	}
	undoB()
	if Lookup(dir) != nil {
		t.Fatal("an injector after unregister")
	}
}
