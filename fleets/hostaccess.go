package fleets

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// This file decides what a fleet asks of the host itself — privileges,
// capabilities, host namespaces, host paths, devices — and which of those
// grants a host's policy denies. Both are pure: Grants reads the model,
// HostPolicy.Check one grant. Load reports a denied grant as a problem of
// the fleet (see Enforce), so the fleet is invalid on that host.

// Grant kinds.
const (
	GrantPrivileged = "privileged" // privileged: true (the service, or a hook's exec)
	GrantCapability = "capability" // cap_add
	GrantNamespace  = "namespace"  // network_mode, pid, ipc, uts, userns_mode, cgroup: host
	GrantBind       = "bind"       // a bind of a host path (not one in the repository)
	GrantDevice     = "device"     // devices
)

// Grant is one thing a fleet asks of the host beyond an ordinary
// container's isolation.
type Grant struct {
	Service string `json:"service,omitempty"` // "" for a fleet's volume
	Kind    string `json:"kind"`
	// Field names the grant in the model, unique within its service:
	// privileged, post_start.0.privileged, cap_add.NET_ADMIN,
	// network_mode, pid, mounts./data, devices./dev/ttyUSB0,
	// volumes.data.driver_opts.device.
	Field string `json:"field"`
	// Value is what is granted: "true", a capability, "host", a host path
	// (with " (read-only)" for a read-only bind), a device mapping.
	Value string `json:"value"`
	// Path is the host path a bind or device reaches.
	Path string `json:"path,omitempty"`
}

// Grants lists what the fleet asks of the host, sorted by service and
// field. A bind of a path in the repository is no grant: it reaches only
// the checkout.
func Grants(f Fleet) []Grant {
	var out []Grant
	for _, s := range f.Services {
		out = append(out, serviceGrants(s)...)
	}
	for _, v := range f.Volumes {
		if dev, ok := localBindDevice(v); ok {
			out = append(out, Grant{Kind: GrantBind, Field: "volumes." + v.Key + ".driver_opts.device", Value: dev, Path: dev})
		}
	}
	slices.SortFunc(out, func(a, b Grant) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Field, b.Field))
	})
	return out
}

func serviceGrants(s Service) []Grant {
	sp := s.Spec
	var out []Grant
	add := func(kind, field, value, path string) {
		out = append(out, Grant{Service: s.Name, Kind: kind, Field: field, Value: value, Path: path})
	}
	if sp.Privileged {
		add(GrantPrivileged, "privileged", "true", "")
	}
	for hookField, hooks := range map[string][]Hook{"post_start": s.PostStart, "pre_stop": s.PreStop} {
		for i, h := range hooks {
			if h.Privileged {
				add(GrantPrivileged, hookField+"."+strconv.Itoa(i)+".privileged", "true", "")
			}
		}
	}
	for _, c := range sp.CapAdd {
		c = capName(c)
		add(GrantCapability, "cap_add."+c, c, "")
	}
	for _, ns := range namespaceFields {
		if ns.value(sp) == "host" {
			add(GrantNamespace, ns.field, "host", "")
		}
	}
	for _, m := range sp.Mounts {
		if m.Type != "bind" || strings.HasPrefix(m.Source, RepoBindPrefix) {
			continue
		}
		v := m.Source
		if m.ReadOnly {
			v += " (read-only)"
		}
		add(GrantBind, "mounts."+m.Target, v, m.Source)
	}
	for _, d := range sp.Devices {
		src, _, _ := strings.Cut(d, ":")
		add(GrantDevice, "devices."+src, d, src)
	}
	return out
}

// namespaceFields are the Spec fields that can put a container in a host
// namespace, with the policy's name of each namespace.
var namespaceFields = []struct {
	field, namespace string
	value            func(Spec) string
}{
	{"network_mode", "network", func(s Spec) string { return s.NetworkMode }},
	{"pid", "pid", func(s Spec) string { return s.Pid }},
	{"ipc", "ipc", func(s Spec) string { return s.Ipc }},
	{"uts", "uts", func(s Spec) string { return s.Uts }},
	{"userns_mode", "userns", func(s Spec) string { return s.UsernsMode }},
	{"cgroup", "cgroup", func(s Spec) string { return s.Cgroup }},
}

// HostNamespaces are the namespaces a policy may let fleets share with the
// host.
var HostNamespaces = []string{"network", "pid", "ipc", "uts", "userns", "cgroup"}

// capName is a capability as Docker takes it: upper case, without CAP_.
func capName(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" {
		return c
	}
	return strings.TrimPrefix(c, "CAP_")
}

// localBindDevice reports the host path a volume of the local driver binds
// (driver_opts o: bind, device: /path): a bind in all but name.
func localBindDevice(v Volume) (string, bool) {
	if v.External || (v.Driver != "" && v.Driver != "local") {
		return "", false
	}
	dev := v.DriverOpts["device"]
	if dev == "" || !path.IsAbs(dev) {
		return "", false
	}
	for _, o := range strings.Split(v.DriverOpts["o"], ",") {
		if o = strings.TrimSpace(o); o == "bind" || o == "rbind" {
			return dev, true
		}
	}
	return "", false
}

// HostPolicy is what a host lets its fleets ask of it (the agent's
// policy: section, the commands' --policy file). DefaultHostPolicy is the
// policy of a host that says nothing.
type HostPolicy struct {
	// Privileged lets services (and hooks) run privileged.
	Privileged bool `json:"privileged"`
	// CapAdd lists the capabilities fleets may add (without CAP_); ALL
	// allows any.
	CapAdd []string `json:"cap_add"`
	// HostNamespaces lists the namespaces fleets may share with the host:
	// network, pid, ipc, uts, userns, cgroup.
	HostNamespaces []string `json:"host_namespaces"`
	// Binds lists the host paths fleets may bind, each with everything
	// under it; "/" allows any path (but those DenyBinds reach).
	Binds []string `json:"binds"`
	// DenyBinds lists host paths no bind may reach: a bind of the path, of
	// anything under it, or of a directory above it (binding /var reaches
	// /var/run/docker.sock) is denied, whatever Binds says.
	DenyBinds []string `json:"deny_binds"`
	// Devices lists the host device paths fleets may map, each with
	// everything under it; "/" allows any.
	Devices []string `json:"devices"`
}

// DefaultHostPolicy allows what Docker allows, but binds that reach the
// Docker socket — the engine itself, root on the host — and so also a
// bind of / (or /var, /run).
func DefaultHostPolicy() HostPolicy {
	return HostPolicy{
		Privileged:     true,
		CapAdd:         []string{"ALL"},
		HostNamespaces: slices.Clone(HostNamespaces),
		Binds:          []string{"/"},
		DenyBinds:      []string{"/var/run/docker.sock", "/run/docker.sock"},
		Devices:        []string{"/"},
	}
}

// Validate reports the first thing wrong with the policy, naming its key.
func (p HostPolicy) Validate() error {
	for _, ns := range p.HostNamespaces {
		if !slices.Contains(HostNamespaces, ns) {
			return fmt.Errorf("host_namespaces: unknown namespace %q (want %s)", ns, strings.Join(HostNamespaces, ", "))
		}
	}
	for key, paths := range map[string][]string{"binds": p.Binds, "deny_binds": p.DenyBinds, "devices": p.Devices} {
		for _, pth := range paths {
			if !path.IsAbs(pth) {
				return fmt.Errorf("%s: %q is not an absolute path", key, pth)
			}
		}
	}
	for _, c := range p.CapAdd {
		if capName(c) == "" {
			return fmt.Errorf("cap_add: empty capability")
		}
	}
	return nil
}

// Check returns why the policy denies g, or "" when it allows it. Paths
// are compared as written (cleaned): a symlink on the host is not
// followed, so deny a path by every name it has (/var/run and /run).
func (p HostPolicy) Check(g Grant) string {
	switch g.Kind {
	case GrantPrivileged:
		if !p.Privileged {
			return "privileged is denied by this host's policy (policy.privileged: false)"
		}
	case GrantCapability:
		if !p.allowsCap(g.Value) {
			return fmt.Sprintf("adding capability %s is denied by this host's policy (policy.cap_add: %s)", g.Value, listOrNone(p.CapAdd))
		}
	case GrantNamespace:
		ns := namespaceOf(g.Field)
		if !slices.Contains(p.HostNamespaces, ns) {
			return fmt.Sprintf("the host's %s namespace is denied by this host's policy (policy.host_namespaces: %s)", ns, listOrNone(p.HostNamespaces))
		}
	case GrantBind:
		for _, d := range p.DenyBinds {
			if reaches(g.Path, d) {
				return fmt.Sprintf("a bind of %s reaches %s, which this host's policy denies (policy.deny_binds)", cleanPath(g.Path), cleanPath(d))
			}
		}
		if !underAny(g.Path, p.Binds) {
			return fmt.Sprintf("a bind of %s is outside the paths this host's policy allows (policy.binds: %s)", cleanPath(g.Path), listOrNone(p.Binds))
		}
	case GrantDevice:
		if !underAny(g.Path, p.Devices) {
			return fmt.Sprintf("device %s is outside the devices this host's policy allows (policy.devices: %s)", cleanPath(g.Path), listOrNone(p.Devices))
		}
	}
	return ""
}

func (p HostPolicy) allowsCap(c string) bool {
	for _, a := range p.CapAdd {
		if a = capName(a); a == "ALL" || a == capName(c) {
			return true
		}
	}
	return false
}

func namespaceOf(field string) string {
	for _, ns := range namespaceFields {
		if ns.field == field {
			return ns.namespace
		}
	}
	return field
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	return "[" + strings.Join(l, ", ") + "]"
}

func cleanPath(p string) string { return path.Clean("/" + p) }

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	p, dir = cleanPath(p), cleanPath(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func underAny(p string, dirs []string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return under(p, d) })
}

// reaches reports whether a bind of src exposes denied: src is denied, is
// inside it, or holds it.
func reaches(src, denied string) bool { return under(src, denied) || under(denied, src) }

// checkHostPolicy reports every grant of the fleet the policy denies, at
// the compose field that asks for it. bindIndex gives the index in the
// service's volumes of a bind, by service and target.
func checkHostPolicy(f Fleet, p HostPolicy, bindIndex map[[2]string]int, r *report) {
	for _, g := range Grants(f) {
		why := p.Check(g)
		if why == "" {
			continue
		}
		if g.Service == "" {
			r.fleetf(g.Field, "%s", why)
			continue
		}
		r.servicef(g.Service, composeField(g, bindIndex), "%s", why)
	}
}

// composeField is where in the service's compose definition a grant is
// asked for.
func composeField(g Grant, bindIndex map[[2]string]int) string {
	switch g.Kind {
	case GrantCapability:
		return "cap_add"
	case GrantDevice:
		return "devices"
	case GrantBind:
		if i, ok := bindIndex[[2]string{g.Service, strings.TrimPrefix(g.Field, "mounts.")}]; ok {
			return "volumes." + strconv.Itoa(i)
		}
		return "volumes"
	}
	return g.Field
}

// Enforce makes Load and LoadHosts report, as problems of the fleet,
// every grant the policy denies: the fleet is invalid on that host.
// Without it, no grant is checked.
func Enforce(p HostPolicy) Option {
	return func(o *options) { o.hostPolicy = &p }
}

// bindIndexes maps each service's binds, by service and target, to their
// index in the service's volumes.
func bindIndexes(p *types.Project) map[[2]string]int {
	out := map[[2]string]int{}
	for name, s := range p.Services {
		for i, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				out[[2]string{name, v.Target}] = i
			}
		}
	}
	return out
}
