package ingress

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/fleets"
)

// Replica is one container of a fleet's service as the host runs it:
// what Build needs to decide whether and where to route to it.
type Replica struct {
	ID, Name       string
	Fleet, Service string
	Running        bool
	Health         string            // "" (no healthcheck) | starting | healthy | unhealthy
	IPs            map[string]string // network name → the replica's address on it
}

// Pool says which replicas the agent put in or took out of the pool
// explicitly: Routed (by ID or name) admits a replica still under its
// rollout's temporary name; Draining keeps one out whatever its health.
type Pool struct {
	Routed   map[string]bool
	Draining map[string]bool
}

// tempSuffix ends the name of a new replica until it takes its slot's
// name (reconcile's start-first rollout).
const tempSuffix = "-next"

// Build makes the routing table for the desired fleets of a host from the
// replicas it runs. A service behind the ingress gets one route per listen
// port (services with host or path rules share a port); a replica is a
// backend while it runs, is not starting or unhealthy by Docker's
// healthcheck, and is not a new replica the agent has not routed yet. A
// draining replica stays in the table, marked, until it stops, so that the
// ingress lets its requests finish. The backend's address is the replica's
// on the service's first network. It is pure.
func Build(version uint64, desired []fleets.Fleet, replicas []Replica, pool Pool) Table {
	t := Table{Version: version}
	byPort := map[uint16]int{}
	for _, f := range desired {
		if !f.Targets || f.Engine == fleets.EngineSwarm {
			continue
		}
		for _, svc := range f.Services {
			in := svc.Ingress
			if in == nil || !svc.Targets {
				continue
			}
			for _, p := range in.Ports {
				port, err := strconv.ParseUint(p.Published, 10, 16)
				if err != nil || port == 0 {
					continue // validation refused it already
				}
				i, ok := byPort[uint16(port)]
				if !ok {
					i = len(t.Listeners)
					byPort[uint16(port)] = i
					t.Listeners = append(t.Listeners, Listener{Port: uint16(port), HostIP: p.HostIP, Protocol: in.Protocol})
				}
				base := Route{Fleet: f.Name, Service: svc.Name, Balance: in.Balance, HealthPath: in.HealthPath, Drain: in.Drain,
					Backends: backends(f.Name, svc, p.Target, replicas, pool)}
				rules := in.Rules
				if len(rules) == 0 {
					rules = []fleets.IngressRule{{}}
				}
				for _, rule := range rules {
					r := base
					r.Host, r.PathPrefix = rule.Host, rule.Path
					t.Listeners[i].Routes = append(t.Listeners[i].Routes, r)
				}
			}
		}
	}
	Sort(&t)
	return t
}

func backends(fleet string, svc fleets.Service, target uint32, replicas []Replica, pool Pool) []Backend {
	var out []Backend
	for _, r := range replicas {
		if r.Fleet != fleet || r.Service != svc.Name || !r.Running {
			continue
		}
		draining := pool.Draining[r.ID] || pool.Draining[r.Name]
		routed := pool.Routed[r.ID] || pool.Routed[r.Name]
		if !draining && (r.Health == "starting" || r.Health == "unhealthy" || (strings.HasSuffix(r.Name, tempSuffix) && !routed)) {
			continue
		}
		ip := address(svc, r)
		if ip == "" {
			continue
		}
		out = append(out, Backend{ID: r.ID, Name: r.Name, Addr: net.JoinHostPort(ip, strconv.FormatUint(uint64(target), 10)), Draining: draining})
	}
	return out
}

// address is the replica's IP on the service's first network, the one
// the ingress joins (Networks).
func address(svc fleets.Service, r Replica) string {
	if len(svc.Spec.Networks) == 0 {
		return ""
	}
	return r.IPs[svc.Spec.Networks[0].Network]
}

// Networks lists the networks the ingress must join to reach the
// desired services: each ingress service's first network, sorted. It is
// pure.
func Networks(desired []fleets.Fleet) []string {
	var out []string
	for _, f := range desired {
		if !f.Targets || f.Engine == fleets.EngineSwarm {
			continue
		}
		for _, svc := range f.Services {
			if svc.Ingress != nil && svc.Targets && len(svc.Spec.Networks) > 0 {
				out = append(out, svc.Spec.Networks[0].Network)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Ports lists the listeners' ports with the host address each is
// published on: what the ingress container publishes.
func Ports(t Table) []Listener {
	out := make([]Listener, 0, len(t.Listeners))
	for _, l := range t.Listeners {
		out = append(out, Listener{Port: l.Port, HostIP: l.HostIP, Protocol: l.Protocol})
	}
	return out
}
