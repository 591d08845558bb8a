package fleets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// NodesFile is the optional file, at the root of the fleets directory, that
// sets the swarm's nodes' labels and availability by hostname.
const NodesFile = "nodes.yaml"

// Node availabilities, as Swarm spells them.
const (
	NodeActive = "active"
	NodePause  = "pause"
	NodeDrain  = "drain"
)

// NodeSpec is what Git says of one node: the labels fleetd sets (only these
// keys: labels set by other means are left alone) and, when given, its
// availability. Draining a node from a commit moves its tasks elsewhere.
type NodeSpec struct {
	Labels       map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Availability string            `yaml:"availability,omitempty" json:"availability,omitempty"`
}

// Nodes maps hostnames to what Git says of them.
type Nodes map[string]NodeSpec

var labelKey = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// LoadNodes reads dir/nodes.yaml; no file is no nodes (nil, nil). Every
// problem is an error naming the file, the line and the field.
func LoadNodes(dir string) (Nodes, error) {
	if _, err := os.Lstat(filepath.Join(dir, NodesFile)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	ft, err := newFleetTree(dir, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NodesFile, err)
	}
	path, err := ft.resolve(NodesFile) // confined to the tree, like every file a fleet reads
	var data []byte
	if err == nil {
		data, err = readFile(path, maxDataFileSize)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", NodesFile, err)
	}
	var doc struct {
		Nodes map[string]NodeSpec `yaml:"nodes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", NodesFile, err)
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(doc.Nodes)) {
		n := doc.Nodes[name]
		at := func(field string) string {
			return fmt.Sprintf("%s:%d: nodes.%s%s", NodesFile, lineOf(&root, name), name, field)
		}
		switch n.Availability {
		case "", NodeActive, NodePause, NodeDrain:
		default:
			errs = append(errs, fmt.Errorf("%s: %q: write active, pause or drain", at(".availability"), n.Availability))
		}
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			if !labelKey.MatchString(k) {
				errs = append(errs, fmt.Errorf("%s: %q is not a label key", at(".labels"), k))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return doc.Nodes, nil
}

// lineOf finds the line of nodes.<name> in the parsed file, 0 if unknown.
func lineOf(root *yaml.Node, name string) int {
	if root == nil || len(root.Content) == 0 {
		return 0
	}
	nodes, _ := child(root.Content[0], "nodes")
	_, line := child(nodes, name)
	return line
}
