package queue

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// lowerRef matches a reference to a walq package below queue in
// documentation: a qualified identifier (wlog.Repair, index.State,
// recovery.Report) or an import path other than queue's.
var lowerRef = regexp.MustCompile(`\b(wlog|log|index|recovery)\.[A-Za-z_]|github\.com/walq/walq/(log|index|recovery)\b|walq/(log|index|recovery)\b`)

// TestPublicSurface checks that queue's documented API, as go doc prints
// it, names no type, value or package of walq's lower layers: queue is
// the package with a compatibility promise, and they have none.
func TestPublicSurface(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	out, err := exec.Command(gobin, "doc", "-all", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go doc -all .: %v\n%s", err, out)
	}
	doc := string(out)
	if !strings.Contains(doc, "func Open(dir string, opts *Options) (*Queue, error)") {
		t.Fatalf("go doc -all . printed no Open; output:\n%s", doc)
	}
	// The shared API of every engine, and what another engine builds its
	// events on.
	for _, want := range []string{"type Engine interface {", "type EngineInfo struct {",
		"func (b *Broadcaster) Publish(ev Event)", "func (q *Queue) Info() EngineInfo"} {
		if !strings.Contains(doc, want) {
			t.Errorf("go doc -all . lacks %q", want)
		}
	}
	for i, line := range strings.Split(doc, "\n") {
		if m := lowerRef.FindString(line); m != "" {
			t.Errorf("go doc line %d refers to a lower walq package (%q): %s", i+1, m, strings.TrimSpace(line))
		}
	}
}
