package reconcile

import (
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Lookups into the observed snapshot. They scan: a host runs hundreds of
// containers, not millions, and the planner calls them per drift item only.

func (b *builder) container(id string) *drift.Container {
	if id == "" {
		return nil
	}
	for i := range b.obs.Containers {
		if b.obs.Containers[i].ID == id {
			return &b.obs.Containers[i]
		}
	}
	return nil
}

func (b *builder) managedByName(name string) *drift.Container {
	for i := range b.obs.Containers {
		c := &b.obs.Containers[i]
		if c.Name == name && c.Labels[fleets.LabelManaged] == "true" {
			return c
		}
	}
	return nil
}

// running reports whether a container must be stopped before removal.
func (b *builder) running(id string) bool {
	c := b.container(id)
	if c == nil {
		return false
	}
	switch c.State {
	case "running", "paused", "restarting":
		return true
	}
	return false
}

func (b *builder) attached(id, network string) bool {
	c := b.container(id)
	if c == nil {
		return false
	}
	for _, n := range c.Networks {
		if n == network {
			return true
		}
	}
	return false
}

// appliedSpec is the spec a container was created from (its spec label),
// so that healing a `docker update` restores what fleetd applied rather
// than a newer spec the container has not been replaced with yet.
func (b *builder) appliedSpec(id string, fallback fleets.Spec) fleets.Spec {
	c := b.container(id)
	if c == nil {
		return fallback
	}
	spec, err := fleets.DecodeSpec(c.Labels[fleets.LabelSpec])
	if err != nil {
		return fallback
	}
	return spec
}
