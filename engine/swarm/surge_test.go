package swarm

import (
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func replicated(id string, n uint64, u *swarm.UpdateConfig) swarm.Service {
	return swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "f_" + id},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}, UpdateConfig: u}}
}

func TestDraining(t *testing.T) {
	ups := []NodeUpdate{
		{Node: node("a", swarm.NodeAvailabilityActive, nil), Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityDrain}},
		{Node: node("b", swarm.NodeAvailabilityDrain, nil), Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityDrain}}, // drains already
		{Node: node("c", swarm.NodeAvailabilityActive, nil), Spec: swarm.NodeSpec{Availability: swarm.NodeAvailabilityPause}},
	}
	if got := Draining(ups); len(got) != 1 || !got["id-a"] {
		t.Fatalf("Draining = %v, want only id-a", got)
	}
}

func TestPlanSurges(t *testing.T) {
	startFirst := &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst}
	stopFirst1 := &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStopFirst}
	allAtOnce := &swarm.UpdateConfig{Parallelism: 0, Order: swarm.UpdateOrderStopFirst}
	global := swarm.Service{ID: "g", Spec: swarm.ServiceSpec{Mode: swarm.ServiceMode{Global: &swarm.GlobalService{}}}}
	services := []swarm.Service{
		replicated("sf", 3, startFirst),  // 1 running on the drained node: may lose none → +1
		replicated("st", 3, stopFirst1),  // 2 there, may lose 1 → +1
		replicated("st1", 3, stopFirst1), // 1 there, may lose 1 → nothing
		replicated("all", 4, allAtOnce),  // may lose all → nothing
		replicated("def", 3, nil),        // Swarm's default (1, stop-first), 1 there → nothing
		replicated("away", 2, startFirst),
		global,
	}
	tasks := []TaskPlace{
		{Service: "sf", Node: "x", Running: true}, {Service: "sf", Node: "y", Running: true}, {Service: "sf", Node: "z", Running: true},
		{Service: "sf", Node: "x", Running: false}, // starting: no capacity lost
		{Service: "st", Node: "x", Running: true}, {Service: "st", Node: "x", Running: true}, {Service: "st", Node: "y", Running: true},
		{Service: "st1", Node: "x", Running: true},
		{Service: "all", Node: "x", Running: true}, {Service: "all", Node: "x", Running: true},
		{Service: "def", Node: "x", Running: true},
		{Service: "away", Node: "y", Running: true},
		{Service: "g", Node: "x", Running: true},
	}
	drain := map[string]bool{"x": true}
	got := PlanSurges(drain, services, tasks)
	want := []Surge{
		{ID: "sf", Name: "f_sf", Replicas: 3, Extra: 1, Floor: 3},
		{ID: "st", Name: "f_st", Replicas: 3, Extra: 1, Floor: 2},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("PlanSurges = %+v\nwant %+v", got, want)
	}

	// Before the drain the surged services need their floor off node x;
	// after it, every task of the surge.
	floor := func(s Surge) uint64 { return s.Floor }
	if Reached(got, tasks, drain, floor) {
		t.Fatal("Reached before any surge task runs")
	}
	more := append(tasks, TaskPlace{Service: "sf", Node: "y", Running: true}, TaskPlace{Service: "st", Node: "z", Running: true})
	if !Reached(got, more, drain, floor) {
		t.Fatal("not Reached with sf 3 and st 2 running off x")
	}
	if Reached(got, more, drain, func(s Surge) uint64 { return s.Replicas + s.Extra }) {
		t.Fatal("the whole surge counted as running while x still holds tasks")
	}
}
