package log

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenPrefix checks that OpenPrefix reads a log up to its first
// corruption, in the last segment as in an earlier one, tells a torn tail
// from corruption, and writes nothing.
func TestOpenPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		segSize int
		damage  func(t *testing.T, segs []string) // damages the closed log
		torn    bool
	}{
		{"middle of the only segment", 0, func(t *testing.T, segs []string) { flipMiddle(t, segs[0]) }, false},
		{"middle of the first segment", 1024, func(t *testing.T, segs []string) { flipMiddle(t, segs[0]) }, false},
		{"middle of the last segment", 1024, func(t *testing.T, segs []string) { flipMiddle(t, segs[len(segs)-1]) }, false},
		{"torn tail", 1024, func(t *testing.T, segs []string) { appendBytes(t, segs[len(segs)-1], []byte{0x40, 1, 2}) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, err := Open(dir, &Options{SegmentSize: tc.segSize, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 60 {
				if _, err := l.Append([]Record{{Kind: KindEnqueued, Job: uint64(i + 1), Queue: "q", Payload: bytes.Repeat([]byte("x"), 60)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "0*"))
			tc.damage(t, segs)
			before := dirBytes(t, dir)

			l, rep, err := OpenPrefix(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if rep.Corruption == nil || rep.TornTail != tc.torn || rep.Segments != len(segs) {
				t.Fatalf("report: %+v", rep)
			}
			if l.LastIndex() != rep.KeptLast || rep.KeptLast != rep.Corruption.Index-1 {
				t.Errorf("log ends at %d, report keeps %d, corruption at %d", l.LastIndex(), rep.KeptLast, rep.Corruption.Index)
			}
			n := uint64(0)
			if err := l.Iterate(1, func(i uint64, _ []byte) error { n = i; return nil }); err != nil || n != rep.KeptLast {
				t.Errorf("Iterate read up to %d (%v), want %d", n, err, rep.KeptLast)
			}
			dry, err := Salvage(dir, true)
			if err != nil {
				t.Fatal(err)
			}
			if dry.KeptLast != rep.KeptLast || dry.Segment != rep.Segment || dry.Offset != rep.Offset || dry.DroppedBytes != rep.DroppedBytes {
				t.Errorf("OpenPrefix says %+v, Salvage's dry run %+v", rep.SalvageReport, dry)
			}
			if after := dirBytes(t, dir); after != before {
				t.Errorf("OpenPrefix changed the directory")
			}
		})
	}
	if _, _, err := OpenPrefix(t.TempDir()); !errors.Is(err, ErrNotLog) {
		t.Errorf("OpenPrefix of an empty directory: %v, want ErrNotLog", err)
	}
}

func flipMiddle(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Close()
}

// dirBytes renders every file of dir but the lock, with its contents.
func dirBytes(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&out, "%s %x\n", e.Name(), b)
	}
	return out.String()
}
