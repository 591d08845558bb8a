package swarm

import (
	"time"

	"github.com/fleetd/fleetd/drift"
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
	OpRemoveService = "remove-service"
	OpRemoveSecret  = "remove-secret"
	OpRemoveConfig  = "remove-config"
	OpRemoveNetwork = "remove-network"
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
			add(Action{Op: OpUpdateService, Name: name, Service: &want.Services[byName[name]], ID: o.ID, Version: o.Version,
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
		OpRemoveService, OpRemoveSecret, OpRemoveConfig, OpRemoveNetwork} {
		plan.Actions = append(plan.Actions, phase[op]...)
	}
	return plan
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
