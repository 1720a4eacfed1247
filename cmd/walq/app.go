package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/benbjohnson/clock"
)

// command is one walq subcommand. Each lives in its own file.
type command struct {
	name    string
	args    string // positional arguments, as shown in the usage line
	group   string // heading it is listed under in "walq help"
	summary string // one line for the command list
	help    string // a paragraph for "walq <command> --help"
	example string // one or more example invocations, one per line
	run     func(a *app, cmd *command, args []string) error
}

// groups orders the headings of the command list.
var groups = []string{"Start here", "Inspect (read-only, safe while an app runs)", "Change (takes the write lock)", "Other"}

// commands returns the command table in listing order.
func commands() []*command {
	return []*command{
		demoCmd,
		statsCmd, jobsCmd, showCmd, deadCmd, logCmd, checkCmd, schedulesCmd, webCmd,
		enqueueCmd, cancelCmd, requeueCmd, purgeCmd, compactCmd, salvageCmd, pauseCmd, resumeCmd,
		benchCmd, versionCmd,
	}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// app is one run of walq: its streams, its context (cancelled by SIGINT or
// SIGTERM) and the clock that read commands judge ages and readiness by.
// Tests build one with a mock clock and a fixed location.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	clock  clock.Clock
	loc    *time.Location // human output shows times here
	poll   time.Duration  // how often log --follow looks for new entries
	// prog is how the user runs walq ("walq", "./walq", "go run
	// ./cmd/walq"): commands walq prints for the user to run start with it.
	prog string
}

// run is walq's main: it runs the command named by args[0] and returns the
// exit code. Commands it prints for the user start with "walq".
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runAs("walq", args, stdin, stdout, stderr)
}

// runAs is run with the commands walq prints starting with prog.
func runAs(prog string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process as usual.
		<-ctx.Done()
		stop()
	}()
	a := newApp(ctx, stdin, stdout, stderr)
	a.prog = prog
	return a.main(args)
}

func newApp(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{
		ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr,
		clock: clock.New(), loc: time.Local, poll: 200 * time.Millisecond, prog: "walq",
	}
}

// main dispatches args and maps the outcome to an exit code.
func (a *app) main(args []string) int {
	if len(args) == 0 {
		a.usage(a.stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c := lookup(args[1])
			if c == nil {
				return a.exit(nil, unknownCommand(args[1]))
			}
			return a.exit(c, c.run(a, c, []string{"--help"}))
		}
		a.usage(a.stdout)
		return 0
	}
	c := lookup(name)
	if c == nil {
		if name == "--version" || name == "-version" {
			return a.exit(versionCmd, versionCmd.run(a, versionCmd, args[1:]))
		}
		if strings.HasPrefix(name, "-") {
			return a.exit(nil, usagef("flags go after the command: walq <command> [flags] DIR; run 'walq help'"))
		}
		return a.exit(nil, unknownCommand(name))
	}
	return a.exit(c, c.run(a, c, args[1:]))
}

// unknownCommand reports a command walq does not have, suggesting the
// nearest one.
func unknownCommand(name string) error {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if near := closest(name, names); near != "" {
		return usagef("unknown command %q; did you mean %q? run 'walq help' for the list", name, near)
	}
	return usagef("unknown command %q; run 'walq help' for the list", name)
}

// usage prints the command list.
func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "walq inspects, operates and demonstrates walq job queue directories.\n\n")
	fmt.Fprintf(w, "Usage:\n  walq <command> [flags] DIR\n")
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, c := range commands() {
			if c.group == g {
				fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
			}
		}
	}
	fmt.Fprintf(w, "\nRun 'walq <command> --help' for a command's flags and an example.\n")
	fmt.Fprintf(w, "New here? Run '%s demo'.\n", a.prog)
}

// Errors that carry an exit code.

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitError ends walq with code after the command has said all it has to
// say (check finding corruption, an interrupted demo).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// errHelp means --help was asked for and printed.
var errHelp = errors.New("help shown")

// exit reports err on stderr as one line and returns the exit code.
func (a *app) exit(c *command, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		if c != nil {
			fmt.Fprintf(a.stderr, "walq %s: %s (see 'walq %s --help')\n", c.name, ue.msg, c.name)
		} else {
			fmt.Fprintf(a.stderr, "walq: %s\n", ue.msg)
		}
		return 2
	case errors.Is(err, context.Canceled) && a.ctx.Err() != nil:
		fmt.Fprintf(a.stderr, "walq: interrupted\n")
		return 130
	}
	fmt.Fprintf(a.stderr, "walq: %s\n", oneLine(err))
	return 1
}

// errPrefixes are the prefixes walq's packages start their error messages
// with; walq prints its own once.
var errPrefixes = []string{"walq: ", "walq/log: ", "walq/recovery: ", "walq/index: ", "walq/queue: "}

// oneLine renders an error as one line without package prefixes, at its
// start or where one error wraps another ("lease expired: walq: lease
// lost" becomes "lease expired: lease lost").
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	for _, p := range errPrefixes {
		s = strings.TrimPrefix(s, p)
		s = strings.ReplaceAll(s, ": "+p, ": ")
		s = strings.ReplaceAll(s, "("+p, "(")
	}
	return s
}

// Flags.

// flagSet returns a new, quiet flag set for a command: walq prints usage
// and errors itself.
func flagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses a command's flags, which may come before or after its
// positional arguments ("walq jobs DIR --state dead" works), and returns
// the positional arguments. "--" ends the flags. --help prints the
// command's help and returns errHelp.
func (a *app) parse(c *command, fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if arg == "-" || !strings.HasPrefix(arg, "-") || isNegativeNumber(arg) {
			pos = append(pos, arg)
			continue
		}
		flags = append(flags, arg)
		name := strings.TrimLeft(arg, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	err := fs.Parse(flags)
	switch {
	case errors.Is(err, flag.ErrHelp):
		a.help(a.stdout, c, fs)
		return nil, errHelp
	case err != nil:
		return nil, &usageError{flagError(fs, err)}
	}
	return pos, nil
}

// isNegativeNumber reports whether arg is "-" followed by digits: a
// mistyped ID such as "-5" is an argument for the command to judge, not an
// unknown flag.
func isNegativeNumber(arg string) bool {
	_, err := strconv.ParseInt(arg, 10, 64)
	return err == nil && strings.HasPrefix(arg, "-")
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagError rewords the flag package's messages with double dashes, and
// says what a flag accepts when its value does not parse.
func flagError(fs *flag.FlagSet, err error) string {
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, "flag provided but not defined: "); ok {
		name := strings.TrimLeft(rest, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if near := closest(name, names); near != "" {
			return fmt.Sprintf("unknown flag --%s; did you mean --%s?", name, near)
		}
		return "unknown flag --" + name
	}
	if rest, ok := strings.CutPrefix(s, "flag needs an argument: "); ok {
		return "flag --" + strings.TrimLeft(rest, "-") + " needs a value"
	}
	if m := invalidValue.FindStringSubmatch(s); m != nil {
		if f := fs.Lookup(m[2]); f != nil && (m[3] == "parse error" || m[3] == "value out of range") {
			return fmt.Sprintf("invalid value %s for --%s: want %s", m[1], m[2], accepted(f))
		}
	}
	return strings.Replace(s, "for flag -", "for --", 1)
}

// invalidValue matches the flag package's message for a value that does
// not parse: the value (quoted), the flag's name and the reason.
var invalidValue = regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -(\S+): (.*)$`)

// acceptedValues says what a numeric flag takes, by name; other flags are
// described by their type.
var acceptedValues = map[string]string{
	"priority":     "a whole number from -2147483648 to 2147483647 (higher runs first)",
	"max-attempts": "a whole number, 0 or more (0: the queue's default)",
	"job":          "a job ID (a positive number, as 'walq jobs' shows)",
	"after":        "a job ID (a number, as 'walq jobs' shows; 0 starts at the first job)",
	"from":         "a log index (a number, as 'walq log' shows; 0 starts at the first entry)",
	"limit":        "a whole number, 0 or more (0: no limit)",
}

// accepted describes the values flag f takes.
func accepted(f *flag.Flag) string {
	if s, ok := acceptedValues[f.Name]; ok {
		return s
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a valid value"
	}
	switch g.Get().(type) {
	case int, int64:
		return "a whole number"
	case uint, uint64:
		return "a whole number, 0 or more"
	case bool:
		return "true or false"
	case float64:
		return "a number"
	}
	return "a valid value"
}

// closest returns the candidate nearest to s when it is a likely typo of
// it (a prefix of it, or at most two edits away), or "".
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(s, c)
		if strings.HasPrefix(c, s) && len(s) >= 3 {
			d = min(d, 1)
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (with adjacent
// transpositions) between a and b.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// help prints a command's usage, description, flags and example.
func (a *app) help(w io.Writer, c *command, fs *flag.FlagSet) {
	flagsPart := ""
	if hasFlags(fs) {
		flagsPart = " [flags]"
	}
	fmt.Fprintf(w, "Usage: walq %s%s %s\n\n", c.name, flagsPart, c.args)
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(c.help))
	if hasFlags(fs) {
		fmt.Fprintf(w, "\nFlags:\n")
		var lines [][2]string
		width := 0
		fs.VisitAll(func(f *flag.Flag) {
			arg, use := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if arg != "" && !isBoolFlag(f) {
				left += " " + arg
			}
			if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
				use += fmt.Sprintf(" (default %s)", def)
			}
			width = max(width, len(left))
			lines = append(lines, [2]string{left, use})
		})
		sort.Slice(lines, func(i, j int) bool { return lines[i][0] < lines[j][0] })
		for _, l := range lines {
			fmt.Fprintf(w, "  %-*s  %s\n", width, l[0], l[1])
		}
	}
	fmt.Fprintf(w, "\nExample:\n")
	for _, ex := range strings.Split(strings.TrimSpace(c.example), "\n") {
		fmt.Fprintf(w, "  %s\n", ex)
	}
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseDir parses the flags and the one DIR of a command that takes nothing
// else.
func (a *app) parseDir(c *command, fs *flag.FlagSet, args []string) (string, error) {
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return "", err
	}
	return oneDir(pos)
}

// oneDir checks that the positional arguments are exactly one directory.
func oneDir(pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("missing DIR, the queue directory")
	case 1:
		return pos[0], nil
	}
	return "", usagef("unexpected argument %q after DIR", pos[1])
}

// logger returns the logger handed to the queue: warnings (a repaired
// tail, voided leases) go to stderr, one line each.
func (a *app) logger() *slog.Logger {
	return slog.New(&warnHandler{w: a.stderr})
}

// warnHandler prints warnings and errors as "walq: warning: message
// (key=value, …)".
type warnHandler struct {
	w     io.Writer
	attrs []slog.Attr
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	var kv []string
	add := func(at slog.Attr) bool {
		kv = append(kv, at.Key+"="+at.Value.String())
		return true
	}
	for _, at := range h.attrs {
		add(at)
	}
	r.Attrs(add)
	line := "walq: warning: " + strings.TrimPrefix(r.Message, "walq: ")
	if len(kv) > 0 {
		line += " (" + strings.Join(kv, ", ") + ")"
	}
	_, err := fmt.Fprintln(h.w, line)
	return err
}

func (h *warnHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *warnHandler) WithGroup(string) slog.Handler { return h }
