package engine_test

import (
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
)

// A targeted observation lists one fleet's containers only, inspects each
// of them, and still lists the networks of the whole host.
func TestObserveTargeted(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	a, b := dockertest.Name(t, "obs-a"), dockertest.Name(t, "obs-b")
	aNet, bNet := ensureNetwork(t, d, a, "default"), ensureNetwork(t, d, b, "default")
	up := instance(a, "web", 1, ref, aNet)
	createStarted(t, d, up)
	down := instance(a, "web", 2, ref, aNet)
	downID := createStarted(t, d, down)
	createStarted(t, d, instance(b, "web", 1, ref, bNet))
	if err := cli.ContainerStop(ctx, downID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}

	obs, err := d.Observe(ctx, drift.ObserveOptions{Fleet: a})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range obs.Containers {
		names = append(names, c.Name)
		if c.Labels[fleets.LabelFleet] != a {
			t.Errorf("observed %s of fleet %q, want fleet %s's containers only", c.Name, c.Labels[fleets.LabelFleet], a)
		}
	}
	if len(obs.Containers) != 2 {
		t.Errorf("observed %v, want %s and %s", names, up.Name, down.Name)
	}
	if c := findContainer(t, obs, up.Name); c.State != "running" || c.Inspected == nil || c.Inspected.StartedAt.IsZero() {
		t.Errorf("%s: state %q inspected %+v, want running and inspected", c.Name, c.State, c.Inspected)
	}
	if c := findContainer(t, obs, down.Name); c.State != "exited" || c.Inspected == nil {
		t.Errorf("%s: state %q inspected %+v, want exited and inspected", c.Name, c.State, c.Inspected)
	}
	if !hasNetwork(obs, aNet) || !hasNetwork(obs, bNet) {
		t.Errorf("networks lack %s or %s: a targeted observation lists every network", aNet, bNet)
	}
}
