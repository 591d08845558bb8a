package swarm

import (
	"strings"
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
	ID      string `json:"-"`
	Version uint64 `json:"-"`
	Cause   Item   `json:"cause"`
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
	Actions  []Action `json:"actions"`
	Blocked  []Item   `json:"blocked,omitempty"`
	Reported []Item   `json:"reported,omitempty"`
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
		kind, name, _ := strings.Cut(it.Object, " ")
		switch it.Kind {
		case KindConflict:
			plan.Blocked = append(plan.Blocked, it)
		case KindMissing:
			switch kind {
			case "network":
				add(Action{Op: OpCreateNetwork, Name: name, Network: findNetwork(want, name), Cause: it})
			case "secret":
				add(Action{Op: OpCreateSecret, Name: name, File: findFile(want.Secrets, name), Cause: it})
			case "config":
				add(Action{Op: OpCreateConfig, Name: name, File: findFile(want.Configs, name), Cause: it})
			case "service":
				add(Action{Op: OpCreateService, Name: name, Service: &want.Services[byName[name]], Cause: it})
			}
		case KindChanged, KindModified:
			if it.Kind == KindModified && !p.SelfHeal {
				plan.Reported = append(plan.Reported, it)
				continue
			}
			o := obs.Services[name]
			add(Action{Op: OpUpdateService, Name: name, Service: &want.Services[byName[name]], ID: o.ID, Version: o.Version, Cause: it})
		case KindExtra:
			if !p.Prune {
				plan.Reported = append(plan.Reported, it)
				continue
			}
			switch kind {
			case "service":
				add(Action{Op: OpRemoveService, Name: name, ID: obs.Services[name].ID, Cause: it})
			case "secret":
				add(Action{Op: OpRemoveSecret, Name: name, ID: obs.Secrets[name].ID, Cause: it})
			case "config":
				add(Action{Op: OpRemoveConfig, Name: name, ID: obs.Configs[name].ID, Cause: it})
			case "network":
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
