// Package walq_test checks the documentation at the module's root.
package walq_test

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmes are the documents whose Go code blocks must be Examples.
var readmes = []string{"README.md", "cmd/walq/README.md", "jetstream/README.md"}

// exampleFiles are where those Examples live: they compile and run (with
// their // Output:) under go test, so a block that is one of them
// compiles and does what it says.
var exampleFiles = []string{"queue/example_test.go", "worker/example_test.go", "worker/example_typed_test.go", "walqtest/example_test.go", "queue/example_features_test.go", "web/example_test.go", "jetstream/example_test.go"}

// codeBlock is one fenced Go block of a document.
type codeBlock struct {
	file  string
	line  int // of the opening fence
	lines []string
}

// example is the body of one Example function, one tab of indentation
// removed from each line.
type example struct {
	name  string
	lines []string
}

// TestREADMEBlocksAreExamples checks that every ```go block of the READMEs
// is, line for line, a run of consecutive lines of one Example's body, so
// that a block cannot drift from code that compiles and runs. To change a
// block, change its Example and paste the lines back.
func TestREADMEBlocksAreExamples(t *testing.T) {
	t.Parallel()
	var examples []example
	for _, f := range exampleFiles {
		examples = append(examples, readExamples(t, f)...)
	}
	n := 0
	for _, f := range readmes {
		for _, b := range goBlocks(t, f) {
			n++
			if name := findRun(examples, b.lines); name != "" {
				continue
			}
			best, at, same := closest(examples, b.lines)
			t.Errorf("%s:%d: this ```go block is not a run of lines of any Example in %v; "+
				"the closest, %s, parts from it at the block's line %d: %q",
				b.file, b.line, exampleFiles, best, same+1, at)
		}
	}
	if n == 0 {
		t.Fatalf("found no ```go block in %v", readmes)
	}
}

// TestFindRun checks the matcher on blocks that must and must not match,
// so that the README check cannot pass by matching everything.
func TestFindRun(t *testing.T) {
	t.Parallel()
	ex := []example{{"Example", []string{"a := 1", "", "if a > 0 {", "\tb := a", "}", "fmt.Println(a)"}}}
	for _, tc := range []struct {
		block []string
		want  string
	}{
		{[]string{"if a > 0 {", "\tb := a", "}"}, "Example"},
		{[]string{"a := 1", "", "if a > 0 {", "\tb := a", "}", "fmt.Println(a)"}, "Example"},
		{[]string{"a := 1", "if a > 0 {"}, ""},            // a line left out
		{[]string{"if a > 0 {", "\tb := a + 1", "}"}, ""}, // a line edited
		{[]string{"fmt.Println(a)", "return"}, ""},        // runs past the end
		{[]string{}, ""},
	} {
		if got := findRun(ex, tc.block); got != tc.want {
			t.Errorf("findRun(%q) = %q, want %q", tc.block, got, tc.want)
		}
	}
}

// goBlocks returns the fenced blocks of a Markdown file whose info string
// is go or golang.
func goBlocks(t *testing.T, path string) []codeBlock {
	t.Helper()
	f, err := os.Open(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []codeBlock
	var cur *codeBlock
	fence := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t")
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && fence == "" && strings.HasPrefix(trimmed, "```"):
			fence = trimmed[:len(trimmed)-len(strings.TrimLeft(trimmed, "`"))]
			info := strings.Fields(strings.TrimPrefix(trimmed, fence))
			if len(info) > 0 && (info[0] == "go" || info[0] == "golang") {
				cur = &codeBlock{file: path, line: n}
			}
		case fence != "" && strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, "`") == "":
			if cur != nil {
				out = append(out, *cur)
			}
			cur, fence = nil, ""
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if fence != "" {
		t.Fatalf("%s: a code fence is never closed", path)
	}
	return out
}

// readExamples returns the Example functions of a test file.
func readExamples(t *testing.T, path string) []example {
	t.Helper()
	src, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Example") || fn.Body == nil {
			continue
		}
		body := string(src[fset.Position(fn.Body.Lbrace).Offset+1 : fset.Position(fn.Body.Rbrace).Offset])
		ex := example{name: fmt.Sprintf("%s (%s)", fn.Name.Name, path)}
		for _, l := range strings.Split(strings.Trim(body, "\n"), "\n") {
			ex.lines = append(ex.lines, strings.TrimRight(strings.TrimPrefix(l, "\t"), " \t"))
		}
		out = append(out, ex)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no Example function", path)
	}
	return out
}

// findRun returns the name of the first example whose body has block as a
// run of consecutive lines, or "".
func findRun(examples []example, block []string) string {
	if len(block) == 0 {
		return ""
	}
	for _, ex := range examples {
		for i := 0; i+len(block) <= len(ex.lines); i++ {
			if equalLines(ex.lines[i:i+len(block)], block) {
				return ex.name
			}
		}
	}
	return ""
}

func equalLines(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// closest finds the example run that matches the longest prefix of block,
// for the failure message: the example, the first block line that differs
// and how many lines matched before it.
func closest(examples []example, block []string) (name, differs string, same int) {
	same = -1
	for _, ex := range examples {
		for i := range ex.lines {
			k := 0
			for k < len(block) && i+k < len(ex.lines) && ex.lines[i+k] == block[k] {
				k++
			}
			if k > same {
				name, same = ex.name, k
			}
		}
	}
	if same < len(block) {
		differs = block[same]
	}
	return name, differs, same
}
