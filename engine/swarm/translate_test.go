package swarm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
)

var update = flag.Bool("update", false, "rewrite the golden files of the translation")

// nodes is the swarm the golden files are translated for.
var nodes = []fleets.Host{
	{Name: "node1", Labels: map[string]string{"zone": "a"}},
	{Name: "node2", Labels: map[string]string{"zone": "b"}},
	{Name: "node3", Labels: map[string]string{"zone": "a"}},
}

func loadFleets(t *testing.T, root string) map[string]fleets.Fleet {
	t.Helper()
	list, err := fleets.Load(t.Context(), root, fleets.Host{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fleets.Fleet{}
	for _, f := range list {
		out[f.Name] = f
	}
	return out
}

// TestTranslateGolden translates every fleet under testdata/fleets and
// compares the stack, as JSON, with testdata/<fleet>.golden.json (go test
// -update rewrites them; review the diff).
func TestTranslateGolden(t *testing.T) {
	all := loadFleets(t, "testdata/fleets")
	for _, name := range []string{"shop", "edge"} {
		t.Run(name, func(t *testing.T) {
			f, ok := all[name]
			if !ok {
				t.Fatalf("fleet %s not loaded", name)
			}
			st, err := Translate(Input{Fleet: f, Instance: "ci", Nodes: nodes,
				Images: map[string]string{"registry.test/shop/api:1.4": "registry.test/shop/api:1.4@sha256:" + strings.Repeat("ab", 32)}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if bytes.Contains(got, []byte("s3cr3t")) {
				t.Fatal("the stack carries a secret's contents")
			}
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation of %s differs from %s (rerun with -update and review the diff):\n%s", name, path, got)
			}
		})
	}
}

// TestTranslateInvariants checks what must hold whatever the golden files
// say: ownership and stack labels on every object, none of fleetd's
// ownership labels on task containers (the docker agent of the node would
// take them for its own), and a spec hash that matches the spec.
func TestTranslateInvariants(t *testing.T) {
	all := loadFleets(t, "testdata/fleets")
	for _, name := range []string{"shop", "edge"} {
		st, err := Translate(Input{Fleet: all[name], Instance: "ci", Nodes: nodes})
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, labels map[string]string) {
			if !fleets.OwnedBy(labels, "ci") || labels[LabelStackNamespace] != name || labels[fleets.LabelFleet] != name {
				t.Errorf("%s: %s lacks ownership or stack labels: %v", name, what, labels)
			}
		}
		for _, n := range st.Networks {
			check("network "+n.Name, n.Options.Labels)
			if !n.Options.Attachable || n.Options.Driver != "overlay" {
				t.Errorf("network %s: want an attachable overlay, got %+v", n.Name, n.Options)
			}
		}
		for _, f := range append(st.Secrets, st.Configs...) {
			check("file "+f.Name, f.Labels)
		}
		for _, s := range st.Services {
			check("service "+s.Name, s.Spec.Labels)
			if l := s.Spec.TaskTemplate.ContainerSpec.Labels; l[fleets.LabelManaged] != "" || l[LabelStackNamespace] != name {
				t.Errorf("service %s: task container labels %v: want the stack label and no fleetd ownership", s.Name, l)
			}
			if h, _ := SpecHash(s.Spec); h != s.Hash || s.Spec.Labels[LabelSpecHash] != h {
				t.Errorf("service %s: hash %s, label %s, recomputed %s", s.Name, s.Hash, s.Spec.Labels[LabelSpecHash], h)
			}
		}
	}
}

// TestTranslateSecretRotation: a secret's new contents are a new Swarm
// secret (immutable), and the service moves to it.
func TestTranslateSecretRotation(t *testing.T) {
	f := loadFleets(t, "testdata/fleets")["shop"]
	before, err := Translate(Input{Fleet: f, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	svc := &f.Services[0]
	svc.Spec.Secrets[0].Digest = "sha256:" + strings.Repeat("0", 64)
	after, err := Translate(Input{Fleet: f, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	if before.Secrets[0].Name == after.Secrets[0].Name {
		t.Fatalf("secret name %s kept across a content change", after.Secrets[0].Name)
	}
	if got := after.Services[0].Spec.TaskTemplate.ContainerSpec.Secrets[0].SecretName; got != after.Secrets[0].Name {
		t.Errorf("service refers to %s, the stack's secret is %s", got, after.Secrets[0].Name)
	}
	if before.Services[0].Hash == after.Services[0].Hash {
		t.Error("service hash unchanged after the secret changed")
	}
	if before.Configs[0].Name != after.Configs[0].Name {
		t.Error("an unchanged config was renamed")
	}
}

// TestTranslatePlacement: hosts by name and labels become constraints over
// the swarm's nodes.
func TestTranslatePlacement(t *testing.T) {
	base := fleets.Fleet{Name: "f", Engine: fleets.EngineSwarm}
	cases := []struct {
		name      string
		placement fleets.Placement
		want      []string
		err       string
	}{
		{"everywhere", fleets.Placement{}, nil, ""},
		{"one host", fleets.Placement{Hosts: []string{"node2"}}, []string{"node.hostname == node2"}, ""},
		{"two hosts", fleets.Placement{Hosts: []string{"node1", "node3"}}, []string{"node.hostname != node2"}, ""},
		{"labels", fleets.Placement{Labels: map[string]string{"zone": "a", "disk": "ssd"}},
			[]string{"node.labels.disk == ssd", "node.labels.zone == a"}, ""},
		{"unknown host", fleets.Placement{Hosts: []string{"node1", "nodeX"}}, nil, "x-fleetd.hosts: nodeX: not a node of the swarm"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base
			f.Placement = c.placement
			got, err := fleetConstraints(f, nodes)
			var te *Error
			if c.err != "" {
				if !errors.As(err, &te) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want an *Error containing %q", err, c.err)
				}
				return
			}
			if err != nil || strings.Join(got, ";") != strings.Join(c.want, ";") {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestTranslateRefusesDockerFleet(t *testing.T) {
	f := loadFleets(t, "testdata/fleets")["plain"]
	_, err := Translate(Input{Fleet: f, Nodes: nodes})
	var te *Error
	if !errors.As(err, &te) || te.Field != "x-fleetd.engine" {
		t.Fatalf("err = %v, want an *Error on x-fleetd.engine", err)
	}
}
