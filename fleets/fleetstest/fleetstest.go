// Package fleetstest builds fleet models for tests: a targeting fleet with
// self_heal and prune on and one default network, and services on it with
// their spec hash computed. It is imported by tests only.
package fleetstest

import (
	"time"

	"github.com/fleetd/fleetd/fleets"
)

// Service builds a targeting service of image app:v1 on the fleet's
// default network, with its hash computed after mods.
func Service(fleetName, name string, replicas int, mods ...func(*fleets.Service)) fleets.Service {
	s := fleets.Service{
		Name:     name,
		Replicas: replicas,
		Targets:  true,
		Spec: fleets.Spec{
			Image:       "app:v1",
			Environment: map[string]string{"LOG_LEVEL": "info"},
			Networks:    []fleets.NetworkAttachment{{Network: fleetName + "_default", Aliases: []string{name}}},
			Restart:     "unless-stopped",
			Resources:   fleets.Resources{Memory: 256 << 20},
		},
		PullPolicy:    "missing",
		HealthTimeout: 5 * time.Second,
		PublicEnv:     []string{"LOG_LEVEL"},
	}
	for _, m := range mods {
		m(&s)
	}
	return Rehash(s)
}

// Rehash recomputes the service's spec hash.
func Rehash(s fleets.Service) fleets.Service {
	h, err := fleets.HashSpec(fleets.HashVersion, s.Spec)
	if err != nil {
		panic(err)
	}
	s.Hash = h
	return s
}

// Fleet builds a targeting fleet with self_heal and prune on and one
// default network.
func Fleet(name string, svcs ...fleets.Service) fleets.Fleet {
	return fleets.Fleet{
		Name:     name,
		Targets:  true,
		Policy:   fleets.Policy{SelfHeal: true, Prune: true},
		Services: svcs,
		Networks: []fleets.Network{{Key: "default", Name: name + "_default"}},
	}
}
