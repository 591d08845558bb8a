package review

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// AccessChange is a grant of host access (fleets.Grant: privileged or a
// security_opt that lifts confinement, cap_add, a host namespace or
// another container's, a host path — volumes_from another container and
// a local volume's mounts included —, a device or device cgroup rule)
// that the head adds or changes for a service, on the hosts listed. It is
// listed whether or not a host's policy allows it: a reviewer must see
// every one.
type AccessChange struct {
	Fleet   string   `json:"fleet"`
	Service string   `json:"service,omitempty"` // "" for a fleet's volume
	Kind    string   `json:"kind"`              // privileged | capability | namespace | bind | device
	Field   string   `json:"field"`             // as fleets.Grant names it: privileged, security_opt.seccomp=unconfined, cap_add.NET_ADMIN, mounts./data, …
	From    string   `json:"from"`              // "" when added
	To      string   `json:"to"`
	Hosts   []string `json:"hosts"` // sorted
}

// accessChanges lists the grants the head adds or changes on one host:
// those of the services that run there at head (fleet targeted and valid,
// service placed) and did not, with that value, at base.
func accessChanges(hr HostRevisions) []AccessChange {
	base := sideGrants(hr.Base, hr.Head.Fleets)
	head := sideGrants(hr.Head, hr.Base.Fleets)
	var out []AccessChange
	for key, g := range head {
		was, ok := base[key]
		if ok && was.Value == g.Value {
			continue
		}
		out = append(out, AccessChange{Fleet: key.fleet, Service: g.Service, Kind: g.Kind, Field: g.Field, From: was.Value, To: g.Value, Hosts: []string{hr.Head.Host.Name}})
	}
	return out
}

type grantKey struct{ fleet, service, field string }

// sideGrants are the grants of what a side runs on the host.
func sideGrants(l HostLoad, other []fleets.Fleet) map[grantKey]fleets.Grant {
	side := indexSide(l, other)
	placed := map[[2]string]bool{}
	out := map[grantKey]fleets.Grant{}
	for name := range side.byName {
		f, ok := side.on(name)
		if !ok {
			continue
		}
		for _, s := range f.Services {
			placed[[2]string{f.Name, s.Name}] = s.Targets
		}
		for _, g := range fleets.Grants(f) {
			if g.Service == "" || placed[[2]string{f.Name, g.Service}] {
				out[grantKey{f.Name, g.Service, g.Field}] = g
			}
		}
	}
	return out
}

// mergeAccess adds one host's changes to the review's, listing a change
// the same on several hosts once with all of them, sorted.
func mergeAccess(all, host []AccessChange) []AccessChange {
	for _, c := range host {
		i := slices.IndexFunc(all, func(a AccessChange) bool {
			return a.Fleet == c.Fleet && a.Service == c.Service && a.Field == c.Field && a.From == c.From && a.To == c.To
		})
		if i < 0 {
			all = append(all, c)
			continue
		}
		if !slices.Contains(all[i].Hosts, c.Hosts[0]) {
			all[i].Hosts = append(all[i].Hosts, c.Hosts[0])
			slices.Sort(all[i].Hosts)
		}
	}
	slices.SortFunc(all, func(a, b AccessChange) int {
		return cmp.Or(cmp.Compare(a.Fleet, b.Fleet), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Field, b.Field),
			cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return all
}

// accessWhere names a change's fleet and service: fleet/service, or the
// fleet alone for a volume.
func accessWhere(c AccessChange) string {
	if c.Service == "" {
		return c.Fleet
	}
	return c.Fleet + "/" + c.Service
}

// accessIntro heads the host access section of both renderings.
func accessIntro(n int) string {
	return fmt.Sprintf("%d %s added or changed (privileged, capabilities, host namespaces, host paths, devices), whether the hosts' policies allow them or not",
		n, reconcile.Plural(n, "grant", "grants"))
}

// accessValue is a grant's new value, and its old one when it changes.
func accessValue(c AccessChange, show func(string) string) string {
	if c.From == "" {
		return show(c.To)
	}
	return show(c.From) + " → " + show(c.To)
}

func writeAccessText(sb *strings.Builder, changes []AccessChange) {
	if len(changes) == 0 {
		return
	}
	fmt.Fprintf(sb, "\nhost access: %s\n", accessIntro(len(changes)))
	for _, c := range changes {
		mark := "+"
		if c.From != "" {
			mark = "~"
		}
		fmt.Fprintf(sb, "  %s %s %s: %s on %s\n", mark, accessWhere(c), c.Field, accessValue(c, plain), strings.Join(c.Hosts, ", "))
	}
}

func writeAccessMarkdown(sb *strings.Builder, changes []AccessChange) {
	if len(changes) == 0 {
		return
	}
	fmt.Fprintf(sb, "#### 🔐 Host access\n\n%s.\n\n", text(accessIntro(len(changes))))
	for _, c := range changes {
		hosts := make([]string, len(c.Hosts))
		for i, h := range c.Hosts {
			hosts[i] = text(h)
		}
		fmt.Fprintf(sb, "- %s %s %s: %s on %s\n", changeEmoji(accessChange(c)), code(accessWhere(c)), code(c.Field), accessValue(c, code), strings.Join(hosts, ", "))
	}
	sb.WriteString("\n")
}

func accessChange(c AccessChange) Change {
	if c.From == "" {
		return Added
	}
	return Changed
}
