package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Tables.

// table writes aligned columns: cells separated by tabs, rows by newlines.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline inside a cell would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// Numbers, sizes, durations and times for people.

// humanSize renders a byte count: 512 B, 1.5 KiB, 16.0 MiB.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= 1024
		if f < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	panic("unreachable")
}

// humanDuration renders a duration with two significant units at most:
// 0s, 850ms, 4.2s, 3m12s, 2h05m, 3d04h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	day := 24 * time.Hour
	return fmt.Sprintf("%dd%02dh", d/day, d%day/time.Hour)
}

// relative renders t against now: "3m12s ago", "in 4.2s", "now".
func relative(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-"
	case d > -time.Millisecond && d < time.Millisecond:
		return "now"
	case d > 0:
		return humanDuration(d) + " ago"
	}
	return "in " + humanDuration(-d)
}

// timeLayout is how human output shows a moment: millisecond precision,
// with the zone offset.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// stamp renders a moment in the app's location, "-" if zero.
func (a *app) stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(a.loc).Format(timeLayout)
}

// stampAgo renders a moment and its distance from now.
func (a *app) stampAgo(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return a.stamp(t) + " (" + relative(t, a.clock.Now()) + ")"
}

// truncate shortens s to n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// orDash returns s, or "-" when s is empty, so that a table cell is never
// blank.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Payloads.

// isText reports whether b is UTF-8 made of printable characters and
// ordinary whitespace, and so can be shown as it is.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// payloadShowLimit is how many bytes of a payload show prints.
const payloadShowLimit = 4096

// writePayload prints a payload indented: as text when printable, else as
// a hex dump; long payloads are cut at payloadShowLimit.
func writePayload(w io.Writer, b []byte, indent string) {
	shown := b
	if len(shown) > payloadShowLimit {
		shown = shown[:payloadShowLimit]
	}
	var body string
	if isText(b) || (len(b) > payloadShowLimit && isText(validPrefix(shown))) {
		body = string(validPrefix(shown))
	} else {
		body = hex.Dump(shown)
	}
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		fmt.Fprintf(w, "%s%s\n", indent, line)
	}
	if len(b) > len(shown) {
		fmt.Fprintf(w, "%s… %d more bytes (--payload-out FILE saves it all)\n", indent, len(b)-len(shown))
	}
}

// validPrefix drops a rune cut in half at the end of b.
func validPrefix(b []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return b
}

// describeBytes says how big a payload is and how it is shown.
func describeBytes(b []byte) string {
	kind := "binary"
	if isText(b) {
		kind = "text"
	}
	return humanSize(int64(len(b))) + ", " + kind
}

// preview renders the start of a payload as one space-free token: text
// (quoted if it must be), or hex.
func preview(b []byte, n int) string {
	if isText(b) {
		return quoteIfNeeded(truncate(string(b), n))
	}
	if len(b) > n/2 {
		return hex.EncodeToString(b[:n/2]) + "…"
	}
	return hex.EncodeToString(b)
}

// JSON.

// bytesJSON is a payload or result in JSON: text as is when it is
// printable UTF-8, base64 otherwise.
type bytesJSON struct {
	Size     int    `json:"size"`
	Encoding string `json:"encoding"` // "text" or "base64"
	Data     string `json:"data"`
}

func encodeBytes(b []byte) *bytesJSON {
	if isText(b) {
		return &bytesJSON{Size: len(b), Encoding: "text", Data: string(b)}
	}
	return &bytesJSON{Size: len(b), Encoding: "base64", Data: base64.StdEncoding.EncodeToString(b)}
}

// jsonTime renders a moment as RFC 3339 in UTC, nil (null) when zero.
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// unixTime converts a log record's Unix nanoseconds.
func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// seconds renders a duration in JSON as seconds.
func seconds(d time.Duration) float64 { return d.Seconds() }

// writeJSON prints v as indented JSON (reports).
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONLine prints v as one line of JSON (streams).
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Terminals and colour.

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// colorOK reports whether to colour output to w: only on a terminal, and
// never when NO_COLOR is set or TERM is dumb. Colour is used sparingly
// (check's verdict, the demo's counts), never inside tables, where escape
// codes would break the alignment.
func colorOK(w io.Writer) bool {
	return isTerminal(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

const (
	green = "32"
	red   = "31"
	bold  = "1"
)

// paint wraps s in an ANSI colour when w is a terminal.
func paint(w io.Writer, code, s string) string {
	if !colorOK(w) {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and ./_-:@%+=, so that printed commands paste as they are.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("./_-:@%+=,", r)))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
