package enginetest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Observe returns a snapshot as engine.Docker does: all containers,
// networks and volumes sorted by name, every local image reference, and
// Inspected for the managed containers that are unhealthy, exited, dead or
// restarting, named in opts.Inspect, or all of them with opts.InspectAll;
// with opts.Fleet, only the containers labelled as that fleet's, each
// inspected.
// The snapshot shares no memory with the fake.
func (f *Fake) Observe(ctx context.Context, opts drift.ObserveOptions) (drift.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "Observe"); err != nil {
		return drift.Observed{}, f.done(fmt.Errorf("observe: %w", err))
	}
	obs := drift.Observed{Images: maps.Clone(f.images)}
	for _, x := range f.containers {
		c := x.view()
		if opts.Fleet != "" && c.Labels[fleets.LabelFleet] != opts.Fleet {
			continue
		}
		if needsInspect(c, opts) {
			in := x.in
			c.Inspected = &in
		}
		obs.Containers = append(obs.Containers, c)
	}
	for _, n := range f.networks {
		obs.Networks = append(obs.Networks, drift.Network{ID: n.ID, Name: n.Name, Labels: maps.Clone(n.Labels)})
	}
	for _, v := range f.volumes {
		obs.Volumes = append(obs.Volumes, drift.Volume{Name: v.Name, Labels: maps.Clone(v.Labels)})
	}
	slices.SortFunc(obs.Containers, func(a, b drift.Container) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(obs.Networks, func(a, b drift.Network) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(obs.Volumes, func(a, b drift.Volume) int { return cmp.Compare(a.Name, b.Name) })
	return obs, nil
}

// needsInspect is engine.Docker's rule: only managed containers whose list
// entry does not settle their state.
func needsInspect(c drift.Container, opts drift.ObserveOptions) bool {
	if !c.Managed() {
		return false
	}
	if opts.InspectAll || opts.Fleet != "" || slices.Contains(opts.Inspect, c.ID) || c.Health == "unhealthy" {
		return true
	}
	switch c.State {
	case "exited", "dead", "restarting":
		return true
	}
	return false
}

// view is the container's list entry, with Status computed as Docker
// prints it (without the time, to stay deterministic).
func (x *ctr) view() drift.Container {
	c := x.c
	c.Labels = maps.Clone(x.c.Labels)
	c.Networks = slices.Clone(x.c.Networks)
	c.Status = status(c.State, c.Health, x.in.ExitCode)
	return c
}

func status(state, health string, exitCode int) string {
	switch state {
	case "running":
		switch health {
		case "":
			return "Up"
		case "starting":
			return "Up (health: starting)"
		}
		return "Up (" + health + ")"
	case "paused":
		return "Up (Paused)"
	case "exited":
		return fmt.Sprintf("Exited (%d)", exitCode)
	case "restarting":
		return fmt.Sprintf("Restarting (%d)", exitCode)
	case "created":
		return "Created"
	case "dead":
		return "Dead"
	case "removing":
		return "Removal In Progress"
	}
	return state
}
