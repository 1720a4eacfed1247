package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkOnePrefix fails unless msg says "walq:" exactly once, at its start,
// and names no lower walq package ("walq/log:").
func checkOnePrefix(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "walq: ") || strings.Count(msg, "walq:") != 1 || strings.Contains(msg, "walq/") {
		t.Errorf("%s: %q, want one walq: prefix and no lower package's", what, msg)
	}
}

// TestErrorTexts checks that queue's errors say "walq:" once, whatever
// layer they come from, and still match their sentinels and types.
func TestErrorTexts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("lease expired and lost", func(t *testing.T) {
		t.Parallel()
		q := openTest(t, t.TempDir(), &Options{LeaseDuration: time.Minute})
		enqueueT(t, q, NewJob{})
		l := leaseT(t, q, "")
		mockOf(t, q).Add(2 * time.Minute)
		err := q.Complete(ctx, l.Token, nil)
		if !errors.Is(err, ErrLeaseExpired) || !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Complete after the deadline = %v, want ErrLeaseExpired and ErrLeaseLost", err)
		}
		checkOnePrefix(t, "Complete after the deadline", err)
		err = q.Complete(ctx, l.Token, nil)
		if !errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("Complete again = %v, want ErrLeaseLost", err)
		}
		checkOnePrefix(t, "Complete again", err)
		checkOnePrefix(t, "ErrLeaseExpired", ErrLeaseExpired)
	})

	t.Run("open", func(t *testing.T) {
		t.Parallel()
		write := func(t *testing.T, dir, name, data string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name  string
			setup func(t *testing.T, dir string) string
			want  error
		}{
			{"not a queue", func(t *testing.T, dir string) string { write(t, dir, "notes.txt", "x"); return dir }, ErrNotQueue},
			{"newer version", func(t *testing.T, dir string) string { write(t, dir, "FORMAT", "walq 9\n"); return dir }, ErrVersion},
			{"regular file", func(t *testing.T, dir string) string {
				write(t, dir, "f", "x")
				return filepath.Join(dir, "f")
			}, ErrNotQueue},
			{"corrupt", corruptDir, ErrCorrupt},
			{"open in this process", func(t *testing.T, dir string) string { openTest(t, dir, nil); return dir }, ErrLocked},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				path := tc.setup(t, t.TempDir())
				_, err := Open(path, &Options{Logger: openTestLogger(), CompactRatio: -1})
				if !errors.Is(err, tc.want) {
					t.Fatalf("Open = %v, want %v", err, tc.want)
				}
				checkOnePrefix(t, "Open", err)
			})
		}
	})
}

// corruptDir makes a queue in dir whose first log entry has a flipped
// byte, and returns dir.
func corruptDir(t *testing.T, dir string) string {
	t.Helper()
	q := openTest(t, dir, nil)
	for range 3 {
		enqueueT(t, q, NewJob{Payload: []byte("some payload to damage")})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	seg := firstSegment(t, dir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[20] ^= 0xff
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// firstSegment returns the path of dir's first segment file.
func firstSegment(t *testing.T, dir string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "[0-9]*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	return names[0]
}

// TestCorruptError checks that Open reports corruption as queue's own
// *CorruptError, located, matching ErrCorrupt.
func TestCorruptError(t *testing.T) {
	t.Parallel()
	dir := corruptDir(t, t.TempDir())
	for _, ro := range []bool{false, true} {
		_, err := Open(dir, &Options{ReadOnly: ro, Logger: openTestLogger(), CompactRatio: -1})
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open(read-only %v) = %v, want a *CorruptError matching ErrCorrupt", ro, err)
		}
		if ce.Segment != firstSegment(t, dir) || ce.Offset != 0 || ce.Reason == "" {
			t.Errorf("Open(read-only %v): %+v, want the first segment at offset 0 with a reason", ro, ce)
		}
		checkOnePrefix(t, "CorruptError", ce)
	}
}

// TestDurabilityConverts checks that each Durability reaches the log as
// the same mode.
func TestDurabilityConverts(t *testing.T) {
	t.Parallel()
	for _, d := range []Durability{Sync, Interval, None} {
		if got := d.logDurability().String(); got != d.String() {
			t.Errorf("%v reaches the log as %v", d, got)
		}
	}
	if _, err := Open(t.TempDir(), &Options{Durability: None + 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open with Durability %d = %v, want ErrInvalid", None+1, err)
	}
}
