package ingress

import (
	"cmp"
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
	Health         string // "" (no healthcheck) | starting | healthy | unhealthy
	// Temp is set on a new replica that has not taken its slot's name yet
	// (a start-first rollout's, until its gate and hand-over).
	Temp bool
	IPs  map[string]string // network name → the replica's address on it
}

// Pool is what the agent decided about replicas, by container ID:
// Routed ones passed their gate and may take work; Draining ones take no
// new work and keep what they have until they stop.
type Pool struct {
	Routed   map[string]bool
	Draining map[string]bool
}

// Build makes the routing table for the desired fleets of a host from the
// replicas it runs. A service behind the ingress gets one route per listen
// port (services with host or path rules share a port). A replica is a
// backend while it runs and either was routed (it passed its gate) and
// Docker's healthcheck does not say starting or unhealthy, or Docker says
// it is healthy and it is no rollout's new replica still under its
// temporary name (which waits for its gate); a replica without a
// healthcheck needs the route. A draining replica stays in the table, marked,
// until it stops, so that the ingress lets its requests finish. Its address
// is the one on the service's first network, else on another network the
// ingress has joined (joined), so that a change of the first network keeps
// the old replicas reachable until they go. It is pure.
func Build(version uint64, desired []fleets.Fleet, replicas []Replica, pool Pool, joined []string) Table {
	t := Table{Version: version}
	byPort := map[uint16]int{}
	forEachPort(desired, func(f fleets.Fleet, svc fleets.Service, p fleets.Port, port uint16) {
		i, ok := byPort[port]
		if !ok {
			i = len(t.Listeners)
			byPort[port] = i
			t.Listeners = append(t.Listeners, Listener{Port: port, Protocol: svc.Ingress.Protocol})
		}
		for _, r := range t.Listeners[i].Routes {
			if r.Key() == f.Name+"/"+svc.Name {
				return // the same port published on another address
			}
		}
		in := svc.Ingress
		base := Route{Fleet: f.Name, Service: svc.Name, Balance: in.Balance, HealthPath: in.HealthPath, Drain: in.Drain,
			Backends: backends(f.Name, svc, p.Target, replicas, pool, joined)}
		rules := in.Rules
		if len(rules) == 0 {
			rules = []fleets.IngressRule{{}}
		}
		for _, rule := range rules {
			r := base
			r.Host, r.PathPrefix = rule.Host, rule.Path
			t.Listeners[i].Routes = append(t.Listeners[i].Routes, r)
		}
		if in.TLS != nil {
			t.Listeners[i].TLS = &TLS{CertFile: TLSPath(in.TLS.Cert), KeyFile: TLSPath(in.TLS.Key)}
		}
	})
	Sort(&t)
	return t
}

// TLSDir is where the ingress reads the certificates and keys the agent
// writes for it, under its state directory.
const TLSDir = "tls"

// TLSPath is where the ingress reads a certificate or key: named by its
// contents' digest, so that a new certificate is a new file.
func TLSPath(ref fleets.FileRef) string {
	return TLSDir + "/" + strings.TrimPrefix(ref.Digest, "sha256:")
}

// TLSFiles lists the certificates and keys the desired services give the
// ingress, by TLSPath. It is pure.
func TLSFiles(desired []fleets.Fleet) map[string]fleets.FileRef {
	out := map[string]fleets.FileRef{}
	forEachPort(desired, func(_ fleets.Fleet, svc fleets.Service, _ fleets.Port, _ uint16) {
		if tls := svc.Ingress.TLS; tls != nil {
			out[TLSPath(tls.Cert)], out[TLSPath(tls.Key)] = tls.Cert, tls.Key
		}
	})
	return out
}

// Binding is one host address and port the ingress container publishes.
type Binding struct {
	HostIP string
	Port   uint16
}

// Bindings lists what the ingress container publishes for the desired
// services, sorted. It is pure.
func Bindings(desired []fleets.Fleet) []Binding {
	var out []Binding
	forEachPort(desired, func(_ fleets.Fleet, _ fleets.Service, p fleets.Port, port uint16) {
		out = append(out, Binding{HostIP: p.HostIP, Port: port})
	})
	slices.SortFunc(out, func(a, b Binding) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), strings.Compare(a.HostIP, b.HostIP))
	})
	return slices.Compact(out)
}

// forEachPort calls fn for each listen port of each service behind the
// ingress that runs on the host.
func forEachPort(desired []fleets.Fleet, fn func(fleets.Fleet, fleets.Service, fleets.Port, uint16)) {
	for _, f := range desired {
		if !f.Targets || f.Engine == fleets.EngineSwarm {
			continue
		}
		for _, svc := range f.Services {
			if svc.Ingress == nil || !svc.Targets || svc.Replicas == 0 {
				continue
			}
			for _, p := range svc.Ingress.Ports {
				port, err := strconv.ParseUint(p.Published, 10, 16)
				if err != nil || port == 0 {
					continue // validation refused it already
				}
				fn(f, svc, p, uint16(port))
			}
		}
	}
}

func backends(fleet string, svc fleets.Service, target uint32, replicas []Replica, pool Pool, joined []string) []Backend {
	var out []Backend
	for _, r := range replicas {
		if r.Fleet != fleet || r.Service != svc.Name || !r.Running {
			continue
		}
		draining := pool.Draining[r.ID]
		admitted := (pool.Routed[r.ID] && r.Health != "starting" && r.Health != "unhealthy") || (r.Health == "healthy" && !r.Temp)
		if !draining && !admitted {
			continue
		}
		ip := address(svc, r, joined)
		if ip == "" {
			continue
		}
		out = append(out, Backend{ID: r.ID, Name: r.Name, Addr: net.JoinHostPort(ip, strconv.FormatUint(uint64(target), 10)), Draining: draining})
	}
	return out
}

// address is the replica's IP on the service's first network, the one
// the ingress joins (Networks), else on another network the ingress has
// joined.
func address(svc fleets.Service, r Replica, joined []string) string {
	if len(svc.Spec.Networks) > 0 {
		if ip := r.IPs[svc.Spec.Networks[0].Network]; ip != "" {
			return ip
		}
	}
	for _, n := range joined {
		if ip := r.IPs[n]; ip != "" {
			return ip
		}
	}
	return ""
}

// Networks lists the networks the ingress must be on, sorted: each
// ingress service's first network, and the networks of its fleet that its
// running replicas are still on (a changed first network keeps the old
// replicas reachable until they go). It is pure.
func Networks(desired []fleets.Fleet, replicas []Replica) []string {
	var out []string
	served := map[string]bool{}               // fleet/service behind the ingress
	fleetNets := map[string]map[string]bool{} // fleet -> networks of its ingress services
	for _, f := range desired {
		if !f.Targets || f.Engine == fleets.EngineSwarm {
			continue
		}
		for _, svc := range f.Services {
			if svc.Ingress == nil || !svc.Targets || svc.Replicas == 0 {
				continue
			}
			served[f.Name+"/"+svc.Name] = true
			if fleetNets[f.Name] == nil {
				fleetNets[f.Name] = map[string]bool{}
			}
			for _, att := range svc.Spec.Networks {
				fleetNets[f.Name][att.Network] = true
			}
			if len(svc.Spec.Networks) > 0 {
				out = append(out, svc.Spec.Networks[0].Network)
			}
		}
	}
	for _, r := range replicas {
		if !r.Running || !served[r.Fleet+"/"+r.Service] {
			continue
		}
		for n := range r.IPs {
			if fleetNets[r.Fleet][n] || strings.HasPrefix(n, r.Fleet+"_") {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
