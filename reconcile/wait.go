package reconcile

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// WaitTarget is one container `fleetd apply` waits for before it says the
// host matches the spec, as `docker compose up --wait` does.
type WaitTarget struct {
	Fleet, Service string
	Container, ID  string
	Hash           string        // the spec the container runs (the service's)
	Timeout        time.Duration // the service's health_timeout, or the --wait-timeout given
}

// WaitTargets lists the containers of the desired services on this host
// that run the desired spec: each must become healthy (or, without a
// healthcheck, keep running) within its timeout. override, when not zero,
// replaces every service's health_timeout. Swarm fleets are Swarm's to
// judge, and suspended fleets are only reported on. It is pure.
func WaitTargets(desired []fleets.Fleet, obs drift.Observed, override time.Duration) []WaitTarget {
	var out []WaitTarget
	for _, f := range desired {
		if !f.Targets || f.Engine == fleets.EngineSwarm || f.Policy.Suspend {
			continue
		}
		for _, svc := range f.Services {
			if !svc.Targets || svc.Replicas == 0 || runsToCompletion(f, svc.Name) {
				continue
			}
			timeout := svc.HealthTimeout
			if override > 0 {
				timeout = override
			}
			for _, c := range obs.Containers {
				if c.Labels[fleets.LabelFleet] != f.Name || c.Labels[fleets.LabelService] != svc.Name || c.Labels[fleets.LabelSpecHash] != svc.Hash {
					continue
				}
				out = append(out, WaitTarget{Fleet: f.Name, Service: svc.Name, Container: c.Name, ID: c.ID, Hash: svc.Hash, Timeout: timeout})
			}
		}
	}
	slices.SortFunc(out, func(a, b WaitTarget) int { return strings.Compare(a.Container, b.Container) })
	return out
}

// FirstDeployFailed records that the services of failed never became
// healthy after `fleetd apply` deployed them: a paused rollout of their
// spec, so that the next apply of the same revision leaves the failed
// replicas as they are to inspect (as a failed rollout's) instead of
// restarting them, until a new commit or --retry. Only the containers the
// apply created (created, by name) count: one that was there before and
// turned unhealthy is a heal's business, not a deploy's. A service with a
// record of its own keeps it. It is pure.
func FirstDeployFailed(rollouts Rollouts, failed []WaitTarget, created map[string]bool, reason map[string]string, now time.Time) Rollouts {
	out := maps.Clone(rollouts)
	if out == nil {
		out = Rollouts{}
	}
	for _, t := range failed {
		if !created[t.Container] {
			continue
		}
		key := rolloutKey(t.Fleet, t.Service)
		if r, ok := out[key]; ok && r.Target == t.Hash {
			continue
		}
		out[key] = RolloutRecord{Fleet: t.Fleet, Service: t.Service, Target: t.Hash, Status: RolloutPaused,
			Reason: "not healthy after apply: " + reason[key], Failures: 1, StartedAt: now, LastBatchAt: now}
	}
	return out
}

// Created lists the containers a Converge created, by the names they
// ended with (a start-first replacement's temporary name renamed to its
// slot's). It is pure.
func Created(o Outcome) map[string]bool {
	out := map[string]bool{}
	for _, rep := range o.Reports {
		for _, r := range rep.Results {
			if r.Status != Done {
				continue
			}
			switch r.Action.Op {
			case OpCreate:
				out[r.Action.Target] = true
			case OpRename:
				if out[r.Action.Target] {
					out[r.Action.NewName] = true
				}
			}
		}
	}
	return out
}

// runsToCompletion reports whether another service waits for this one to
// exit successfully (depends_on condition service_completed_successfully):
// a job, not something to keep running.
func runsToCompletion(f fleets.Fleet, service string) bool {
	for _, s := range f.Services {
		for _, d := range s.DependsOn {
			if d.Service == service && d.Condition == fleets.ConditionCompleted {
				return true
			}
		}
	}
	return false
}
