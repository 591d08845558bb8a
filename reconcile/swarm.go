package reconcile

import (
	"context"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// SwarmEngine runs the fleets whose engine is swarm (x-fleetd engine:
// swarm), once per swarm: engine/swarm.Runner. The agent hands it one
// fleet per apply, as it hands a docker fleet to Converge.
type SwarmEngine interface {
	Converge(ctx context.Context, f fleets.Fleet, o SwarmOptions) (SwarmResult, error)
}

// SwarmOptions are one apply's: the revision (informational), whether to
// plan only (outside the sync windows), whether to retry a revision whose
// rollout failed (a manual sync), and where rollout events go.
type SwarmOptions struct {
	Revision string
	// Dir is the revision's fleets directory, where nodes.yaml is read
	// (node labels and availability); "" reads none.
	Dir        string
	ReportOnly bool
	Retry      bool
	OnEvent    func(Event)
	// Desired is every fleet of the revision: the prune guard counts the
	// removals of the whole revision, not of one fleet.
	Desired []fleets.Fleet
}

// SwarmResult is what one apply of a swarm fleet found and did. Its error,
// classified (package fault), says what kept it from converging:
// fault.NotLeader when another agent holds the swarm's lease (and nothing
// was done), fault.RolloutFailed when Swarm's updater rolled back or
// paused, or the rollout timed out.
type SwarmResult struct {
	Drifted []drift.Item // out-of-band drift found before acting
	Left    []drift.Item // drift left afterwards
	Changes string       // what changed, "" nothing
}
