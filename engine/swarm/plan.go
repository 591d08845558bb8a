package swarm

import (
	"cmp"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Operations of a swarm plan, in the order they run: what services need
// exists before they are created or updated; what they no longer use is
// removed after.
const (
	OpCreateNetwork = "create-network"
	OpCreateSecret  = "create-secret"
	OpCreateConfig  = "create-config"
	OpCreateService = "create-service"
	OpUpdateService = "update-service"
	// OpReplaceService removes a service and creates it again: Swarm
	// cannot change a service between replicated and global mode in
	// place. The service runs no task between the two calls.
	OpReplaceService = "replace-service"
	OpRemoveService  = "remove-service"
	OpRemoveSecret   = "remove-secret"
	OpRemoveConfig   = "remove-config"
	OpRemoveNetwork  = "remove-network"
)

// Action is one mutating call, with the drift it answers.
type Action struct {
	Op      string   `json:"op"`
	Name    string   `json:"name"`
	Service *Service `json:"-"`
	Network *Network `json:"-"`
	File    *File    `json:"-"`
	// ID and Version identify the observed object an update or removal
	// acts on; an update sends Version, so a service changed since it was
	// observed is not overwritten (the swarm refuses, fleetd observes again).
	ID      string     `json:"-"`
	Version uint64     `json:"-"`
	Cause   drift.Item `json:"cause"`
	// PrevUpdate is when the update observed before the action started:
	// a later one is the action's.
	PrevUpdate time.Time `json:"-"`
}

// Policy is what a fleet allows fleetd to do.
type Policy struct {
	SelfHeal bool // undo out-of-band changes (else report them)
	Prune    bool // remove owned objects Git no longer has
}

// Plan is what to do about a fleet's drift: actions in order, drift that
// blocks (an object of the fleet's name fleetd does not own), and drift
// that is only reported.
type Plan struct {
	Actions  []Action     `json:"actions"`
	Blocked  []drift.Item `json:"blocked,omitempty"`
	Reported []drift.Item `json:"reported,omitempty"`
}

// PlanStack plans a fleet against what the swarm runs. It is pure.
func PlanStack(want Stack, obs Observed, p Policy) Plan {
	var plan Plan
	byName := map[string]int{}
	for i, s := range want.Services {
		byName[s.Name] = i
	}
	phase := map[string][]Action{}
	add := func(a Action) { phase[a.Op] = append(phase[a.Op], a) }
	for _, it := range Diff(want, obs) {
		kind, name := it.Object, it.Container
		switch it.Kind {
		case drift.Conflict:
			plan.Blocked = append(plan.Blocked, it)
		case drift.Missing:
			switch kind {
			case ObjNetwork:
				add(Action{Op: OpCreateNetwork, Name: name, Network: findNetwork(want, name), Cause: it})
			case ObjSecret:
				add(Action{Op: OpCreateSecret, Name: name, File: findFile(want.Secrets, name), Cause: it})
			case ObjConfig:
				add(Action{Op: OpCreateConfig, Name: name, File: findFile(want.Configs, name), Cause: it})
			case ObjService:
				add(Action{Op: OpCreateService, Name: name, Service: &want.Services[byName[name]], Cause: it})
			}
		case drift.SpecChange, drift.Modified:
			if it.Kind == drift.Modified && !p.SelfHeal {
				plan.Reported = append(plan.Reported, it)
				continue
			}
			o := obs.Services[name]
			op := OpUpdateService
			if modeKind(want.Services[byName[name]].Spec.Mode) != modeKind(o.Spec.Mode) {
				op = OpReplaceService
			}
			add(Action{Op: op, Name: name, Service: &want.Services[byName[name]], ID: o.ID, Version: o.Version,
				PrevUpdate: o.UpdateStarted, Cause: it})
		case drift.Orphan:
			if !p.Prune {
				plan.Reported = append(plan.Reported, it)
				continue
			}
			switch kind {
			case ObjService:
				add(Action{Op: OpRemoveService, Name: name, ID: obs.Services[name].ID, Cause: it})
			case ObjSecret:
				add(Action{Op: OpRemoveSecret, Name: name, ID: obs.Secrets[name].ID, Cause: it})
			case ObjConfig:
				add(Action{Op: OpRemoveConfig, Name: name, ID: obs.Configs[name].ID, Cause: it})
			case ObjNetwork:
				add(Action{Op: OpRemoveNetwork, Name: name, ID: obs.Networks[name].ID, Cause: it})
			}
		default: // tasks, rolling-out: Swarm's own work, reported
			plan.Reported = append(plan.Reported, it)
		}
	}
	for _, op := range []string{OpCreateNetwork, OpCreateSecret, OpCreateConfig, OpCreateService, OpUpdateService,
		OpReplaceService, OpRemoveService, OpRemoveSecret, OpRemoveConfig, OpRemoveNetwork} {
		plan.Actions = append(plan.Actions, phase[op]...)
	}
	return plan
}

// modeKind names a service mode's kind: what Swarm cannot change in place.
func modeKind(m swarm.ServiceMode) string {
	switch {
	case m.Global != nil:
		return "global"
	case m.ReplicatedJob != nil:
		return "replicated-job"
	case m.GlobalJob != nil:
		return "global-job"
	}
	return "replicated"
}

func findNetwork(st Stack, name string) *Network {
	for i := range st.Networks {
		if st.Networks[i].Name == name {
			return &st.Networks[i]
		}
	}
	return nil
}

func findFile(files []File, name string) *File {
	for i := range files {
		if files[i].Name == name {
			return &files[i]
		}
	}
	return nil
}

// updateGrace is how long a rollout waits for Swarm's updater to start
// after an update before it takes the update as one made in place (a
// placement, label or scale change replaces no task when every task still
// fits).
const updateGrace = 3 * time.Second

// RolloutOutcome judges an action's rollout from the service as the swarm
// shows it (nil: gone), waited after the action was executed. After an
// update, Swarm's updater must start an update later than the one observed
// before; it is followed to its end (completed, paused, rolled back). If
// none starts within updateGrace and every desired task runs, the update
// was made in place. After that, and after a create, the rollout is over
// when every desired task runs. done is false while it is not, until
// timeout, when the outcome's state is "timeout". It is pure.
func RolloutOutcome(a Action, s *swarm.Service, waited, timeout time.Duration) (o Outcome, done bool) {
	o = Outcome{Service: a.Name, State: "timeout", Message: "the service is gone"}
	if s != nil {
		o = Outcome{Service: a.Name}
		started := false
		if u := s.UpdateStatus; u != nil && u.StartedAt != nil && u.StartedAt.After(a.PrevUpdate) {
			o.State, o.Message, started = u.State, u.Message, true
		}
		if st := s.ServiceStatus; st != nil {
			o.Running, o.Desired = st.RunningTasks, st.DesiredTasks
		}
		switch o.State {
		case swarm.UpdateStatePaused, swarm.UpdateStateRollbackCompleted, swarm.UpdateStateRollbackPaused:
			return o, true
		case swarm.UpdateStateUpdating, swarm.UpdateStateRollbackStarted:
			// still at work
		default:
			waitStart := a.Op == OpUpdateService && !started && waited < updateGrace
			// Desired is 0 for a moment after a create, until the
			// orchestrator has made the tasks; it stays 0 for a service
			// scaled to 0 and a global one no node accepts.
			none := (s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil && *s.Spec.Mode.Replicated.Replicas == 0) ||
				(s.Spec.Mode.Global != nil && waited >= updateGrace)
			if !waitStart && o.Running >= o.Desired && (o.Desired > 0 || none) {
				return o, true
			}
		}
	}
	if waited <= timeout {
		return o, false
	}
	if o.State != "timeout" {
		o.Message = fmt.Sprintf("not done after %s (%s; %d of %d tasks running)", timeout, cmp.Or(string(o.State), "no update"), o.Running, o.Desired)
		o.State = "timeout"
	}
	return o, true
}

// revisionRemovals weighs a revision's removals of swarm services for the
// prune guard: owned lists the services fleetd owns on the swarm as
// "fleet/service"; those no swarm fleet of desired wants are removed. left
// is 1 when some owned service stays. It is pure.
func revisionRemovals(owned []string, desired []fleets.Fleet) (removing, left int) {
	wanted := map[string]bool{}
	for _, f := range desired {
		if f.Engine == fleets.EngineSwarm {
			for _, s := range f.Services {
				wanted[f.Name+"/"+s.Name] = true
			}
		}
	}
	for _, key := range owned {
		if wanted[key] {
			left = 1
		} else {
			removing++
		}
	}
	return removing, left
}

// pausedAtWanted lists the services whose update to the wanted spec ended
// paused without fleetd having marked it (the agent that started it
// stopped meanwhile): failed rollouts still to judge. It is pure.
func pausedAtWanted(st Stack, obs Observed) []*Service {
	var out []*Service
	for i := range st.Services {
		s := &st.Services[i]
		have, ok := obs.Services[s.Name]
		if ok && have.Owned && have.Spec.Labels[LabelFailed] == "" &&
			have.Update == swarm.UpdateStatePaused && have.Spec.Labels[LabelSpecHash] == s.Hash {
			out = append(out, s)
		}
	}
	return out
}
