package fleets

import "slices"

// Selects reports whether the fleet-level placement selects host: the host is
// listed in Hosts (when any are) and carries every label in Labels.
func (p Placement) Selects(host Host) bool {
	if len(p.Hosts) > 0 && !slices.Contains(p.Hosts, host.Name) {
		return false
	}
	for k, v := range p.Labels {
		if got, ok := host.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Matches reports whether host satisfies one Swarm-style constraint.
func (c Constraint) Matches(host Host) bool {
	var have string
	var present bool
	switch {
	case c.Field == "node.hostname":
		have, present = host.Name, true
	case len(c.Field) > len("node.labels.") && c.Field[:len("node.labels.")] == "node.labels.":
		have, present = host.Labels[c.Field[len("node.labels."):]]
	}
	eq := present && have == c.Value
	if c.Op == "!=" {
		return !eq
	}
	return eq
}

// ConstraintsMatch reports whether host satisfies every constraint.
func ConstraintsMatch(cs []Constraint, host Host) bool {
	for _, c := range cs {
		if !c.Matches(host) {
			return false
		}
	}
	return true
}
