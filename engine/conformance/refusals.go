package conformance

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// A name an unmanaged container holds is a Permanent Conflict naming it,
// and the squatter is left as it was.
func testNameSquatted(t *testing.T, h Harness) {
	e := h.Engine()
	inst := instance(h, h.Name("squatted"), "web", 1)
	h.SquatContainer(inst.Name)
	before := mustLookup(t, e, inst.Name)
	_, err := e.CreateContainer(t.Context(), inst)
	wantFault(t, "create over a squatted name", err, permanent(fault.Conflict, inst.Name))
	after := mustLookup(t, e, inst.Name)
	if after.ID != before.ID || after.State != "running" || after.Managed() {
		t.Errorf("squatter touched: %+v, was %+v", after, before)
	}
}

// Every operation that changes a container refuses an unmanaged one with
// a Permanent NotManaged naming it, and leaves it as it was.
func testContainerNotManaged(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	name := h.Name("unmanaged")
	h.SquatContainer(name)
	id := mustLookup(t, e, name).ID
	ops := []struct {
		name string
		op   func() error
	}{
		{"start", func() error { return e.StartContainer(ctx, id) }},
		{"stop", func() error { return e.StopContainer(ctx, id, time.Second) }},
		{"restart", func() error { return e.RestartContainer(ctx, id, time.Second) }},
		{"remove", func() error { return e.RemoveContainer(ctx, id) }},
		{"rename", func() error { return e.RenameContainer(ctx, id, name+"-renamed") }},
		{"unpause", func() error { return e.UnpauseContainer(ctx, id) }},
		{"update", func() error { return e.UpdateResources(ctx, id, fleets.Spec{Restart: "always"}) }},
		{"hook", func() error {
			return e.ExecHook(ctx, id, "post_start hook 1/1", fleets.Hook{Command: []string{"true"}}, time.Second)
		}},
		{"connect", func() error {
			return e.ConnectNetwork(ctx, id, fleets.NetworkAttachment{Network: "bridge"}, name)
		}},
	}
	for _, o := range ops {
		wantFault(t, o.name, o.op(), permanent(fault.NotManaged, name))
	}
	c, ok := lookup(t, e, name)
	if !ok || c.ID != id || c.State != "running" || c.Managed() {
		t.Errorf("unmanaged container touched: present %v, %+v", ok, c)
	}
}

// A network name an unmanaged network holds is a Permanent Conflict
// naming it; the network cannot be removed either (NotManaged), and may
// still be used as an external network.
func testNetworkSquatted(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	fleet := h.Name("netsquat")
	name := fleet + "_default"
	h.SquatNetwork(name)
	wantFault(t, "ensure over a squatted network", e.EnsureNetwork(ctx, fleet, fleets.Network{Key: "default", Name: name}),
		permanent(fault.Conflict, name))
	wantFault(t, "remove an unmanaged network", e.RemoveNetwork(ctx, name), permanent(fault.NotManaged, name))
	must(t, "ensure it as an external network", e.EnsureNetwork(ctx, fleet, fleets.Network{Key: "default", Name: name, External: true}))
	found := false
	for _, n := range observe(t, e).Networks {
		if n.Name == name {
			found = true
			if n.Managed() {
				t.Errorf("network %s became managed: %v", name, n.Labels)
			}
		}
	}
	if !found {
		t.Errorf("network %s is gone", name)
	}
}

// An external network or volume that does not exist is a Permanent
// NotFound naming it; nothing is created.
func testExternalMissing(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	fleet := h.Name("external")
	name := fleet + "_ext"
	wantFault(t, "ensure a missing external network", e.EnsureNetwork(ctx, fleet, fleets.Network{Key: "ext", Name: name, External: true}),
		permanent(fault.NotFound, name))
	wantFault(t, "ensure a missing external volume", e.EnsureVolume(ctx, fleet, fleets.Volume{Key: "ext", Name: name, External: true}),
		permanent(fault.NotFound, name))
	obs := observe(t, e)
	for _, n := range obs.Networks {
		if n.Name == name {
			t.Errorf("network %s was created", name)
		}
	}
	for _, v := range obs.Volumes {
		if v.Name == name {
			t.Errorf("volume %s was created", name)
		}
	}
}
