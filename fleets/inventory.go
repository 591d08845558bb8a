package fleets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultInventory is the inventory file `fleetd plan --base/--head` reads
// from the root of the repository when --inventory is not given.
const DefaultInventory = "fleetd-inventory.yaml"

// maxInventorySize bounds the inventory file like every other file fleetd
// reads from a repository.
const maxInventorySize = 1 << 20

// Inventory is the list of hosts a plan between two revisions covers: their
// names and labels, the facts placement and interpolation read. It only
// describes the hosts to fleetd plan; every agent still takes its own host
// facts from its configuration.
//
//	hosts:
//	  - name: web-1
//	    labels: {role: web, zone: a}
//	  - name: db-1
//	    labels: {role: db}
type Inventory struct {
	Hosts []Host `json:"hosts"` // sorted by Name
}

// Host returns the host named name.
func (inv Inventory) Host(name string) (Host, bool) {
	i := slices.IndexFunc(inv.Hosts, func(h Host) bool { return h.Name == name })
	if i < 0 {
		return Host{}, false
	}
	return inv.Hosts[i], true
}

// ParseInventory reads an inventory strictly: unknown keys, values of the
// wrong kind, a host without a name and two hosts with one name are all
// problems, each naming file (as given), line and key. The hosts come back
// sorted by name.
func ParseInventory(file string, data []byte) (Inventory, error) {
	if len(data) > maxInventorySize {
		return Inventory{}, ProblemList{{File: file, Message: fmt.Sprintf("larger than %d bytes", maxInventorySize)}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Inventory{}, ProblemList{{File: file, Line: syntaxErrorLine(err), Message: yamlPrefix.ReplaceAllString(err.Error(), "")}}
	}
	if err := checkExpansion(&doc); err != nil {
		return Inventory{}, ProblemList{{File: file, Line: doc.Line, Message: err.Error()}}
	}
	p := &inventoryParser{file: file}
	inv := p.document(&doc)
	if len(p.problems) > 0 {
		p.problems.sort()
		return Inventory{}, p.problems
	}
	slices.SortFunc(inv.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
	return inv, nil
}

type inventoryParser struct {
	file     string
	problems ProblemList
}

func (p *inventoryParser) errorf(n *yaml.Node, key, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: p.file, Line: n.Line, Field: key, Message: fmt.Sprintf(format, args...)})
}

func (p *inventoryParser) document(doc *yaml.Node) Inventory {
	var inv Inventory
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.problems = append(p.problems, Problem{File: p.file, Message: "empty inventory: want hosts: [{name: ..., labels: {...}}]"})
		return inv
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "want a mapping with a hosts key")
		return inv
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "hosts" {
			p.errorf(k, k.Value, "unknown key (want hosts)")
			continue
		}
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, "hosts", "want a list of hosts")
			continue
		}
		for j, hn := range v.Content {
			h, ok := p.host(hn, fmt.Sprintf("hosts[%d]", j))
			if !ok {
				continue
			}
			if line, dup := seen[h.Name]; dup {
				p.errorf(hn, fmt.Sprintf("hosts[%d].name", j), "host %q is listed twice (also on line %d)", h.Name, line)
				continue
			}
			seen[h.Name] = hn.Line
			inv.Hosts = append(inv.Hosts, h)
		}
	}
	return inv
}

func (p *inventoryParser) host(n *yaml.Node, key string) (Host, bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, key, "want a mapping with name and labels")
		return Host{}, false
	}
	var h Host
	before := len(p.problems)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" || v.Tag == "!!null" {
				p.errorf(v, key+".name", "want a non-empty host name")
				continue
			}
			h.Name = v.Value
		case "labels":
			h.Labels = p.labels(v, key+".labels")
		default:
			p.errorf(k, key+"."+k.Value, "unknown key (want name or labels)")
		}
	}
	if h.Name == "" && len(p.problems) == before {
		p.errorf(n, key+".name", "missing: every host needs a name")
	}
	return h, len(p.problems) == before
}

func (p *inventoryParser) labels(n *yaml.Node, key string) map[string]string {
	if n.Kind != yaml.MappingNode {
		if n.Tag != "!!null" {
			p.errorf(n, key, "want a mapping of label keys to values")
		}
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			p.errorf(k, key, "want a non-empty label key")
			continue
		}
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			p.errorf(v, key+"."+k.Value, "want a string value")
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, key+"."+k.Value, "label given twice")
			continue
		}
		out[k.Value] = v.Value
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
