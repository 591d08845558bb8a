package reconcile

import (
	"slices"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// Op is what one action does.
type Op string

// Operations, in the order the text rendering explains them.
const (
	OpEnsureNetwork Op = "ensure-network"
	OpEnsureVolume  Op = "ensure-volume"
	OpPull          Op = "pull"
	OpBuild         Op = "build"
	OpCreate        Op = "create"
	OpStart         Op = "start"
	// OpPostStart runs one post_start hook (HookName, Hook) in a container
	// fleetd just started or restarted; what waits for the start (a
	// health gate, a wait, dependents) waits for its hooks. A failed hook
	// fails the start, as in docker compose: the container is left running.
	OpPostStart     Op = "post-start"
	OpWaitHealthy   Op = "wait-healthy"
	OpWaitExit      Op = "wait-exit"
	OpWaitUp        Op = "wait-up" // a rollout's health gate
	OpWaitRecovered Op = "wait-recovered"
	// OpPreStop runs one pre_stop hook in a running container before
	// fleetd stops it. A failed hook fails the stop, as in docker compose
	// (the container is left running); a container that stopped meanwhile
	// has nothing to run it in, and its stop goes on.
	OpPreStop       Op = "pre-stop"
	OpStop          Op = "stop"
	OpRemove        Op = "remove"
	OpRename        Op = "rename"
	OpRestart       Op = "restart"
	OpUnpause       Op = "unpause"
	OpConnect       Op = "connect"
	OpUpdate        Op = "update"
	OpRemoveNetwork Op = "remove-network"
	// OpRoute puts a new replica of an ingress service into the ingress's
	// pool, once it passed its gate.
	OpRoute Op = "route"
	// OpDrain takes a replica of an ingress service out of the pool and
	// waits until its requests and connections finish (up to Timeout,
	// the service's drain), before it is stopped.
	OpDrain Op = "drain"
)

// Action is one step of a plan. Target names what it acts on (a container,
// network, volume or image reference); Cause says why, in words a reviewer
// reads; After lists the IDs of actions that must succeed first.
type Action struct {
	ID      int    `json:"id"`
	Op      Op     `json:"op"`
	Fleet   string `json:"fleet"`
	Service string `json:"service,omitempty"`
	Target  string `json:"target"`
	Slot    int    `json:"slot,omitempty"`
	Cause   string `json:"cause"`
	After   []int  `json:"after,omitempty"`

	ContainerID string                    `json:"container_id,omitempty"`
	NewName     string                    `json:"new_name,omitempty"` // rename
	Instance    *fleets.Instance          `json:"-"`                  // create
	Network     *fleets.Network           `json:"-"`                  // ensure-network
	Volume      *fleets.Volume            `json:"-"`                  // ensure-volume
	Build       *fleets.Build             `json:"-"`                  // build
	Attachment  *fleets.NetworkAttachment `json:"-"`                  // connect
	Spec        *fleets.Spec              `json:"-"`                  // update
	Hook        *fleets.Hook              `json:"-"`                  // post-start, pre-stop
	HookName    string                    `json:"hook,omitempty"`     // post-start, pre-stop: "post_start hook 1/2"
	Timeout     time.Duration             `json:"timeout,omitempty"`  // stop, restart, waits, hooks
	Heal        bool                      `json:"heal,omitempty"`
	Rollout     bool                      `json:"rollout,omitempty"`   // part of a rollout batch (Slot names the replica)
	Readiness   time.Duration             `json:"readiness,omitempty"` // wait-up
	Monitor     time.Duration             `json:"monitor,omitempty"`   // wait-up     // counts as a self-heal attempt for its container
	// ImageFrom is the ID of the pull or build action whose image ID the
	// created container is labelled with.
	ImageFrom int `json:"image_from,omitempty"`
}

// ActionPlan is the ordered list of actions that converges a host, plus what was
// found and deliberately not acted on.
type ActionPlan struct {
	Actions []Action `json:"actions"`
	// Drift is every drift item the plan was computed from.
	Drift []drift.Item `json:"drift"`
	// Blocked lists services or fleets that get no actions, with the reason
	// (a name conflict, self_heal off, suspend, heal backoff, refused prune).
	Blocked []Blocked `json:"blocked,omitempty"`
	// Refused is set when the prune guard refused the plan's removals.
	Refused string `json:"refused,omitempty"`
	// Rollouts are the rollout batches the plan carries, one per service
	// whose containers are replaced because its spec or image changed.
	Rollouts []RolloutStep `json:"rollouts,omitempty"`
	// NextAt, when set, is when a rollout's next batch is due (its
	// update_config delay); nothing in this plan waits for it.
	NextAt time.Time `json:"next_at,omitzero"`
	// HealAt, when set, is when the first heal held back by its backoff
	// is due; the daemon plans again then.
	HealAt time.Time `json:"heal_at,omitzero"`
}

// Blocked is a fleet or service the plan leaves alone, and why.
type Blocked struct {
	Fleet     string `json:"fleet"`
	Service   string `json:"service,omitempty"`
	Container string `json:"container,omitempty"`
	Reason    string `json:"reason"`
	// Error is true when the host cannot match the spec until someone acts
	// (a conflict); false when leaving it is policy (alert-only, suspend,
	// backoff).
	Error bool `json:"error"`
	// Fault classifies an Error block (a conflict, a missing image, a
	// failed rollout); Object names the thing it is about, when there is
	// one (the name held, the image).
	Fault  fault.Reason `json:"fault,omitempty"`
	Object string       `json:"object,omitempty"`
}

// Empty reports whether the plan changes nothing.
func (p ActionPlan) Empty() bool { return len(p.Actions) == 0 }

// Policy is everything besides desired and observed state that a plan
// depends on. It is plain data so that Plan stays pure.
type Policy struct {
	Now      time.Time
	Revision string // Git commit, written to io.fleetd.revision
	RepoDir  string // absolute repository path, for "repo:" bind sources
	// CheckoutDir is the repository checkout RepoDir is part of: a
	// "repo:../…" bind may leave RepoDir, never the checkout.
	CheckoutDir string
	// AllowMassPrune lifts the prune guard.
	AllowMassPrune bool
	// MassPruneRatio is the share of the host's managed containers a plan
	// may remove before the guard refuses it (default 0.5).
	MassPruneRatio float64
	// Heals records past self-heal attempts per container name, for backoff.
	Heals map[string]HealRecord
	// Rollouts is the rollout state: batches in progress, paused and
	// rolled-back rollouts (see Advance).
	Rollouts Rollouts
	// HealBackoff is the first backoff after a heal (default 10s), doubled
	// per attempt up to HealBackoffMax (default 5m).
	HealBackoff    time.Duration
	HealBackoffMax time.Duration
	// Scope, when set, names the fleets the plan acts on (the agent
	// applies one fleet at a time); nil means every fleet. Desired and
	// observed state stay whole: drift is computed for every fleet, names
	// held elsewhere are still conflicts, and the prune guard counts the
	// removals of every fleet.
	Scope []string
}

// InScope reports whether the plan acts on fleet.
func (p Policy) InScope(fleet string) bool {
	return p.Scope == nil || slices.Contains(p.Scope, fleet)
}

// HealRecord is the self-heal history of one container.
type HealRecord struct {
	Attempts int       `json:"attempts"`
	Last     time.Time `json:"last"`
}

// PruneRatio is the share of the host's managed containers a plan may
// remove before the prune guard refuses it.
func (p Policy) PruneRatio() float64 {
	if p.MassPruneRatio <= 0 {
		return 0.5
	}
	return p.MassPruneRatio
}

// The default self-heal backoff: the first wait after a heal, doubled per
// attempt up to the maximum (Policy.HealBackoff, Policy.HealBackoffMax).
const (
	DefaultHealBackoff    = 10 * time.Second
	DefaultHealBackoffMax = 5 * time.Minute
	// HealBackoffReset: a container last healed this long ago stayed up
	// since (a heal is recorded when it is made), so its next heal is a
	// first one again, as Kubernetes resets CrashLoopBackOff after 10
	// minutes of running. It is longer than the longest backoff, so a
	// crash loop still reaches it.
	HealBackoffReset = 10 * time.Minute
)

// healReset reports whether a container's heal history is old enough to
// start over (HealBackoffReset).
func healReset(rec HealRecord, now time.Time) bool {
	return !rec.Last.IsZero() && now.Sub(rec.Last) >= HealBackoffReset
}

// healDue reports whether a container may be healed now, and when it may
// be otherwise.
func (p Policy) healDue(name string) (bool, time.Time) {
	rec, ok := p.Heals[name]
	if !ok || rec.Attempts == 0 || healReset(rec, p.Now) {
		return true, time.Time{}
	}
	base, limit := p.HealBackoff, p.HealBackoffMax
	if base <= 0 {
		base = DefaultHealBackoff
	}
	if limit <= 0 {
		limit = DefaultHealBackoffMax
	}
	wait := base
	for i := 1; i < rec.Attempts && wait < limit; i++ {
		wait *= 2
	}
	wait = min(wait, limit)
	next := rec.Last.Add(wait)
	return !p.Now.Before(next), next
}
