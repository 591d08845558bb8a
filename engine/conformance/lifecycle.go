package conformance

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
)

// A created and started container is observed running, managed, with the
// labels it was created with, and passes the health wait.
func testRunning(t *testing.T, h Harness) {
	e := h.Engine()
	fleet := h.Name("running")
	inst := instance(h, fleet, "web", 1)
	// The image's own check, with room for a slow probe on a loaded host.
	inst.Spec.Healthcheck = &fleets.Healthcheck{Timeout: 10 * time.Second, Retries: 5}
	id := createStarted(t, e, inst)
	c := mustLookup(t, e, inst.Name)
	if c.ID != id || c.State != "running" || !c.Managed() || c.Image != inst.Spec.Image {
		t.Errorf("observed %+v, want %s running, managed, from %s", c, id, inst.Spec.Image)
	}
	for _, k := range []string{fleets.LabelFleet, fleets.LabelService, fleets.LabelSlot, fleets.LabelComposeProject} {
		if c.Labels[k] != inst.Labels[k] {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], inst.Labels[k])
		}
	}
	must(t, "wait healthy", e.WaitHealthy(t.Context(), id, waitTimeout))
}

// A container stopped out of band is observed exited, with the detail of
// an inspect, and starts again.
func testStoppedOutOfBand(t *testing.T, h Harness) {
	e := h.Engine()
	inst := instance(h, h.Name("stopped"), "web", 1)
	id := createStarted(t, e, inst)
	h.StopContainer(inst.Name)
	if c := mustLookup(t, e, inst.Name); c.State != "exited" || c.Inspected == nil || c.Inspected.FinishedAt.IsZero() {
		t.Errorf("after docker stop: state %s, inspected %+v; want exited, inspected", c.State, c.Inspected)
	}
	must(t, "start", e.StartContainer(t.Context(), id))
	if c := mustLookup(t, e, inst.Name); c.State != "running" {
		t.Errorf("after start: state %s", c.State)
	}
}

// Removing a container that is gone (out of band, or by the engine
// itself) is not an error.
func testRemoveRemoved(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	fleet := h.Name("removed")
	first, second := instance(h, fleet, "web", 1), instance(h, fleet, "web", 2)
	firstID, secondID := create(t, e, first), create(t, e, second)
	h.RemoveContainer(first.Name)
	must(t, "remove a container removed out of band", e.RemoveContainer(ctx, firstID))
	must(t, "remove", e.RemoveContainer(ctx, secondID))
	must(t, "remove again", e.RemoveContainer(ctx, secondID))
	if _, ok := lookup(t, e, second.Name); ok {
		t.Errorf("container %s still there", second.Name)
	}
}

// RemoveContainer never removes a volume: neither the fleet's named
// volume nor one the create made on the way. A created container holds its
// volumes as a started one does; starting it would only slow the case.
func testVolumesKept(t *testing.T, h Harness) {
	e := h.Engine()
	ctx := t.Context()
	fleet := h.Name("volumes")
	data := fleets.Volume{Key: "data", Name: fleet + "_data"}
	must(t, "ensure volume", e.EnsureVolume(ctx, fleet, data))
	implicit := fleet + "_implicit"
	inst := instance(h, fleet, "db", 1)
	inst.Spec.Mounts = []fleets.Mount{
		{Type: "volume", Source: data.Name, Target: "/data"},
		{Type: "volume", Source: implicit, Target: "/scratch"},
	}
	must(t, "remove", e.RemoveContainer(ctx, create(t, e, inst)))

	obs := observe(t, e)
	labels := map[string]map[string]string{}
	for _, v := range obs.Volumes {
		labels[v.Name] = v.Labels
	}
	if l, ok := labels[data.Name]; !ok || l[fleets.LabelManaged] != "true" || l[fleets.LabelFleet] != fleet {
		t.Errorf("volume %s after its container was removed: present %v, labels %v; want it managed by fleet %s", data.Name, ok, l, fleet)
	}
	if l, ok := labels[implicit]; !ok || l[fleets.LabelManaged] == "true" {
		t.Errorf("volume %s the create made: present %v, labels %v; want it there, unmanaged", implicit, ok, l)
	}
}
