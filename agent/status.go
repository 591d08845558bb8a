package agent

import (
	"cmp"
	"slices"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Status is the agent's state for people: /v1/status, `fleetd status`.
type Status struct {
	Host     string              `json:"host"`
	Revision *reconcile.Revision `json:"revision,omitempty"` // newest revision taken
	Fetched  time.Time           `json:"fetched,omitzero"`   // last successful ask of the source
	LastSync time.Time           `json:"last_sync,omitzero"` // last apply of any fleet
	Ready    bool                `json:"ready"`              // the source was synced once
	// Error is what keeps the host from following the repository: the
	// source or the engine unreachable.
	Error   string        `json:"error,omitempty"`
	Invalid string        `json:"invalid,omitempty"`     // problems of the newest revision, if any
	Backoff string        `json:"git_backoff,omitempty"` // while the source is unreachable
	Engine  EngineStatus  `json:"engine"`
	Fleets  []FleetStatus `json:"fleets"`
	// DriftKind counts the drift left on the host by kind.
	DriftKind map[string]int `json:"drift"`
}

// EngineStatus is the engine connection.
type EngineStatus struct {
	Up    bool      `json:"up"`
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since,omitzero"` // down since
}

// FleetStatus is one fleet's line in the status.
type FleetStatus struct {
	Name        string                    `json:"name"`
	Desired     string                    `json:"desired_revision"`
	Applied     string                    `json:"applied_revision,omitempty"`
	Conditions  []Condition               `json:"conditions"`
	LastAttempt time.Time                 `json:"last_attempt,omitzero"`
	NextRetry   time.Time                 `json:"next_retry,omitzero"`
	Drift       []drift.Item              `json:"drift"`
	Rollouts    []reconcile.RolloutRecord `json:"rollouts,omitempty"`
	// Error is why the fleet does not converge, if it does not.
	Error string `json:"error,omitempty"`
	// Engine is where the fleet runs (docker or swarm); Standby names the
	// agent acting for a swarm fleet when this one is not.
	Engine  string `json:"engine,omitempty"`
	Standby string `json:"standby,omitempty"`
	// Services are the desired services, for counts of replicas.
	Services []ServiceStatus `json:"services,omitempty"`
	// Updates are the services whose image tag names a new digest at its
	// registry, or could not be checked (imageupdates.go).
	Updates []ImageUpdate `json:"image_updates,omitempty"`
}

// ServiceStatus is one desired service of a fleet: its image and how many
// replicas this host (or the swarm) wants.
type ServiceStatus struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	Replicas int    `json:"replicas"`
}

// Condition returns the fleet's condition of a type.
func (f FleetStatus) Condition(typ string) Condition {
	c, _ := findCondition(f.Conditions, typ)
	return c
}

// StatusOf renders the state for people, redacted (redactStatus). It is
// pure.
func StatusOf(s State, host string, now time.Time) Status {
	st := Status{Host: host, Revision: s.Revision, Fetched: s.Source.Fetched, Ready: s.Source.Ready, Invalid: s.Invalid,
		Engine: EngineStatus{Up: s.Engine.Up, Error: s.Engine.Err, Since: s.Engine.Since}, DriftKind: map[string]int{}, Fleets: []FleetStatus{}}
	if s.Refused != nil {
		st.Invalid = s.Refused.message()
	}
	switch {
	case s.Engine.Err != "":
		st.Error = s.Engine.Err
	case s.Source.Err != "":
		st.Error = s.Source.Err
	}
	if s.Source.Err != "" && !s.Source.RetryAt.IsZero() {
		st.Backoff = max(s.Source.RetryAt.Sub(now), 0).Round(time.Millisecond).String()
	}
	users := imageUsersOf(s.Fleets)
	for _, f := range s.Fleets {
		st.LastSync = latest(st.LastSync, f.LastAttempt)
		for _, it := range f.Drift {
			st.DriftKind[string(it.Kind)]++
		}
		fs := fleetStatus(f)
		fs.Updates = imageUpdates(s, f, users, s.WindowOpen)
		st.Fleets = append(st.Fleets, fs)
	}
	slices.SortFunc(st.Fleets, func(a, b FleetStatus) int { return cmp.Compare(a.Name, b.Name) })
	return redactStatus(st, redactorOf(s))
}

func fleetStatus(f Fleet) FleetStatus {
	fs := FleetStatus{Name: f.Name, Desired: f.Rev.Commit, Applied: f.Applied, Conditions: f.Conditions,
		LastAttempt: f.LastAttempt, NextRetry: f.RetryAt, Drift: f.Drift, Rollouts: f.Rollouts}
	if fs.Drift == nil {
		fs.Drift = []drift.Item{}
	}
	fs.Standby = f.Standby
	if f.Model != nil {
		fs.Engine = f.Model.Engine
		for _, svc := range f.Model.Services {
			replicas := svc.Replicas
			if !svc.Targets && f.Model.Engine != fleets.EngineSwarm {
				replicas = 0 // placed on other hosts
			}
			fs.Services = append(fs.Services, ServiceStatus{Name: svc.Name, Image: svc.Spec.Image, Replicas: replicas})
		}
	}
	switch {
	case f.Invalid != "":
		fs.Error = f.Invalid
	case f.Stall != nil:
		fs.Error = f.Stall.Message
	case len(f.Faults) > 0:
		fs.Error = faultText(f.Faults)
	}
	return fs
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
