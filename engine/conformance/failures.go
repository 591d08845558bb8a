package conformance

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// Creating from an image that is not present is a Permanent ImageNotFound
// naming the image (the engine never pulls implicitly).
func testCreateMissingImage(t *testing.T, h Harness) {
	e := h.Engine()
	inst := instance(h, h.Name("noimage"), "web", 1)
	inst.Spec.Image = h.MissingImage()
	_, err := e.CreateContainer(t.Context(), inst)
	wantFault(t, "create with a missing image", err, permanent(fault.ImageNotFound, inst.Spec.Image))
	if _, ok := lookup(t, e, inst.Name); ok {
		t.Errorf("container %s created", inst.Name)
	}
}

// Pulling a reference its registry does not have is a Permanent
// ImageNotFound naming it.
func testPullMissingImage(t *testing.T, h Harness) {
	ref := h.MissingImage()
	_, err := h.Engine().PullImage(t.Context(), ref)
	wantFault(t, "pull a missing image", err, permanent(fault.ImageNotFound, ref))
}

// A network that vanished before the create is not a missing image: the
// create (or, on Docker 20.10, which checks networks only then, the start)
// fails unclassified, so it is retried, since the next pass ensures the
// network again; the container does not run.
func testCreateMissingNetwork(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	fleet := h.Name("nonet")
	inst := instance(h, fleet, "web", 1)
	inst.Spec.NetworkMode = ""
	inst.Spec.Networks = []fleets.NetworkAttachment{{Network: fleet + "_gone", Aliases: []string{"web"}}}
	id, err := e.CreateContainer(ctx, inst)
	if err == nil {
		err = e.StartContainer(ctx, id)
	}
	wantFault(t, "create and start on a missing network", err, retryable(fault.Failed, ""))
	if c, ok := lookup(t, e, inst.Name); ok && c.State == "running" {
		t.Errorf("container %s running", inst.Name)
	}
}

// A container cannot start on a host port held by something unmanaged: a
// Permanent PortAllocated naming the address, and it is not running.
func testPortHeld(t *testing.T, h Harness) {
	e := h.Engine()
	addr := h.HoldPort()
	_, port, err := net.SplitHostPort(addr)
	must(t, "held address", err)
	inst := instance(h, h.Name("held"), "web", 1)
	publish(&inst, port)
	id := create(t, e, inst)
	err = e.StartContainer(t.Context(), id)
	wantFault(t, "start on a held port", err, permanent(fault.PortAllocated, addr))
	if err != nil && !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name %s: %v", addr, err)
	}
	if c := mustLookup(t, e, inst.Name); c.State == "running" {
		t.Errorf("container running after a failed start")
	}
}

// Two containers cannot publish one host port: the second one's start is
// a Permanent PortAllocated naming the address, until the first stops.
func testPortPublished(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	port := FreePort(t)
	fleet := h.Name("ports")
	first, second := instance(h, fleet, "web", 1), instance(h, fleet, "web", 2)
	publish(&first, port)
	publish(&second, port)
	firstID := createStarted(t, e, first)
	secondID := create(t, e, second)
	wantFault(t, "start on a published port", e.StartContainer(ctx, secondID), permanent(fault.PortAllocated, "0.0.0.0:"+port))
	must(t, "stop the first", e.StopContainer(ctx, firstID, time.Second))
	must(t, "start once the port is free", e.StartContainer(ctx, secondID))
}

// A container that exits at once fails the health waits with a Retryable
// Unhealthy naming it, and is observed exited, inspected.
func testCrash(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	inst := instance(h, h.Name("crash"), "web", 1)
	h.Crash(&inst)
	id := createStarted(t, e, inst)
	wantFault(t, "wait healthy", e.WaitHealthy(ctx, id, waitTimeout), retryable(fault.Unhealthy, inst.Name))
	wantFault(t, "wait up", e.WaitUp(ctx, id, 0, 0, waitTimeout), retryable(fault.Unhealthy, inst.Name))
	if c := mustLookup(t, e, inst.Name); c.State != "exited" || c.Inspected == nil {
		t.Errorf("crashed container observed %s, inspected %v; want exited, inspected", c.State, c.Inspected != nil)
	}
}

// Every call to an engine whose daemon is unreachable is a Retryable
// EngineUnreachable.
func testUnreachable(t *testing.T, h Harness) {
	e := h.Unreachable()
	ctx := t.Context()
	fleet := h.Name("down")
	inst := instance(h, fleet, "web", 1)
	ops := []struct {
		name string
		op   func() error
	}{
		{"observe", func() error { _, err := e.Observe(ctx, drift.ObserveOptions{}); return err }},
		{"ensure network", func() error {
			return e.EnsureNetwork(ctx, fleet, fleets.Network{Key: "default", Name: fleet + "_default"})
		}},
		{"pull", func() error { _, err := e.PullImage(ctx, h.Image()); return err }},
		{"create", func() error { _, err := e.CreateContainer(ctx, inst); return err }},
		{"stop", func() error { return e.StopContainer(ctx, inst.Name, time.Second) }},
		{"remove", func() error { return e.RemoveContainer(ctx, inst.Name) }},
		{"wait healthy", func() error { return e.WaitHealthy(ctx, inst.Name, waitTimeout) }},
	}
	for _, o := range ops {
		wantFault(t, o.name, o.op(), retryable(fault.EngineUnreachable, ""))
	}
}
