package fleets

import (
	"slices"
	"testing"
)

func TestNewSince(t *testing.T) {
	moved := Problem{File: "shop/compose.yaml", Line: 12, Fleet: "shop", Service: "web", Field: "ports", Message: "bad port"}
	twice := Problem{File: "shop/compose.yaml", Line: 3, Fleet: "shop", Message: "unknown key"}
	added := Problem{File: "hello/compose.yaml", Line: 1, Fleet: "hello", Message: "no services"}
	base := []Problem{
		{File: moved.File, Line: 9, Fleet: "shop", Service: "web", Field: "ports", Message: "bad port"}, // same problem, 3 lines up
		twice,
		{File: "gone/compose.yaml", Line: 1, Fleet: "gone", Message: "fixed since"},
	}
	head := []Problem{moved, twice, twice, added}
	got := NewSince(head, base)
	if want := []Problem{twice, added}; !slices.Equal(got, want) {
		t.Errorf("NewSince = %v, want %v (a moved problem is old; a second copy and an unseen one are new)", got, want)
	}
	if got := NewSince(head, nil); !slices.Equal(got, head) {
		t.Errorf("against no base problems every problem is new: %v", got)
	}
	if got := NewSince(nil, base); len(got) != 0 {
		t.Errorf("a clean head has no new problems: %v", got)
	}
}

func TestReplacePath(t *testing.T) {
	for _, tc := range []struct{ msg, dir, rel, want string }{
		{"/srv/fleets/web/x.env: too large", "/srv/fleets", "", "web/x.env: too large"},
		{"open /srv/fleets: denied", "/srv/fleets", "", "open .: denied"},
		{"/srv/fleets2/x and /srv/fleets/y", "/srv/fleets", "", "/srv/fleets2/x and y"},
		{"/srv/shared.env: outside", "/srv", "..", "../shared.env: outside"},
		{"/srv2/data: outside", "/srv", "..", "/srv2/data: outside"},
		{"context /srv: outside", "/srv", "..", "context ..: outside"},
	} {
		if got := replacePath(tc.msg, tc.dir, tc.rel); got != tc.want {
			t.Errorf("replacePath(%q, %q, %q) = %q, want %q", tc.msg, tc.dir, tc.rel, got, tc.want)
		}
	}
}
