package swarm

import (
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

func node(name string, avail swarm.NodeAvailability, labels map[string]string) ObservedNode {
	return ObservedNode{ID: "id-" + name, Version: 9, Hostname: name, Spec: swarm.NodeSpec{Role: swarm.NodeRoleManager, Availability: avail, Annotations: swarm.Annotations{Labels: labels}}}
}

func TestPlanNodes(t *testing.T) {
	want := fleets.Nodes{"n1": {Labels: map[string]string{"zone": "a"}}, "n2": {Availability: fleets.NodeDrain}}
	have := []ObservedNode{
		node("n1", swarm.NodeAvailabilityActive, map[string]string{"team": "ops"}), // a label of someone else's
		node("n2", swarm.NodeAvailabilityActive, nil),
		node("n3", swarm.NodeAvailabilityPause, map[string]string{"x": "y"}), // not in the file: left alone
	}
	ups, err := PlanNodes(want, have)
	if err != nil || len(ups) != 2 {
		t.Fatalf("first plan: %+v, %v; want n1 and n2 updated", ups, err)
	}
	n1, n2 := ups[0].Spec, ups[1].Spec
	if n1.Labels["zone"] != "a" || n1.Labels["team"] != "ops" || n1.Labels[LabelNodeSpec] == "" || n1.Role != swarm.NodeRoleManager {
		t.Errorf("n1: %+v; want zone=a added, team kept, the record set, the role kept", n1)
	}
	if n2.Availability != swarm.NodeAvailabilityDrain || ups[0].Node.Version != 9 {
		t.Errorf("n2: %+v; want drained, sent with the observed version", n2)
	}
	if r := ups[1].Reasons; len(r) != 1 || r[0].Kind != drift.SpecChange || r[0].Fields[0].Field != "availability" {
		t.Errorf("n2's reasons %+v: want a Git change of availability", r)
	}

	// As fleetd left them: nothing to do.
	applied := []ObservedNode{node("n1", "active", n1.Labels), node("n2", "drain", n2.Labels), have[2]}
	if ups, err := PlanNodes(want, applied); err != nil || len(ups) != 0 {
		t.Fatalf("after the update: %+v, %v; want nothing", ups, err)
	}

	// By hand: the zone changed, the drained node made active again.
	byHand := []ObservedNode{node("n1", "active", map[string]string{"zone": "b", "team": "ops", LabelNodeSpec: n1.Labels[LabelNodeSpec]}),
		node("n2", "active", n2.Labels), have[2]}
	ups, _ = PlanNodes(want, byHand)
	if len(ups) != 2 || ups[0].Spec.Labels["zone"] != "a" || ups[1].Spec.Availability != swarm.NodeAvailabilityDrain {
		t.Fatalf("hand changes not corrected: %+v", ups)
	}
	if r := ups[0].Reasons; len(r) != 1 || r[0].Kind != drift.Modified || r[0].Fields[0] != (drift.Field{Field: "labels.zone", Want: "a", Have: "b"}) {
		t.Errorf("n1's reasons %+v: want modified labels.zone a→b", r)
	}

	// A key dropped from the file is removed; a node dropped is released.
	ups, _ = PlanNodes(fleets.Nodes{"n2": {Availability: fleets.NodeDrain}}, applied)
	if len(ups) != 1 || ups[0].Node.Hostname != "n1" || ups[0].Spec.Labels["zone"] != "" || ups[0].Spec.Labels[LabelNodeSpec] != "" || ups[0].Spec.Labels["team"] != "ops" {
		t.Fatalf("n1 dropped from the file: %+v; want zone and the record removed, team kept", ups)
	}

	// An unknown hostname: a permanent fault naming it, the others still set.
	ups, err = PlanNodes(fleets.Nodes{"n1": {Labels: map[string]string{"zone": "a"}}, "typo": {}}, have)
	if f := fault.Of(err); f == nil || f.Class != fault.Permanent || len(ups) != 1 {
		t.Fatalf("unknown node: %+v, %v", ups, err)
	}
	if err.Error() != "nodes.yaml: typo: not a node of the swarm" {
		t.Errorf("error %q", err)
	}
}
