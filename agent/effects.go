package agent

import (
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Effect is what Next asks the shell to do. The shell runs effects in the
// order given and reports their results as inputs.
type Effect interface{ effect() }

// Fetch asks the source for its head (fetching only when it moved) and,
// when it moved or Load is set, loads the revision's fleets; the result is
// a Fetched or FetchFailed input.
type Fetch struct{ Load bool }

// Resume loads an older, already fetched commit for fleets that lack a
// model (after a restart on an invalid head, or with the source down); the
// result is a Resumed input.
type Resume struct {
	Commit string
	Fleets []string
}

// Apply converges one fleet: observe, plan for this fleet only, execute,
// judge rollouts; the result is an ApplyDone input.
type Apply struct {
	Fleet string
	// Model is the fleet as desired; nil when it left the spec, and its
	// containers and networks are to be pruned.
	Model    *fleets.Fleet
	Revision reconcile.Revision
	// Desired is every fleet with a model (the plan computes drift, name
	// conflicts and the prune guard over the whole host).
	Desired []fleets.Fleet
	// Full inspects every container (a resync catches `docker update`s);
	// Retry retries failed rollouts (manual sync); ReportOnly plans and
	// reports without executing (outside the sync windows).
	Full, Retry, ReportOnly bool
	// Targeted observes only this fleet's containers while what the
	// apply plans is a heal (reconcile.ConvergeOptions.Targeted); a
	// report-only apply observes the whole host all the same.
	Targeted bool
}

// Survey is the periodic resync: one observation of the whole host,
// inspecting every managed container, compared with Desired; the result is
// a Surveyed input naming the fleets that drifted. It costs the same for
// one fleet or two hundred.
type Survey struct{ Desired []fleets.Fleet }

// Watch (re)subscribes to engine events, then checks the engine answers;
// the result is EngineUp, or EngineLost (also sent when the stream breaks
// later).
type Watch struct{}

// Notify hands an event to the notifier.
type Notify struct{ Event reconcile.Event }

// ArmTimer sets the shell's one timer; a zero At disarms it. When it fires
// the shell sends TimerFired.
type ArmTimer struct{ At time.Time }

// Persist writes the state worth keeping across restarts, per fleet.
type Persist struct{ Fleets map[string]SavedFleet }

// SavedFleet is what a restart needs to know of a fleet: the commit its
// model came from (the last revision where it was valid), the commit last
// applied, and whether it left the spec and still has things to prune.
type SavedFleet struct {
	Commit  string `json:"commit,omitempty"`
	Applied string `json:"applied,omitempty"`
	Gone    bool   `json:"gone,omitempty"`
	// Posted is the commit status last posted, so that a restart neither
	// repeats it nor forgets a commit whose outcome is still to post.
	Posted CommitStatus `json:"posted,omitzero"`
}

func (Fetch) effect()    {}
func (Resume) effect()   {}
func (Apply) effect()    {}
func (Watch) effect()    {}
func (Survey) effect()   {}
func (Notify) effect()   {}
func (ArmTimer) effect() {}
func (Persist) effect()  {}
