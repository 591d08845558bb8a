package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// LabelNodeSpec records on a node what fleetd last set from nodes.yaml (the
// labels and availability, as JSON): the keys it owns, and the values to
// tell a change in Git from a change by hand.
const LabelNodeSpec = "io.fleetd.node-spec"

// ObservedNode is a node as the swarm holds it.
type ObservedNode struct {
	ID       string
	Version  uint64
	Hostname string
	Spec     swarm.NodeSpec
}

// NodeUpdate is one node to update: the whole spec to send, with the
// observed version.
type NodeUpdate struct {
	Node    ObservedNode
	Spec    swarm.NodeSpec
	Reasons []drift.Item
}

// PlanNodes compares nodes.yaml with the swarm's nodes. fleetd owns only
// the label keys nodes.yaml gives (and had given: a key dropped from the
// file is removed from the node) and the availability it gives; every
// other label, and a node the file does not name, is left alone. A
// difference with what fleetd last set is a change by hand (drift
// modified), corrected; a difference between that and the file is a
// change in Git (drift spec). A hostname that is no node of the swarm is an
// error naming it. It is pure.
func PlanNodes(want fleets.Nodes, have []ObservedNode) ([]NodeUpdate, error) {
	byName := map[string]ObservedNode{}
	for _, n := range have {
		byName[n.Hostname] = n
	}
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if _, ok := byName[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	var out []NodeUpdate
	for _, n := range have {
		w, named := want[n.Hostname]
		rec, recorded := recordedNode(n.Spec.Labels)
		if !named && !recorded {
			continue
		}
		spec := n.Spec
		spec.Labels = maps.Clone(n.Spec.Labels)
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		for k := range rec.Labels {
			if _, keep := w.Labels[k]; !keep {
				delete(spec.Labels, k)
			}
		}
		maps.Copy(spec.Labels, w.Labels)
		if w.Availability != "" {
			spec.Availability = swarm.NodeAvailability(w.Availability)
		}
		if named && (len(w.Labels) > 0 || w.Availability != "") {
			b, _ := json.Marshal(w)
			spec.Labels[LabelNodeSpec] = string(b)
		} else {
			delete(spec.Labels, LabelNodeSpec)
		}
		if maps.Equal(spec.Labels, n.Spec.Labels) && spec.Availability == n.Spec.Availability {
			continue
		}
		out = append(out, NodeUpdate{Node: n, Spec: spec, Reasons: nodeItems(n, rec, w)})
	}
	if len(unknown) > 0 {
		return out, fault.New(fault.Permanent, fault.InvalidSpec, fleets.NodesFile,
			fmt.Errorf("%s: %s: not a node of the swarm", fleets.NodesFile, strings.Join(unknown, ", ")))
	}
	return out, nil
}

// recordedNode reads what fleetd last set on a node.
func recordedNode(labels map[string]string) (fleets.NodeSpec, bool) {
	var rec fleets.NodeSpec
	v, ok := labels[LabelNodeSpec]
	if !ok || json.Unmarshal([]byte(v), &rec) != nil {
		return fleets.NodeSpec{}, false
	}
	return rec, true
}

// nodeItems says why a node is updated: fields changed by hand since
// fleetd set them, and fields Git changed.
func nodeItems(n ObservedNode, rec, want fleets.NodeSpec) []drift.Item {
	item := func(kind drift.Kind) drift.Item {
		return drift.Item{Kind: kind, Object: ObjNode, Container: n.Hostname}
	}
	byHand, inGit := item(drift.Modified), item(drift.SpecChange)
	for _, k := range slices.Sorted(maps.Keys(rec.Labels)) {
		if have := n.Spec.Labels[k]; have != rec.Labels[k] {
			byHand.Fields = append(byHand.Fields, drift.Field{Field: "labels." + k, Want: rec.Labels[k], Have: have})
		}
	}
	if rec.Availability != "" && string(n.Spec.Availability) != rec.Availability {
		byHand.Fields = append(byHand.Fields, drift.Field{Field: "availability", Want: rec.Availability, Have: string(n.Spec.Availability)})
	}
	keys := slices.Sorted(maps.Keys(want.Labels))
	for _, k := range slices.Sorted(maps.Keys(rec.Labels)) {
		if _, ok := want.Labels[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if want.Labels[k] != rec.Labels[k] {
			inGit.Fields = append(inGit.Fields, drift.Field{Field: "labels." + k, Want: want.Labels[k], Have: n.Spec.Labels[k]})
		}
	}
	if want.Availability != "" && want.Availability != rec.Availability {
		inGit.Fields = append(inGit.Fields, drift.Field{Field: "availability", Want: want.Availability, Have: string(n.Spec.Availability)})
	}
	var out []drift.Item
	for _, it := range []drift.Item{byHand, inGit} {
		if len(it.Fields) > 0 {
			out = append(out, it)
		}
	}
	return out
}

// ObjNode is the drift object kind of a swarm node.
const ObjNode = "node"

// nodes lists the swarm's nodes.
func (d *Docker) nodes(ctx context.Context) (_ []ObservedNode, err error) {
	defer classified(&err)
	list, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []ObservedNode
	for _, n := range list {
		out = append(out, ObservedNode{ID: n.ID, Version: n.Version.Index, Hostname: n.Description.Hostname, Spec: n.Spec})
	}
	slices.SortFunc(out, func(a, b ObservedNode) int { return strings.Compare(a.Hostname, b.Hostname) })
	return out, nil
}

// placementHosts is the nodes as placement sees them.
func placementHosts(nodes []ObservedNode) []fleets.Host {
	var out []fleets.Host
	for _, n := range nodes {
		out = append(out, fleets.Host{Name: n.Hostname, Labels: n.Spec.Labels})
	}
	return out
}

// updateNodes sends the node updates, each with its observed version.
func (d *Docker) updateNodes(ctx context.Context, ups []NodeUpdate, leading func() bool) error {
	for _, u := range ups {
		if !leading() {
			return ErrNotLeading
		}
		if err := d.cli.NodeUpdate(ctx, u.Node.ID, swarm.Version{Index: u.Node.Version}, u.Spec); err != nil {
			var e error = fmt.Errorf("update node %s: %w", u.Node.Hostname, err)
			classified(&e)
			return e
		}
	}
	return nil
}
