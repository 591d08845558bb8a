package fleets

import "testing"

func TestOwnedBy(t *testing.T) {
	cases := []struct {
		labels   map[string]string
		instance string
		want     bool
	}{
		{map[string]string{LabelManaged: "true"}, DefaultInstance, true},
		{map[string]string{LabelManaged: "true"}, "ci-1", false},
		{map[string]string{LabelManaged: "true", LabelInstance: "ci-1"}, "ci-1", true},
		{map[string]string{LabelManaged: "true", LabelInstance: "ci-1"}, DefaultInstance, false},
		{map[string]string{LabelInstance: "ci-1"}, "ci-1", false},
		{nil, DefaultInstance, false},
	}
	for _, c := range cases {
		if got := OwnedBy(c.labels, c.instance); got != c.want {
			t.Errorf("OwnedBy(%v, %q) = %v, want %v", c.labels, c.instance, got, c.want)
		}
	}
}
