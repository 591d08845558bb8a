package fleets

import (
	"cmp"
	"path"
	"slices"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// Defaults applied by the loader, so that spelling a default out in a
// compose file does not change the spec or its hash.
const (
	defaultRestart         = "no"
	defaultProtocol        = "tcp"
	defaultStopGracePeriod = 10 * time.Second
	defaultPullPolicy      = "missing"
	defaultReadiness       = 5 * time.Second
	defaultHealthTimeout   = 60 * time.Second
	defaultMonitor         = 5 * time.Second
)

// converter turns one loaded compose project into a Fleet.
type converter struct {
	project *types.Project
	ft      fleetTree
	absRoot string
	host    Host
	fleet   *Fleet
	r       *report
	// secretData are the contents of the secrets read so far.
	secretData []SecretBytes
	// zeroMonitor names the rollout configs that set monitor to zero:
	// "<service>.update_config", "<service>.rollback_config".
	zeroMonitor map[string]bool
}

// convertProject converts a validated project. Problems found on the way
// (an unreadable secret, a constraint fleetd cannot parse) go to r.
func convertProject(p *types.Project, fd fleetDir, ft fleetTree, absRoot string, host Host, zeroMonitor map[string]bool, r *report) Fleet {
	ext := extension(p.Extensions)
	fleet := Fleet{
		Name:      p.Name,
		Dir:       fd.rel,
		Engine:    cmpOr(ext.Engine, EngineDocker),
		Placement: placement(ext),
		Policy:    policy(ext),
		Networks:  convertNetworks(p),
		Volumes:   convertVolumes(p),
	}
	for _, name := range fd.files {
		fleet.Files = append(fleet.Files, path.Join(fd.rel, name))
	}
	fleet.Targets = fleet.targets(host)
	c := &converter{project: p, ft: ft, absRoot: absRoot, host: host, fleet: &fleet, r: r, zeroMonitor: zeroMonitor}
	for _, name := range p.ServiceNames() {
		fleet.Services = append(fleet.Services, c.service(p.Services[name]))
	}
	slices.SortFunc(fleet.Services, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	known := c.knownSecrets(fleet.Services)
	for i := range fleet.Services {
		fleet.Services[i].Secrets = known
	}
	return fleet
}

func placement(ext xFleetd) Placement {
	p := Placement{Hosts: sortedSet(ext.Hosts)}
	if len(ext.Labels) > 0 {
		p.Labels = ext.Labels
	}
	return p
}

func policy(ext xFleetd) Policy {
	p := Policy{
		SelfHeal: boolOr(ext.SelfHeal, true),
		Prune:    boolOr(ext.Prune, true),
		Suspend:  boolOr(ext.Suspend, false),
	}
	if ext.Notify != nil {
		p.Notify.SlackChannel = ext.Notify.SlackChannel
	}
	return p
}

func convertNetworks(p *types.Project) []Network {
	var out []Network
	for _, key := range sortedKeys(p.Networks) {
		n := p.Networks[key]
		net := Network{
			Key:        key,
			Name:       n.Name,
			External:   bool(n.External),
			Driver:     n.Driver,
			DriverOpts: mapOrNil(n.DriverOpts),
			Internal:   n.Internal,
			Attachable: n.Attachable,
			EnableIPv6: n.EnableIPv6 != nil && *n.EnableIPv6,
			Labels:     mapOrNil(n.Labels),
		}
		for _, pool := range n.Ipam.Config {
			if pool != nil && pool.Subnet != "" {
				net.Subnets = append(net.Subnets, pool.Subnet)
			}
		}
		slices.Sort(net.Subnets)
		out = append(out, net)
	}
	return out
}

func convertVolumes(p *types.Project) []Volume {
	var out []Volume
	for _, key := range sortedKeys(p.Volumes) {
		v := p.Volumes[key]
		out = append(out, Volume{
			Key:        key,
			Name:       v.Name,
			External:   bool(v.External),
			Driver:     v.Driver,
			DriverOpts: mapOrNil(v.DriverOpts),
			Labels:     mapOrNil(v.Labels),
		})
	}
	return out
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// sortedSet returns the sorted, deduplicated elements of s, or nil.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func mapOrNil[M ~map[string]string](m M) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
