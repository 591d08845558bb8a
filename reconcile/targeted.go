package reconcile

import "slices"

// A targeted observation lists only one fleet's containers (see
// ConvergeOptions.Targeted): enough to plan a heal, which touches only
// containers the list shows, but not what needs the rest of the host: a
// prune (the guard counts every managed container, a network's removal
// needs to know every container on it) or a create (an unmanaged
// container may hold the name). A plan from it is kept only when it is a
// heal.

// healOps are the operations a plan made from a targeted observation may
// hold: each acts on a container the observation listed, or waits.
var healOps = []Op{OpStart, OpRestart, OpUnpause, OpConnect, OpUpdate, OpPostStart,
	OpWaitHealthy, OpWaitExit, OpWaitUp, OpWaitRecovered, OpRoute}

// healOnly reports whether a plan only heals containers it saw (or does
// nothing), so that a targeted observation was enough to make it.
func healOnly(p ActionPlan) bool {
	if p.Refused != "" {
		return false
	}
	for _, a := range p.Actions {
		if !slices.Contains(healOps, a.Op) {
			return false
		}
	}
	return true
}

// targetOf is the fleet a Converge may observe alone: the one fleet in
// scope, when the options ask for a targeted observation.
func targetOf(pol Policy, opts ConvergeOptions) string {
	if !opts.Targeted || len(pol.Scope) != 1 || opts.InspectAll {
		return ""
	}
	return pol.Scope[0]
}
