package review

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
)

// markdownReport is a review with every string the Markdown rendering
// writes taken from v, one call per place, so that a test can put a
// hostile value anywhere.
func markdownReport(v func() string) Report {
	fields := func() []FieldChange { return []FieldChange{{Field: v(), From: v(), To: v()}} }
	host := HostReview{
		Host:       fleets.Host{Name: v(), Labels: map[string]string{v(): v()}},
		BaseLabels: map[string]string{v(): v()},
		Inventory:  InventoryAdded,
		Blocked:    []string{v()},
		Warnings:   []Warning{{Kind: v(), Fleet: v(), Service: v(), Message: v()}, {Kind: v(), Fleet: v(), Message: v()}},
		Fleets: []FleetReview{
			{Name: v(), Change: Changed, Reason: v(), Updates: fields(), Services: []ServiceReview{
				{Name: v(), Change: Changed, Image: v(), Replicas: Scale{1, 3},
					Recreate: &Recreate{Containers: 1, Fields: fields(), Build: fields(), Rollout: RolloutReview{
						Parallelism: 1, Batches: 1, Order: v(), Forced: v(), RequestedOrder: v(), FailureAction: v(), Delay: v(), Monitor: v(),
					}},
					Updates: fields()},
				{Name: v(), Change: Added, Image: v(), Reason: v(), Replicas: Scale{0, 2}},
			}},
			{Name: v(), Change: Removed, Reason: v()},
		},
		Counts: Counts{FleetsChanged: 1, FleetsRemoved: 1, ServicesAdded: 1, Recreated: 1, Containers: 1, Scaled: 1, Updated: 1, Warnings: 2},
	}
	quiet := HostReview{Host: fleets.Host{Name: v()}}
	return Report{
		Base: RevisionRef{Ref: v(), Commit: v()}, Head: RevisionRef{Ref: v(), Commit: v()},
		Problems: []fleets.Problem{{File: v(), Line: 3, Fleet: v(), Service: v(), Field: v(), Message: v()}},
		HostAccess: []AccessChange{
			{Fleet: v(), Service: v(), Field: v(), To: v(), Hosts: []string{v(), v()}},
			{Fleet: v(), Field: v(), From: v(), To: v(), Hosts: []string{v()}},
		},
		Hosts: []HostReview{host, quiet},
	}
}

// checkMarkdown holds got to the structure of want, the same review with
// harmless values: the same lines, each starting with the same markup
// (indentation and first character), the same table cells; and, on every
// line, every code span closed and no HTML but the rendering's own outside
// code spans.
func checkMarkdown(t *testing.T, got, want string) {
	t.Helper()
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(gl) != len(wl) {
		t.Fatalf("%d lines, want %d:\n%s", len(gl), len(wl), got)
	}
	for i := range gl {
		if lineKind(gl[i]) != lineKind(wl[i]) {
			t.Fatalf("line %d starts %q, want %q:\n%s", i+1, lineKind(gl[i]), lineKind(wl[i]), gl[i])
		}
		if err := scanLine(gl[i]); err != nil {
			t.Fatalf("line %d: %v:\n%s", i+1, err, gl[i])
		}
		if strings.HasPrefix(wl[i], "|") && cells(gl[i]) != cells(wl[i]) {
			t.Fatalf("line %d: %d table cells, want %d:\n%s", i+1, cells(gl[i]), cells(wl[i]), gl[i])
		}
	}
}

// lineKind is a line's indentation and first character: what Markdown
// decides the line's block by.
func lineKind(line string) string {
	trimmed := strings.TrimLeft(line, " ")
	if trimmed == "" {
		return "(blank)"
	}
	r := []rune(trimmed)[0]
	return fmt.Sprintf("%d %c", len(line)-len(trimmed), r)
}

// cells counts the unescaped pipes of a table row (a pipe splits a cell
// in a code span too).
func cells(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

// ownTags are the only HTML the rendering writes.
var ownTags = []string{"<details>", "</details>", "<summary>", "</summary>", "<b>", "</b>"}

// scanLine reads a line as CommonMark reads inline text: a backslash
// escapes the punctuation after it, a run of backticks opens a code span
// that the next run of the same length closes, and inside one nothing is
// markup. Outside code spans, a < must start one of the rendering's own
// tags; every code span must close on its line.
func scanLine(line string) error {
	// A line that starts with <details> is an HTML block (to the next
	// blank line): no Markdown in it, only HTML.
	html := strings.HasPrefix(line, "<details>")
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case html && c != '<':
			i++
		case c == '\\' && i+1 < len(line) && isASCIIPunct(line[i+1]):
			i += 2
		case c == '`':
			n := runLen(line, i, '`')
			end := closingRun(line, i+n, n)
			if end < 0 {
				return fmt.Errorf("a code span at byte %d is not closed on its line", i)
			}
			i = end + n
		case c == '<':
			own := false
			for _, tag := range ownTags {
				if strings.HasPrefix(line[i:], tag) {
					own, i = true, i+len(tag)
					break
				}
			}
			if !own {
				return fmt.Errorf("raw HTML at byte %d: %.20q", i, line[i:])
			}
		default:
			i++
		}
	}
	return nil
}

func runLen(s string, i int, c byte) int {
	n := 0
	for i+n < len(s) && s[i+n] == c {
		n++
	}
	return n
}

// closingRun is where the next run of exactly n backticks from i starts,
// or -1.
func closingRun(s string, i, n int) int {
	for i < len(s) {
		if s[i] != '`' {
			i++
			continue
		}
		m := runLen(s, i, '`')
		if m == n {
			return i
		}
		i += m
	}
	return -1
}

func isASCIIPunct(c byte) bool {
	return strings.IndexByte("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) >= 0
}

// hostile are values that broke out of their place before they were
// escaped: an HTML comment that hid the rest of the plan, backticks,
// pipes, line breaks that start a new list item, heading or block, HTML.
var hostile = []string{
	"<!-- the rest is hidden",
	"web`; echo `pwned",
	"`",
	"``x``",
	" spaced ",
	"a|b||c",
	"line one\n- injected item\n# heading\n\n<!--",
	"carriage\rreturn\r\nand crlf",
	"<script>alert(1)</script>",
	"**bold** _em_ [link](https://evil.example) ![img](x) ~~gone~~ $x$",
	"</summary></details><details open>",
	"trailing backslash\\",
	"\\`escaped`",
	"&lt;!-- an entity",
	"nul\x00byte",
}

// TestMarkdownHostile puts each hostile value in every place the
// Markdown rendering writes a value, and in one place at a time among
// harmless ones.
func TestMarkdownHostile(t *testing.T) {
	want := markdownReport(func() string { return "x" }).Markdown()
	for _, h := range hostile {
		t.Run(fmt.Sprintf("%.20q", h), func(t *testing.T) {
			got := markdownReport(func() string { return h }).Markdown()
			checkMarkdown(t, got, want)
			if strings.Contains(h, "<!--") && strings.Contains(got, "\n<!--") {
				t.Errorf("an HTML comment starts a line:\n%s", got)
			}
			slots := 0
			markdownReport(func() string { slots++; return "x" })
			for i := range slots {
				n := 0
				got := markdownReport(func() string {
					n++
					if n == i+1 {
						return h
					}
					return "x"
				}).Markdown()
				checkMarkdown(t, got, want)
			}
		})
	}
}

func TestMarkdownEscapes(t *testing.T) {
	for _, tt := range []struct {
		f        func(string) string
		in, want string
	}{
		{code, "", "*(none)*"},
		{code, "nginx:1.27", "`nginx:1.27`"},
		{code, "<!-- x", "`<!-- x`"},
		{code, "a`b", "``a`b``"},
		{code, "`a", "`` `a ``"},
		{code, " a ", "`  a  `"},
		{code, "   ", "`   `"},
		{code, "a\nb\r\nc", "`a␤b␤c`"},
		{text, "<!-- x -->", `&lt;\!-- x --&gt;`},
		{text, "<script>", "&lt;script&gt;"},
		{text, "a|b", `a\|b`},
		{text, "`x`", "\\`x\\`"},
		{text, "**b** _i_ [l](u)", `\*\*b\*\* \_i\_ \[l\](u)`},
		{text, `a\`, `a\\`},
		{text, "a\n- b", "a␤- b"},
		{text, "AT&T", "AT&amp;T"},
		{text, "allow_mass_prune", "allow_mass_prune"},
		{text, "_a__b_ é_é", `\_a\_\_b\_ é_é`},
		{htmlText, "web-1\n\n<b>x</b>", "web-1␤␤&lt;b&gt;x&lt;/b&gt;"},
	} {
		if got := tt.f(tt.in); got != tt.want {
			t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzMarkdown renders reviews whose values are the fuzzer's (two values,
// alternating over the places) and holds the output to the structure of
// the same review with harmless values (checkMarkdown).
func FuzzMarkdown(f *testing.F) {
	for i, h := range hostile {
		f.Add(h, hostile[(i+1)%len(hostile)])
	}
	f.Add("x", "x")
	want := markdownReport(func() string { return "x" }).Markdown()
	f.Fuzz(func(t *testing.T, a, b string) {
		n := 0
		got := markdownReport(func() string {
			n++
			if n%2 == 0 {
				return b
			}
			return a
		}).Markdown()
		checkMarkdown(t, got, want)
	})
}
