package fleets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadNodes(t *testing.T) {
	dir := t.TempDir()
	if n, err := LoadNodes(dir); n != nil || err != nil {
		t.Fatalf("no file: %v, %v; want nothing", n, err)
	}
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, NodesFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nodes:\n  node1: {labels: {zone: a}, availability: drain}\n  node2: {labels: {disk: ssd}}\n")
	n, err := LoadNodes(dir)
	if err != nil || n["node1"].Availability != NodeDrain || n["node1"].Labels["zone"] != "a" || n["node2"].Availability != "" {
		t.Fatalf("got %+v, %v", n, err)
	}
	for body, want := range map[string]string{
		"nodes:\n  node1: {availability: offline}\n": `nodes.yaml:2: nodes.node1.availability: "offline": write active, pause or drain`,
		"nodes:\n  node1: {labels: {\"a b\": x}}\n":  `nodes.yaml:2: nodes.node1.labels: "a b" is not a label key`,
		"nodes:\n  node1: {availabilty: drain}\n":    "field availabilty not found",
		"nodes:\n  node1: {availability: [drain]}\n": "nodes.yaml: yaml: unmarshal errors",
	} {
		write(body)
		if _, err := LoadNodes(dir); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", body, err, want)
		}
	}
	if err := os.Remove(filepath.Join(dir, NodesFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, NodesFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadNodes(dir); err == nil {
		t.Error("a nodes.yaml pointing out of the tree was read")
	}
}
