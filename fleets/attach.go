package fleets

import (
	"cmp"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// attachments joins the service to each of its networks by Docker name,
// with the service name always among the aliases. compose-go has already
// put a service without networks (and without network_mode) on the
// fleet's default network. Order: priority, highest first, then name, as
// Docker connects the first at create time.
func (c *converter) attachments(s types.ServiceConfig) []NetworkAttachment {
	type keyed struct {
		NetworkAttachment
		priority int
	}
	var list []keyed
	for key, cfg := range s.Networks {
		a := NetworkAttachment{Network: c.networkName(key), Aliases: []string{s.Name}}
		if cfg != nil {
			a.Aliases = append(a.Aliases, cfg.Aliases...)
			a.IPv4Address, a.IPv6Address, a.Priority = cfg.Ipv4Address, cfg.Ipv6Address, cfg.Priority
		}
		a.Aliases = append(a.Aliases, c.linkAliases(s.Name, key)...)
		a.Aliases = sortedSet(a.Aliases)
		list = append(list, keyed{a, a.Priority})
	}
	slices.SortFunc(list, func(a, b keyed) int {
		return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.Network, b.Network))
	})
	out := make([]NetworkAttachment, len(list))
	for i, k := range list {
		out[i] = k.NetworkAttachment
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// linkAliases are the names other services' links give the service on the
// network key, when the linking service is on that network too. On a
// user-defined network a Docker link is only a name for the linked
// container; fleetd gives that name to the linked service as an alias, so
// it survives the linked service's rollouts (Docker resolves a link once,
// when the linking container starts). Other services on the network see
// the alias too.
func (c *converter) linkAliases(service, key string) []string {
	var out []string
	for _, other := range c.project.Services {
		if _, shares := other.Networks[key]; !shares {
			continue
		}
		for _, link := range other.Links {
			target, alias, ok := strings.Cut(link, ":")
			if target == service && ok && alias != service {
				out = append(out, alias)
			}
		}
	}
	return out
}

func (c *converter) networkName(key string) string {
	if n, ok := c.project.Networks[key]; ok && n.Name != "" {
		return n.Name
	}
	return c.project.Name + "_" + key
}

// networkMode accepts Docker's own modes; service:<name> is reported as
// unsupported before conversion.
func (c *converter) networkMode(s types.ServiceConfig) string {
	m := s.NetworkMode
	switch {
	case m == "", m == "host", m == "none", m == "bridge", strings.HasPrefix(m, "container:"):
		return m
	case strings.HasPrefix(m, "service:"):
		return m
	}
	c.r.servicef(s.Name, "network_mode", "invalid network_mode %q: use host, none, bridge or container:<name>", m)
	return m
}

// mounts converts volumes: named volumes to their Docker name, binds inside
// the fleet to "repo:<path>", binds elsewhere on the host as they are.
func (c *converter) mounts(s types.ServiceConfig) []Mount {
	var out []Mount
	for i, v := range s.Volumes {
		m := Mount{Type: v.Type, Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume:
			m.Source = c.volumeName(v.Source)
		case types.VolumeTypeBind:
			m.Source = c.bindSource(s.Name, i, v.Source)
		case types.VolumeTypeTmpfs:
		default:
			c.r.servicef(s.Name, "volumes."+itoa(int64(i)), "volume type %q is not supported: use volume, bind or tmpfs", v.Type)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mount) int { return cmp.Compare(a.Target, b.Target) })
	return out
}

func (c *converter) volumeName(key string) string {
	if key == "" {
		return "" // anonymous volume
	}
	if v, ok := c.project.Volumes[key]; ok && v.Name != "" {
		return v.Name
	}
	return c.project.Name + "_" + key
}

// RepoBindPrefix starts a bind source that is a path in the repository,
// relative to it (Mount.Source).
const RepoBindPrefix = "repo:"

// bindSource maps a bind's host path. A path in the repository checkout
// becomes "repo:<path relative to the repository path>" (with `..` when it
// lies outside the fleets' path) so that the spec does not depend on where
// the revision is checked out; any other path is a host path and kept (a
// relative path that leaves the checkout too, as docker compose takes it:
// compose-go has made it absolute by now).
func (c *converter) bindSource(service string, i int, src string) string {
	field := "volumes." + itoa(int64(i))
	if !filepath.IsAbs(src) || within(c.ft.bound, src) {
		abs, err := c.ft.resolve(src)
		if err != nil {
			c.r.servicef(service, field, "bind source %s", err)
			return src
		}
		rel, _ := filepath.Rel(c.absRoot, abs)
		return RepoBindPrefix + filepath.ToSlash(rel)
	}
	return src
}
