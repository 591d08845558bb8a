package reconcile

import (
	"fmt"
	"slices"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// Plan decides what converges the host: desired are the fleets as loaded for
// this host, obs one snapshot of the engine. It is pure: the same inputs give
// the same plan, and it calls nothing outside this process.
//
// Order: per fleet, networks and volumes, images, then services in
// depends_on order; then removals of what left the spec, then networks that
// end up empty. Each action lists the actions it must wait for.
func Plan(desired []fleets.Fleet, obs drift.Observed, pol Policy) ActionPlan {
	pol.Rollouts = Forget(pol.Rollouts, desired)
	desired = withRollbacks(desired, pol.Rollouts)
	items := drift.Diff(desired, obs)
	b := newBuilder(obs, pol)
	byService := groupItems(items)
	for _, f := range desired {
		if !f.Targets || !pol.InScope(f.Name) {
			continue
		}
		if f.Policy.Suspend {
			if len(byService[f.Name]) > 0 {
				b.block(f.Name, "", "", "suspended: drift reported, nothing done", false)
			}
			continue
		}
		b.planFleet(f, byService[f.Name])
	}
	b.planOrphans(desired, items)
	b.planNetworkRemovals(desired)
	b.guardMassPrune(desired)
	b.finishRollouts(desired, items)
	b.orderNameReuse()
	return ActionPlan{Actions: b.actions, Drift: items, Blocked: b.blocked, Refused: b.refused, Rollouts: b.rollouts, NextAt: b.nextAt, HealAt: b.healAt}
}

// groupItems indexes drift items by fleet and service.
func groupItems(items []drift.Item) map[string]map[string][]drift.Item {
	out := map[string]map[string][]drift.Item{}
	for _, it := range items {
		if out[it.Fleet] == nil {
			out[it.Fleet] = map[string][]drift.Item{}
		}
		out[it.Fleet][it.Service] = append(out[it.Fleet][it.Service], it)
	}
	return out
}

func (b *builder) planFleet(f fleets.Fleet, items map[string][]drift.Item) {
	if len(items) == 0 {
		return // in sync: the common case, and ordering services copies them
	}
	// Fleet-level items (Service "") are network conflicts: an unmanaged
	// network holds a name the fleet needs, so none of it can be deployed.
	for _, it := range items[""] {
		if it.Kind == drift.Conflict {
			b.fail(f.Name, "", it.Container, "name conflict: "+it.Detail+"; fleetd never touches objects it did not create", fault.Conflict, it.Container)
			return
		}
	}
	for _, svc := range dependencyOrder(f.Services) {
		if !svc.Targets {
			continue
		}
		svcItems := withoutKind(items[svc.Name], drift.Orphan)
		if len(svcItems) == 0 {
			continue
		}
		b.planService(serviceCtx{fleet: f, svc: svc, items: svcItems})
	}
}

func withoutKind(items []drift.Item, k drift.Kind) []drift.Item {
	var out []drift.Item
	for _, it := range items {
		if it.Kind != k {
			out = append(out, it)
		}
	}
	return out
}

// dependencyOrder sorts services so that each comes after the services it
// depends on (ties by name). The loader rejects cycles; should one slip
// through, the remaining services follow in name order.
func dependencyOrder(services []fleets.Service) []fleets.Service {
	byName := map[string]fleets.Service{}
	for _, s := range services {
		byName[s.Name] = s
	}
	done := map[string]bool{}
	var out []fleets.Service
	for len(out) < len(services) {
		progressed := false
		for _, s := range services {
			if done[s.Name] || !depsDone(s, byName, done) {
				continue
			}
			done[s.Name] = true
			out = append(out, s)
			progressed = true
		}
		if !progressed {
			for _, s := range services {
				if !done[s.Name] {
					done[s.Name] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func depsDone(s fleets.Service, byName map[string]fleets.Service, done map[string]bool) bool {
	for _, d := range s.DependsOn {
		if _, known := byName[d.Service]; known && !done[d.Service] {
			return false
		}
	}
	return true
}

// planOrphans removes managed containers whose service or fleet left the
// spec, when the fleet's prune policy allows (a fleet that is gone entirely
// is pruned by default; the prune guard still applies).
func (b *builder) planOrphans(desired []fleets.Fleet, items []drift.Item) {
	policy := map[string]fleets.Fleet{}
	for _, f := range desired {
		policy[f.Name] = f
	}
	for _, it := range items {
		if it.Kind != drift.Orphan {
			continue
		}
		f, known := policy[it.Fleet]
		if known && f.Targets && f.Policy.Suspend {
			continue
		}
		if !b.pol.InScope(it.Fleet) {
			if !known || !f.Targets || f.Policy.Prune {
				b.prunedElsewhere++ // another fleet's apply removes it; the guard counts it here too
			}
			continue
		}
		if known && f.Targets && !f.Policy.Prune {
			b.block(it.Fleet, it.Service, it.Container, "prune is off: orphan left running", false)
			continue
		}
		id := b.removeContainer(it.Fleet, orphanService(f, it.Service), it.ContainerID, it.Container, causeOf(it), b.running(it.ContainerID))
		b.pruned = append(b.pruned, id)
	}
}

// orphanService is what removing an orphan of service needs to know of
// it: its name, and, when the fleet's desired state still describes it
// (the fleet or service no longer targets this host), its pre_stop hooks
// and the bound of their run. Of a service that left the spec nothing else
// is known: its containers are stopped without hooks, as docker compose
// removes orphans.
func orphanService(f fleets.Fleet, service string) fleets.Service {
	out := fleets.Service{Name: service}
	for _, s := range f.Services {
		if s.Name == service {
			out.PreStop, out.HealthTimeout = s.PreStop, s.HealthTimeout
		}
	}
	return out
}

// planNetworkRemovals removes managed networks that no targeted fleet wants
// any more, once every container attached to them is removed by this plan.
func (b *builder) planNetworkRemovals(desired []fleets.Fleet) {
	wanted := map[string]bool{}
	for _, f := range desired {
		if !f.Targets {
			continue
		}
		for _, n := range f.Networks {
			wanted[n.Name] = true
		}
	}
	removed := b.removedContainers()
	for _, n := range b.obs.Networks {
		if n.Labels[fleets.LabelManaged] != "true" || wanted[n.Name] || !b.pol.InScope(n.Labels[fleets.LabelFleet]) {
			continue
		}
		var after []int
		inUse := false
		for _, c := range b.obs.Containers {
			if !slices.Contains(c.Networks, n.Name) {
				continue
			}
			id, ok := removed[c.ID]
			if !ok {
				inUse = true
				break
			}
			after = append(after, id)
		}
		if inUse {
			continue
		}
		id := b.add(Action{Op: OpRemoveNetwork, Fleet: n.Labels[fleets.LabelFleet], Target: n.Name, Cause: "network left the spec and is empty", After: after})
		b.pruned = append(b.pruned, id)
	}
}

// removedContainers maps the IDs of containers this plan removes to the
// removing action.
func (b *builder) removedContainers() map[string]int {
	out := map[string]int{}
	for _, a := range b.actions {
		if a.Op == OpRemove && a.ContainerID != "" {
			out[a.ContainerID] = a.ID
		}
	}
	return out
}

// guardMassPrune refuses the plan's prune actions (orphan removals and the
// network removals after them) when they would remove more than the allowed
// share of the host's managed containers, or every fleet on the host. The
// rest of the plan (deploys, heals, scaling) goes ahead. A plan scoped to
// some fleets counts the removals of every fleet, so that applying fleets
// one at a time cannot slip a mass prune past the guard.
func (b *builder) guardMassPrune(desired []fleets.Fleet) {
	if b.pol.AllowMassPrune || len(b.pruned) == 0 {
		return
	}
	managed := 0
	for _, c := range b.obs.Containers {
		if c.Labels[fleets.LabelManaged] == "true" {
			managed++
		}
	}
	removing := b.prunedElsewhere
	for _, id := range b.pruned {
		if b.actions[id-1].Op == OpRemove {
			removing++
		}
	}
	targeted := 0
	for _, f := range desired {
		if f.Targets {
			targeted++
		}
	}
	reason := MassPrune(removing, managed, targeted, b.pol.PruneRatio(), "host", "containers")
	if reason == "" {
		return
	}
	b.refused = reason
	b.dropPruned()
}

// MassPrune is the prune guard's decision, for the containers of a host
// and the services of a swarm alike: why removing `removing` of the
// `managed` objects fleetd owns (named by what) in scope ("host",
// "swarm") is refused, or "" when it is not. It is refused when no fleet
// is left there (fleetsLeft 0), or when it is more than ratio of them.
func MassPrune(removing, managed, fleetsLeft int, ratio float64, scope, what string) string {
	var reason string
	switch {
	case removing == 0:
		return ""
	case fleetsLeft == 0:
		reason = fmt.Sprintf("the revision removes every fleet from this %s (%d %s)", scope, removing, what)
	case float64(removing) > ratio*float64(managed):
		reason = fmt.Sprintf("the revision removes %d of the %s's %d managed %s (limit %.0f%%)", removing, scope, managed, what, 100*ratio)
	default:
		return ""
	}
	return "prune guard: " + reason + "; rerun with --allow-mass-prune if this is intended"
}

// dropPruned removes the prune actions, their stops with what runs
// before them (pre_stop hooks, drains), and renumbers the plan.
func (b *builder) dropPruned() {
	drop := map[int]bool{}
	for _, id := range b.pruned {
		drop[id] = true
		b.dropStopChain(id, drop)
	}
	renumber := map[int]int{}
	var kept []Action
	for _, a := range b.actions {
		if drop[a.ID] {
			continue
		}
		renumber[a.ID] = len(kept) + 1
		kept = append(kept, a)
	}
	for i := range kept {
		kept[i].ID = renumber[kept[i].ID]
		if kept[i].ImageFrom != 0 {
			kept[i].ImageFrom = renumber[kept[i].ImageFrom]
		}
		var after []int
		for _, dep := range kept[i].After {
			if n, ok := renumber[dep]; ok {
				after = append(after, n)
			}
		}
		kept[i].After = after
	}
	b.actions = kept
	b.pruned = nil
}

// dropStopChain marks the stop that action id waits for, and the pre_stop
// hooks and drain before that stop, for dropping.
func (b *builder) dropStopChain(id int, drop map[int]bool) {
	for _, dep := range b.actions[id-1].After {
		switch b.actions[dep-1].Op {
		case OpStop, OpPreStop, OpDrain:
			drop[dep] = true
			b.dropStopChain(dep, drop)
		}
	}
}
