package fleets

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a fleet: where it is (File, Line), whose it
// is (Fleet, Service) and what is wrong (Field, Message). File is a
// slash-separated path relative to the repository path; Line is 0 when the
// position is unknown. A fleet with a problem is not returned by Load.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Fleet   string `json:"fleet,omitempty"`
	Service string `json:"service,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String renders the problem as
// "file:line: fleet f: service s: field: message", leaving out what is
// unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Fleet != "" {
		b.WriteString("fleet " + p.Fleet + ": ")
	}
	if p.Service != "" {
		b.WriteString("service " + p.Service + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// ProblemList is every problem Load found in a repository. It is the error
// Load returns when any fleet is invalid.
type ProblemList []Problem

// Error renders the problems sorted, one per line.
func (l ProblemList) Error() string {
	sorted := slices.Clone(l)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Fleets returns the sorted names of the fleets that have problems. A fleet
// whose compose file could not be parsed is named after its directory.
func (l ProblemList) Fleets() []string {
	var names []string
	for _, p := range l {
		if p.Fleet != "" {
			names = append(names, p.Fleet)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func (l ProblemList) sort() {
	slices.SortFunc(l, compareProblems)
}

func compareProblems(a, b Problem) int {
	return cmp.Or(
		cmp.Compare(a.File, b.File),
		cmp.Compare(a.Line, b.Line),
		cmp.Compare(a.Fleet, b.Fleet),
		cmp.Compare(a.Service, b.Service),
		cmp.Compare(a.Field, b.Field),
		cmp.Compare(a.Message, b.Message),
	)
}

// errorf is the Message of a problem; it exists so that call sites read like
// fmt.Errorf and vet checks their format strings.
func errorf(format string, args ...any) string {
	return fmt.Sprintf(format, args...)
}

// NewSince returns the problems of head that base does not have, in head's
// order: what a change introduced. Problems are compared without their
// line, which moves when lines are added above; a problem that base has
// n times is old n times.
func NewSince(head, base []Problem) []Problem {
	seen := map[Problem]int{}
	for _, p := range base {
		p.Line = 0
		seen[p]++
	}
	var out []Problem
	for _, p := range head {
		key := p
		key.Line = 0
		if seen[key] > 0 {
			seen[key]--
			continue
		}
		out = append(out, p)
	}
	return out
}
