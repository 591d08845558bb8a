package fleets

import (
	"fmt"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestBuildImage(t *testing.T) {
	const hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for image, want := range map[string]string{
		"":                                  "shop-api:ctx-0123456789ab",
		"myorg/api":                         "myorg/api:ctx-0123456789ab",
		"myorg/api:1.2":                     "myorg/api:ctx-0123456789ab",
		"registry.example.com:5000/api:1.2": "registry.example.com:5000/api:ctx-0123456789ab",
		"registry.example.com:5000/api":     "registry.example.com:5000/api:ctx-0123456789ab",
		"myorg/api@sha256:" + hash:          "myorg/api:ctx-0123456789ab",
		"myorg/api:1.2@sha256:" + hash:      "myorg/api:ctx-0123456789ab",
	} {
		s := types.ServiceConfig{Name: "api"}
		s.Image = image
		if got := buildImage("shop", s, hash); got != want {
			t.Errorf("buildImage(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestParseConstraint(t *testing.T) {
	for expr, want := range map[string]*Constraint{
		"node.hostname == a":     {Field: "node.hostname", Op: "==", Value: "a"},
		"node.hostname!=a":       {Field: "node.hostname", Op: "!=", Value: "a"},
		"node.labels.role == db": {Field: "node.labels.role", Op: "==", Value: "db"},
		"node.labels. == db":     nil,
		"node.role == manager":   nil,
		"engine.labels.a == b":   nil,
		"node.hostname == ":      nil,
		"node.hostname":          nil,
	} {
		got, ok := parseConstraint(expr, false)
		if want == nil {
			if ok {
				t.Errorf("%q parsed as %+v, want an error", expr, got)
			}
			continue
		}
		if !ok || got != *want {
			t.Errorf("%q = %+v, %v; want %+v", expr, got, ok, *want)
		}
	}
}

func TestProblemString(t *testing.T) {
	pl := ProblemList{
		{File: "b/compose.yaml", Line: 3, Fleet: "b", Service: "api", Field: "ports", Message: "m2"},
		{File: "a/compose.yaml", Fleet: "a", Message: "m1"},
		{Fleet: "c", Field: "name", Message: "m3"},
	}
	want := "fleet c: name: m3\na/compose.yaml: fleet a: m1\nb/compose.yaml:3: fleet b: service api: ports: m2"
	if got := pl.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if got := pl.Fleets(); len(got) != 3 || got[0] != "a" {
		t.Errorf("Fleets() = %v", got)
	}
}

func TestSecretBytesNeverPrints(t *testing.T) {
	s := SecretBytes("hunter2")
	for _, got := range []string{
		s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%s", s), fmt.Sprintf("%x", s), fmt.Sprintf("%#v", s),
		fmt.Sprintf("%+v", FileRef{Content: s}),
	} {
		if strings.Contains(got, "hunter2") || strings.Contains(got, "68756e74657232") {
			t.Errorf("secret printed: %s", got)
		}
	}
}
