package review

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// placedService is a service a side runs on the host.
type placedService struct {
	fleet fleets.Fleet
	svc   fleets.Service
}

func (p placedService) owner() string { return p.fleet.Name + "/" + p.svc.Name }

// placed lists the services a side runs on the host, by fleet and service.
// Fleets invalid at head keep running their base services; pass keep to
// include them.
func placed(side hostSide, keep func(name string) (fleets.Fleet, bool)) []placedService {
	var names []string
	for name := range side.byName {
		names = append(names, name)
	}
	if keep != nil {
		for name := range side.invalid {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []placedService
	for _, name := range slices.Compact(names) {
		f, on := side.on(name)
		if !on && keep != nil && side.invalid[name] {
			f, on = keep(name)
		}
		if !on {
			continue
		}
		for _, s := range f.Services {
			if s.Targets {
				out = append(out, placedService{fleet: f, svc: s})
			}
		}
	}
	return out
}

func hostWarnings(base, head hostSide, h HostReview) []Warning {
	basePlaced := placed(base, nil)
	headPlaced := placed(head, base.on)
	var ws []Warning
	if len(h.Blocked) == 0 {
		ws = append(ws, pruneGuard(basePlaced, head, h)...)
	}
	ws = append(ws, policyWarnings(head, h)...)
	ws = append(ws, orphanedVolumes(basePlaced, headPlaced)...)
	ws = append(ws, portTakeovers(basePlaced, headPlaced)...)
	ws = append(ws, downtime(head, h)...)
	slices.SortFunc(ws, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Fleet, b.Fleet), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(ws)
}

// pruneGuard predicts guardMassPrune, assuming the host runs base: the
// managed containers are base's replicas, the pruned ones those of the
// fleets and services the head removes (scaling down is not prune).
func pruneGuard(basePlaced []placedService, head hostSide, h HostReview) []Warning {
	managed := 0
	for _, p := range basePlaced {
		managed += p.svc.Replicas
	}
	removing := 0
	for _, f := range h.Fleets {
		hf := head.byName[f.Name]
		prunes := f.Change == Removed || (f.Change == Changed && hf.Policy.Prune && !hf.Policy.Suspend)
		if !prunes {
			continue
		}
		for _, s := range f.Services {
			if s.Change == Removed {
				removing += s.Replicas.From
			}
		}
	}
	targeted := 0
	for name := range head.byName {
		if _, on := head.on(name); on {
			targeted++
		}
	}
	var reason string
	switch ratio := (reconcile.Policy{}).PruneRatio(); {
	case removing == 0:
		return nil
	case targeted == 0:
		reason = fmt.Sprintf("the revision removes every fleet from this host (%d containers)", removing)
	case float64(removing) > ratio*float64(managed):
		reason = fmt.Sprintf("the revision removes %d of the host's %d managed containers (limit %.0f%%)", removing, managed, 100*ratio)
	default:
		return nil
	}
	return []Warning{{Kind: WarnPruneGuard, Message: "the prune guard will refuse the removals: " + reason +
		"; the containers keep running until fleetd apply --allow-mass-prune (or the agent's allow_mass_prune)"}}
}

func policyWarnings(head hostSide, h HostReview) []Warning {
	var ws []Warning
	for _, f := range h.Fleets {
		hf, on := head.on(f.Name)
		if !on {
			continue
		}
		if hf.Policy.Suspend {
			ws = append(ws, Warning{Kind: WarnSuspended, Fleet: f.Name,
				Message: "suspended at head (x-fleetd.suspend): drift is reported, none of these changes is applied"})
		}
		for _, s := range f.Services {
			if s.Change == Removed && !hf.Policy.Prune {
				ws = append(ws, Warning{Kind: WarnNotPruned, Fleet: f.Name, Service: s.Name,
					Message: fmt.Sprintf("prune is off (x-fleetd.prune: false): its %d containers keep running", s.Replicas.From)})
			}
		}
	}
	return ws
}

// orphanedVolumes names the named volumes base mounts on this host that no
// service mounts at head. fleetd never removes a volume: it stays, with its
// data, whatever happens to the fleet.
func orphanedVolumes(basePlaced, headPlaced []placedService) []Warning {
	used := map[string]bool{}
	for _, p := range headPlaced {
		for _, m := range p.svc.Spec.Mounts {
			if m.Type == "volume" {
				used[m.Source] = true
			}
		}
	}
	var ws []Warning
	for _, p := range basePlaced {
		for _, m := range p.svc.Spec.Mounts {
			if m.Type != "volume" || m.Source == "" || used[m.Source] || external(p.fleet, m.Source) {
				continue
			}
			used[m.Source] = true // once per volume
			ws = append(ws, Warning{Kind: WarnOrphanedVolume, Fleet: p.fleet.Name,
				Message: fmt.Sprintf("volume %s (mounted by %s at base) is used by no service at head; fleetd never removes volumes, so it stays with its data", m.Source, p.owner())})
		}
	}
	return ws
}

func external(f fleets.Fleet, volumeName string) bool {
	for _, v := range f.Volumes {
		if v.Name == volumeName {
			return v.External
		}
	}
	return false
}

// portTakeovers names the fixed host ports that another service publishes
// at head than at base. Removals run after deploys, so the new owner may
// fail to start until the old one's containers are gone.
func portTakeovers(basePlaced, headPlaced []placedService) []Warning {
	var ws []Warning
	for _, hp := range headPlaced {
		for _, port := range hp.svc.Spec.Ports {
			for _, bp := range basePlaced {
				if bp.owner() == hp.owner() {
					continue
				}
				for _, old := range bp.svc.Spec.Ports {
					if portsOverlap(port, old) {
						ws = append(ws, Warning{Kind: WarnPortTakeover, Fleet: hp.fleet.Name, Service: hp.svc.Name,
							Message: fmt.Sprintf("host port %s was published by %s at base; it may fail to start until %s's containers are removed", portString(port), bp.owner(), bp.owner())})
					}
				}
			}
		}
	}
	return ws
}

func portString(p fleets.Port) string {
	s := p.Published + "/" + p.Protocol
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

func portsOverlap(a, b fleets.Port) bool {
	alo, ahi, aok := fixedPort(a.Published)
	blo, bhi, bok := fixedPort(b.Published)
	return aok && bok && a.Protocol == b.Protocol && alo <= bhi && blo <= ahi && ipsOverlap(a.HostIP, b.HostIP)
}

func fixedPort(published string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(published, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo == 0 {
		return 0, 0, false
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return lo, hi, lo <= hi
}

func ipsOverlap(a, b string) bool {
	any := func(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }
	return a == b || any(a) || any(b)
}

// downtime names the recreated services whose stop-first rollout stops
// every replaced replica at once.
func downtime(head hostSide, h HostReview) []Warning {
	var ws []Warning
	for _, f := range h.Fleets {
		if head.byName[f.Name].Policy.Suspend {
			continue // applies nothing
		}
		for _, s := range f.Services {
			rc := s.Recreate
			if rc == nil || rc.Rollout.Order != fleets.OrderStopFirst || rc.Rollout.Batches != 1 {
				continue
			}
			msg := fmt.Sprintf("stop-first with parallelism %d: all %d replicas are stopped before their replacements start", rc.Rollout.Parallelism, rc.Containers)
			if rc.Containers == 1 {
				msg = "stop-first with 1 replica: the service is down until its replacement is up"
			}
			if rc.Rollout.Forced != "" {
				msg += " (stop-first forced: " + rc.Rollout.Forced + ")"
			} else {
				msg += " (update_config.order: start-first avoids it)"
			}
			ws = append(ws, Warning{Kind: WarnDowntime, Fleet: f.Name, Service: s.Name, Message: msg})
		}
	}
	return ws
}
