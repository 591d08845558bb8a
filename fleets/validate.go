package fleets

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/fleetd/fleetd/hint"
)

// serviceName is what a service name must look like to be part of a
// container name (<fleet>-<service>-<slot>) and a DNS alias.
var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// validateProject reports every problem of a loaded project that
// compose-go's own consistency check would report one at a time, and those
// particular to fleetd.
func validateProject(p *types.Project, engine string, r *report) {
	if p.Name == "" || loader.NormalizeProjectName(p.Name) != p.Name {
		r.fleetf("name", "invalid fleet name %q: use lowercase letters, digits, - and _, starting with a letter or digit", p.Name)
	}
	for _, name := range p.ServiceNames() {
		validateService(p, p.Services[name], engine, r)
	}
	checkCycles(p, r)
}

func validateService(p *types.Project, s types.ServiceConfig, engine string, r *report) {
	if !serviceName.MatchString(s.Name) {
		r.servicef(s.Name, "", "invalid service name: use letters, digits, ., - and _, starting with a letter or digit")
	}
	if s.Image == "" && s.Build == nil {
		r.servicef(s.Name, "image", "service has neither an image nor a build context")
	}
	checkReferences(p, s, r)
	checkDependsOn(p, s, r)
	checkLinks(p, s, r)
	checkOwnLabels(s, r)
	checkReplicas(s, engine, r)
	checkRestart(s, r)
	if engine == EngineSwarm {
		checkSwarmService(s, r)
	}
	if s.NetworkMode != "" && len(s.Networks) > 0 {
		r.servicef(s.Name, "network_mode", "network_mode and networks are mutually exclusive")
	}
	if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 && !slices.Contains([]string{"CMD", "CMD-SHELL", "NONE"}, hc.Test[0]) {
		r.servicef(s.Name, "healthcheck.test", `must start with "CMD", "CMD-SHELL" or "NONE"`)
	}
}

// checkReferences reports networks, volumes, secrets and configs a service
// uses but the fleet does not declare.
func checkReferences(p *types.Project, s types.ServiceConfig, r *report) {
	for _, n := range sortedKeys(s.Networks) {
		if _, ok := p.Networks[n]; !ok {
			r.servicef(s.Name, "networks."+n, "undefined network %q: declare it under the top-level networks", n)
		}
	}
	for i, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		if _, ok := p.Volumes[v.Source]; !ok {
			r.servicef(s.Name, fmt.Sprintf("volumes.%d", i), "undefined volume %q: declare it under the top-level volumes", v.Source)
		}
	}
	for i, ref := range s.Secrets {
		if _, ok := p.Secrets[ref.Source]; !ok {
			r.servicef(s.Name, fmt.Sprintf("secrets.%d", i), "undefined secret %q: declare it under the top-level secrets", ref.Source)
		}
	}
	for i, ref := range s.Configs {
		if _, ok := p.Configs[ref.Source]; !ok {
			r.servicef(s.Name, fmt.Sprintf("configs.%d", i), "undefined config %q: declare it under the top-level configs", ref.Source)
		}
	}
}

func checkDependsOn(p *types.Project, s types.ServiceConfig, r *report) {
	for _, dep := range sortedKeys(s.DependsOn) {
		if _, ok := p.Services[dep]; ok {
			continue
		}
		if !s.DependsOn[dep].Required {
			continue
		}
		if d, ok := p.DisabledServices[dep]; ok {
			r.servicef(s.Name, "depends_on."+dep, "depends on service %q, which only runs with profiles %v: fleetd activates no profile", dep, d.Profiles)
			continue
		}
		if field := impliedBy(s, dep); field != "" {
			r.servicef(s.Name, field, "%q is not a service of this fleet", dep)
			continue
		}
		r.servicef(s.Name, "depends_on."+dep, "depends on undefined service %q", dep)
	}
}

// checkOwnLabels refuses io.fleetd. labels on a service or its image: fleetd
// reads them as its own records on the containers it creates.
func checkOwnLabels(s types.ServiceConfig, r *report) {
	for _, key := range sortedKeys(s.Labels) {
		if strings.HasPrefix(key, LabelPrefix) {
			r.servicef(s.Name, "labels."+key, "%s labels are fleetd's own records: use another prefix", LabelPrefix)
		}
	}
	if s.Build != nil {
		for _, key := range sortedKeys(s.Build.Labels) {
			if strings.HasPrefix(key, LabelPrefix) {
				r.servicef(s.Name, "build.labels."+key, "%s labels are fleetd's own records: use another prefix", LabelPrefix)
			}
		}
	}
}

// checkLinks refuses a link alias that names another service: fleetd
// makes the alias a network alias of the linked service, which every
// service on the network resolves, so it would answer for both.
func checkLinks(p *types.Project, s types.ServiceConfig, r *report) {
	for i, l := range s.Links {
		target, alias, ok := strings.Cut(l, ":")
		if _, other := p.Services[alias]; ok && alias != target && other {
			r.servicef(s.Name, fmt.Sprintf("links.%d", i), "alias %q is the name of service %s: as a network alias of %s it would answer for both", alias, alias, target)
		}
	}
}

// impliedBy names the attribute that made compose-go add dep to a
// service's depends_on (a service: namespace, volumes_from, links), or "".
func impliedBy(s types.ServiceConfig, dep string) string {
	for _, f := range []struct{ field, ref string }{
		{"network_mode", s.NetworkMode}, {"pid", s.Pid}, {"ipc", s.Ipc}, {"uts", s.Uts}, {"cgroup", s.Cgroup},
	} {
		if name, ok := PeerName(f.ref); ok && name == dep {
			return f.field
		}
	}
	for _, v := range s.VolumesFrom {
		if name, _, _ := strings.Cut(v, ":"); name == dep {
			return "volumes_from"
		}
	}
	for _, l := range s.Links {
		if name, _, _ := strings.Cut(l, ":"); name == dep {
			return "links"
		}
	}
	return ""
}

// checkCycles reports each depends_on cycle once, at its first service in
// name order.
func checkCycles(p *types.Project, r *report) {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		for _, dep := range sortedKeys(p.Services[name].DependsOn) {
			if _, ok := p.Services[dep]; !ok {
				continue
			}
			switch state[dep] {
			case active:
				cycle := append(slices.Clone(stack[slices.Index(stack, dep):]), dep)
				field := "depends_on"
				if f := impliedBy(p.Services[name], dep); f != "" {
					field = f
				}
				r.servicef(dep, field, "dependency cycle: %s", strings.Join(cycle, " -> "))
			case unvisited:
				visit(dep)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range p.ServiceNames() {
		if state[name] == unvisited {
			visit(name)
		}
	}
}

func checkReplicas(s types.ServiceConfig, engine string, r *report) {
	n := replicas(s)
	if s.Scale != nil && s.Deploy != nil && s.Deploy.Replicas != nil && *s.Scale != *s.Deploy.Replicas {
		r.servicef(s.Name, "scale", "scale (%d) and deploy.replicas (%d) disagree", *s.Scale, *s.Deploy.Replicas)
	}
	if n < 0 {
		r.servicef(s.Name, "deploy.replicas", "must be 0 or more, not %d", n)
	}
	if s.ContainerName != "" && n > 1 {
		r.servicef(s.Name, "container_name", "container_name %q with %d replicas: a container name is unique per host; drop container_name or run one replica", s.ContainerName, n)
	}
	if n <= 1 || engine == EngineSwarm || ingressOn(extension(s.Extensions).Ingress) {
		return // Swarm's routing mesh, or fleetd's ingress, shares a published port
	}
	for i, port := range s.Ports {
		if port.Published != "" && !strings.Contains(port.Published, "-") {
			r.servicef(s.Name, fmt.Sprintf("ports.%d", i), "host port %s with %d replicas: replicas on one host cannot share it; publish a range or run one replica", port.Published, n)
		}
	}
}

var restartPolicy = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)

func checkRestart(s types.ServiceConfig, r *report) {
	if s.Restart != "" && !restartPolicy.MatchString(s.Restart) {
		r.servicef(s.Name, "restart", "invalid restart policy %q: use no, always, unless-stopped or on-failure[:N]", s.Restart)
	}
}

// checkExtensionKeys reports x-fleetd keys that fleetd does not know or that
// belong to the other level, reading the files as written.
func checkExtensionKeys(r *report) {
	for _, f := range r.files {
		if ext, _ := child(f.root, extensionKey); ext != nil {
			checkKeys(ext, fleetExtensionKeys, func(key string) {
				r.fleetf(extensionKey+"."+key, "unknown key%s: the fleet-level x-fleetd takes %s", hint.DidYouMean(key, fleetExtensionKeys), strings.Join(fleetExtensionKeys, ", "))
			})
			if notify, _ := child(ext, "notify"); notify != nil {
				checkKeys(notify, notifyExtensionKeys, func(key string) {
					r.fleetf(extensionKey+".notify."+key, "unknown key%s: notify takes %s", hint.DidYouMean(key, notifyExtensionKeys), strings.Join(notifyExtensionKeys, ", "))
				})
			}
		}
		services, _ := child(f.root, "services")
		forEachKey(services, func(name string, svc *yaml.Node) {
			if ext, _ := child(svc, extensionKey); ext != nil {
				checkKeys(ext, serviceExtensionKeys, func(key string) {
					r.servicef(name, extensionKey+"."+key, "unknown key%s: a service's x-fleetd takes %s", hint.DidYouMean(key, serviceExtensionKeys), strings.Join(serviceExtensionKeys, ", "))
				})
			}
		})
	}
}

func checkKeys(n *yaml.Node, known []string, unknown func(string)) {
	forEachKey(n, func(key string, _ *yaml.Node) {
		if !slices.Contains(known, key) {
			unknown(key)
		}
	})
}

func forEachKey(n *yaml.Node, fn func(string, *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		fn(n.Content[i].Value, n.Content[i+1])
	}
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
