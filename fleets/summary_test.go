package fleets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// summary renders loaded fleets as flat "path = value" lines, leaving out
// zero values and hashes, so that a testdata case states only what it is
// about: a want line must appear in the summary (order of want lines is
// free), see matchSummary.
func summary(t *testing.T, fleets []Fleet) string {
	t.Helper()
	var out, names []string
	for _, f := range fleets {
		names = append(names, f.Name)
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		flatten(&out, f.Name, v)
	}
	out = append(out, strings.TrimSpace("fleets = "+strings.Join(names, " ")))
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func flatten(out *[]string, prefix string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "hash" || k == "context_hash" {
				continue
			}
			flatten(out, prefix+"."+k, e)
		}
	case []any:
		if len(v) == 0 {
			return
		}
		if allScalar(v) {
			*out = append(*out, fmt.Sprintf("%s = %v", prefix, strings.Trim(fmt.Sprint(v), "[]")))
			return
		}
		for i, e := range v {
			flatten(out, fmt.Sprintf("%s[%d]", prefix, i), e)
		}
	case nil:
	default:
		*out = append(*out, fmt.Sprintf("%s = %v", prefix, v))
	}
}

func allScalar(v []any) bool {
	for _, e := range v {
		switch e.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

// matchSummary checks that every want line is a line of got; a line
// "fleets = a, b" checks the names of the loaded fleets exactly.
func matchSummary(t *testing.T, got, want string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		have[l] = true
	}
	for _, l := range lines(want) {
		if !have[l] {
			t.Errorf("summary lacks %q", l)
		}
	}
	if t.Failed() {
		t.Logf("summary:\n%s", got)
	}
}
