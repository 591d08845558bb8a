package fleets

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// checkAcross reports what no fleet can see alone: two fleets with one
// name, and two services on this host claiming one container name or one
// host port. A clash between two fleets makes both invalid: neither is
// more right than the other, and the caller keeps running what each ran
// before.
func checkAcross(loaded []*loadedFleet) {
	checkFleetNames(loaded)
	loaded = slices.DeleteFunc(slices.Clone(loaded), func(lf *loadedFleet) bool { return lf.r.failed() })
	checkContainerNames(loaded)
	checkHostPorts(loaded)
}

func checkFleetNames(loaded []*loadedFleet) {
	byName := map[string][]*loadedFleet{}
	for _, lf := range loaded {
		byName[lf.fleet.Name] = append(byName[lf.fleet.Name], lf)
	}
	for _, lfs := range byName {
		for _, lf := range lfs {
			for _, other := range lfs {
				if other != lf {
					lf.r.fleetf("name", "fleet name %q also used by directory %s", lf.fleet.Name, other.fleet.Dir)
				}
			}
		}
	}
}

// claim is one service's use of something unique on the host.
type claim struct {
	lf      *loadedFleet
	service string
	field   string
}

func (c claim) owner() string {
	return fmt.Sprintf("fleet %s service %s", c.lf.fleet.Name, c.service)
}

// clash reports a against b; within one fleet only a is reported, as the
// loop meets the pair the other way round too.
func clash(a, b claim, what string) {
	a.lf.r.servicef(a.service, a.field, "%s also claimed by %s", what, b.owner())
}

// runsHere lists the services that run on the host: their fleet and they
// target it, with at least one replica.
func runsHere(loaded []*loadedFleet, fn func(*loadedFleet, *Service)) {
	for _, lf := range loaded {
		if !lf.fleet.Targets {
			continue
		}
		for i := range lf.fleet.Services {
			if s := &lf.fleet.Services[i]; s.Targets && s.Replicas > 0 {
				fn(lf, s)
			}
		}
	}
}

func checkContainerNames(loaded []*loadedFleet) {
	byName := map[string][]claim{}
	runsHere(loaded, func(lf *loadedFleet, s *Service) {
		for _, name := range containerNames(lf.fleet.Name, s) {
			byName[name] = append(byName[name], claim{lf, s.Name, "container_name"})
		}
	})
	for name, claims := range byName {
		for i, a := range claims {
			for j, b := range claims {
				if i != j {
					clash(a, b, fmt.Sprintf("container name %q", name))
				}
			}
		}
	}
}

// containerNames are the names the service's replicas get on the host.
func containerNames(fleet string, s *Service) []string {
	if s.Spec.ContainerName != "" {
		return []string{s.Spec.ContainerName}
	}
	names := make([]string, s.Replicas)
	for i := range names {
		names[i] = fleet + "-" + s.Name + "-" + strconv.Itoa(i+1)
	}
	return names
}

// published is one fixed host port or range a service binds.
type published struct {
	claim
	proto  string
	hostIP string
	lo, hi int
	// ingress is set when fleetd's ingress binds the port for the service.
	ingress *Ingress
}

func (p published) String() string {
	port := strconv.Itoa(p.lo)
	if p.hi != p.lo {
		port += "-" + strconv.Itoa(p.hi)
	}
	if ip, err := netip.ParseAddr(p.hostIP); err == nil && ip.Is6() {
		port = "[" + p.hostIP + "]:" + port
	} else if p.hostIP != "" {
		port = p.hostIP + ":" + port
	}
	return "host port " + port + "/" + p.proto
}

// checkHostPorts finds overlapping published ranges of one protocol on
// overlapping host addresses, by sorting on the range start and comparing
// each range with those that start before it ends.
func checkHostPorts(loaded []*loadedFleet) {
	var all []published
	runsHere(loaded, func(lf *loadedFleet, s *Service) {
		for _, p := range s.Spec.Ports {
			if lo, hi, ok := portRange(p.Published); ok {
				all = append(all, published{claim{lf, s.Name, "ports"}, p.Protocol, p.HostIP, lo, hi, nil})
			}
		}
		if s.Ingress != nil {
			for _, p := range s.Ingress.Ports {
				if lo, hi, ok := portRange(p.Published); ok {
					all = append(all, published{claim{lf, s.Name, "ports"}, p.Protocol, p.HostIP, lo, hi, s.Ingress})
				}
			}
		}
	})
	slices.SortFunc(all, func(a, b published) int {
		return cmp.Or(cmp.Compare(a.proto, b.proto), cmp.Compare(a.lo, b.lo))
	})
	for i, a := range all {
		for _, b := range all[i+1:] {
			if b.proto != a.proto || b.lo > a.hi {
				break
			}
			if sharesListener(a, b) || (!addressesOverlap(a.hostIP, b.hostIP) && (a.ingress == nil || b.ingress == nil || a.claim == b.claim)) {
				continue // the ingress listens on a port once, whatever address publishes it
			}
			clash(a.claim, b.claim, a.String())
			clash(b.claim, a.claim, b.String())
		}
	}
}

// sharesListener reports whether two services may share one of the
// ingress's HTTP listeners: both go through the ingress on the same port,
// each has host or path rules, none the same, and they serve the same
// certificate (or none).
func sharesListener(a, b published) bool {
	if a.ingress == nil || b.ingress == nil || a.lo != b.lo ||
		a.ingress.Protocol != IngressHTTP || b.ingress.Protocol != IngressHTTP ||
		len(a.ingress.Rules) == 0 || len(b.ingress.Rules) == 0 || tlsDigest(a.ingress) != tlsDigest(b.ingress) {
		return false
	}
	for _, r := range a.ingress.Rules {
		if slices.Contains(b.ingress.Rules, r) {
			return false
		}
	}
	return true
}

// tlsDigest says which certificate a service's listener serves ("" for
// none): services share a listener only with the same one.
func tlsDigest(in *Ingress) string {
	if in.TLS == nil {
		return ""
	}
	return in.TLS.Cert.Digest + in.TLS.Key.Digest
}

// addressesOverlap reports whether two host_ip values can bind the same
// socket: equal, either empty (every address), or one the wildcard of the
// other's family (0.0.0.0 for IPv4, :: for IPv6; Docker binds the two
// families separately, so "0.0.0.0:80" and "[::]:80" coexist).
func addressesOverlap(a, b string) bool {
	if a == b || a == "" || b == "" {
		return true
	}
	ipa, erra := netip.ParseAddr(a)
	ipb, errb := netip.ParseAddr(b)
	if erra != nil || errb != nil || ipa.Is4() != ipb.Is4() {
		return false
	}
	return ipa.IsUnspecified() || ipb.IsUnspecified()
}
