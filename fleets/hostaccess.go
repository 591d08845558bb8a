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
	GrantPrivileged = "privileged" // privileged: true (the service, or a hook's exec); security_opt that lifts confinement
	GrantCapability = "capability" // cap_add
	GrantNamespace  = "namespace"  // network_mode, pid, ipc, uts, userns_mode, cgroup: host or container:<name>; build.network: host
	GrantBind       = "bind"       // a bind of a host path (not one in the repository); volumes_from container:<name>; a local volume's host path
	GrantDevice     = "device"     // devices; device_cgroup_rules; a local volume's device
)

// Grant is one thing a fleet asks of the host beyond an ordinary
// container's isolation.
type Grant struct {
	Service string `json:"service,omitempty"` // "" for a fleet's volume
	Kind    string `json:"kind"`
	// Field names the grant in the model, unique within its service:
	// privileged, post_start.0.privileged, security_opt.seccomp=unconfined,
	// cap_add.NET_ADMIN, network_mode, pid, build.network,
	// volumes_from.container:x, mounts./data, devices./dev/ttyUSB0,
	// device_cgroup_rules.b *:* rwm, volumes.data.driver_opts.device,
	// volumes.data.driver_opts.o.lowerdir.0.
	Field string `json:"field"`
	// Value is what is granted: "true", a security option, a capability,
	// "host" or "container:<name>", a host path (with " (read-only)" for a
	// read-only bind), a device mapping or cgroup rule.
	Value string `json:"value"`
	// Path is the host path a bind or device reaches: "/" for the binds
	// of another container (volumes_from container:), which fleetd cannot
	// see; "/dev" for a device cgroup rule, which names devices by number.
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
		out = append(out, volumeGrants(v)...)
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
	for _, o := range sp.SecurityOpt {
		if o, ok := unconfining(o); ok {
			add(GrantPrivileged, "security_opt."+o, o, "")
		}
	}
	for _, c := range sp.CapAdd {
		c = capName(c)
		add(GrantCapability, "cap_add."+c, c, "")
	}
	for _, ns := range namespaceFields {
		if v := ns.value(sp); hostNamespaceRef(v) {
			add(GrantNamespace, ns.field, v, "")
		}
	}
	if s.Build != nil && hostNamespaceRef(s.Build.Network) {
		add(GrantNamespace, "build.network", s.Build.Network, "")
	}
	for _, ref := range sp.VolumesFrom {
		if rest, ok := strings.CutPrefix(ref, containerPrefix); ok {
			name, _, _ := strings.Cut(rest, ":")
			add(GrantBind, "volumes_from."+containerPrefix+name, ref, "/")
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
	for _, rule := range sp.DeviceCgroupRules {
		add(GrantDevice, "device_cgroup_rules."+rule, rule, "/dev")
	}
	return out
}

// containerPrefix starts a reference to a container fleetd did not
// create, in network_mode, pid, ipc and volumes_from. That container may
// share any of the host's namespaces or bind any host path, which fleetd
// cannot see: joining it asks for as much.
const containerPrefix = "container:"

// hostNamespaceRef reports whether a namespace setting may put the
// container in a host namespace: host, or another container's.
func hostNamespaceRef(v string) bool {
	return v == "host" || strings.HasPrefix(v, containerPrefix)
}

// unconfining returns a security option (key=value) unless it is known
// to keep the container confined: no-new-privileges, an AppArmor profile
// the host has loaded, an SELinux level. Anything else — apparmor,
// seccomp or systempaths unconfined, label=disable, an SELinux type (it
// may be spc_t), a seccomp profile (it may allow every syscall),
// writable-cgroups — can lift what keeps a container off the host, as
// privileged does.
func unconfining(opt string) (string, bool) {
	key, val, ok := strings.Cut(opt, "=")
	if !ok {
		key, val, _ = strings.Cut(opt, ":")
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	norm := key + "=" + val
	switch {
	case key == "no-new-privileges":
		return norm, false
	case key == "apparmor" && val != "" && val != "unconfined":
		return norm, false
	case key == "label" && strings.HasPrefix(val, "level:"):
		return norm, false
	}
	return norm, true
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

// networkFilesystems are the mount types of a local volume that reach no
// host path: their device names a remote share (or, for tmpfs, nothing).
var networkFilesystems = []string{"nfs", "nfs4", "cifs", "smb", "smb3", "tmpfs"}

// kernelFilesystems are the mount types of a local volume that mount a
// view of the host's kernel (the engine mounts them in the host's
// namespaces), with the host path each amounts to.
var kernelFilesystems = map[string]struct{ kind, path string }{
	"proc":     {GrantBind, "/proc"},
	"sysfs":    {GrantBind, "/sys"},
	"cgroup":   {GrantBind, "/sys/fs/cgroup"},
	"cgroup2":  {GrantBind, "/sys/fs/cgroup"},
	"devtmpfs": {GrantDevice, "/dev"},
}

// volumeGrants are the host paths a volume of the local driver mounts,
// which the engine mounts with mount(2) as driver_opts say: o: bind (or
// type none) binds device, a disk filesystem mounts the device (a path
// under /dev, else a file, as a bind), and every absolute path in o
// (overlay's lowerdir, upperdir, workdir) is bound. A network filesystem
// or tmpfs reaches none, unless o binds; a kernel filesystem (proc,
// sysfs) reaches the host's; any other device fleetd cannot place (not
// a path) counts as a bind of /.
func volumeGrants(v Volume) []Grant {
	if v.External || (v.Driver != "" && v.Driver != "local") {
		return nil
	}
	var out []Grant
	add := func(kind, field, p string) {
		out = append(out, Grant{Kind: kind, Field: "volumes." + v.Key + ".driver_opts." + field, Value: p, Path: cleanPath(p)})
	}
	opts := strings.Split(v.DriverOpts["o"], ",")
	bind := slices.ContainsFunc(opts, func(o string) bool { o = strings.TrimSpace(o); return o == "bind" || o == "rbind" })
	typ := strings.TrimSpace(v.DriverOpts["type"])
	if !bind && slices.Contains(networkFilesystems, typ) {
		return nil
	}
	if k, ok := kernelFilesystems[typ]; ok && !bind {
		out = append(out, Grant{Kind: k.kind, Field: "volumes." + v.Key + ".driver_opts.type", Value: typ, Path: k.path})
	} else if dev := strings.TrimSpace(v.DriverOpts["device"]); dev != "" {
		switch {
		case bind || typ == "none":
			add(GrantBind, "device", dev)
		case !path.IsAbs(dev) && typ == "overlay": // overlay's paths are in o
		case !path.IsAbs(dev):
			out = append(out, Grant{Kind: GrantBind, Field: "volumes." + v.Key + ".driver_opts.device", Value: dev, Path: "/"})
		case under(dev, "/dev"):
			add(GrantDevice, "device", dev)
		default:
			add(GrantBind, "device", dev)
		}
	}
	for _, o := range opts {
		key, val, ok := strings.Cut(strings.TrimSpace(o), "=")
		if !ok {
			continue
		}
		var paths []string
		for _, p := range strings.Split(val, ":") {
			if path.IsAbs(p) {
				paths = append(paths, p)
			}
		}
		for i, p := range paths {
			field := "o." + key
			if len(paths) > 1 {
				field += "." + strconv.Itoa(i)
			}
			add(GrantBind, field, p)
		}
	}
	return out
}

// HostPolicy is what a host lets its fleets ask of it (the agent's
// policy: section, the commands' --policy file). DefaultHostPolicy is the
// policy of a host that says nothing.
type HostPolicy struct {
	// Privileged lets services (and hooks) run privileged, and set a
	// security_opt that lifts their confinement (see unconfining).
	Privileged bool `json:"privileged"`
	// CapAdd lists the capabilities fleets may add (without CAP_); ALL
	// allows any.
	CapAdd []string `json:"cap_add"`
	// HostNamespaces lists the namespaces fleets may share with the host:
	// network, pid, ipc, uts, userns, cgroup. Joining a container fleetd
	// did not create (network_mode: container:x) counts as the host's.
	HostNamespaces []string `json:"host_namespaces"`
	// Binds lists the host paths fleets may bind, each with everything
	// under it; "/" allows any path (but those DenyBinds reach).
	// volumes_from a container fleetd did not create counts as a bind of /.
	Binds []string `json:"binds"`
	// DenyBinds lists host paths no bind may reach: a bind of the path, of
	// anything under it, or of a directory above it (binding /var reaches
	// /var/run/docker.sock) is denied, whatever Binds says.
	DenyBinds []string `json:"deny_binds"`
	// Devices lists the host device paths fleets may map, each with
	// everything under it; "/" allows any. A device cgroup rule counts as
	// the device /dev.
	Devices []string `json:"devices"`
}

// DefaultHostPolicy allows what Docker allows, but binds that reach the
// Docker or containerd socket — the engine itself, root on the host — and
// so also a bind of / (or /var, /run), of /proc (/proc/1/root is the
// host's root, read-only or not), and volumes_from a container fleetd did
// not create (it may bind the socket).
func DefaultHostPolicy() HostPolicy {
	return HostPolicy{
		Privileged:     true,
		CapAdd:         []string{"ALL"},
		HostNamespaces: slices.Clone(HostNamespaces),
		Binds:          []string{"/"},
		DenyBinds:      slices.Clone(defaultDenyBinds),
		Devices:        []string{"/"},
	}
}

// defaultDenyBinds are the host paths that hand a container the host's
// container engine, by each of their names: its sockets, and /proc,
// whose /proc/<pid>/root reaches them.
var defaultDenyBinds = []string{
	"/var/run/docker.sock", "/run/docker.sock",
	"/var/run/containerd", "/run/containerd",
	"/proc",
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
// are compared as written (cleaned): Check does not follow the host's
// symlinks (Load does, see checkHostPolicy), so deny a path by every
// name it has (/var/run and /run). A grant of an unknown kind is denied.
func (p HostPolicy) Check(g Grant) string {
	switch g.Kind {
	case GrantPrivileged:
		if !p.Privileged {
			return privilegedOf(g) + " is denied by this host's policy (policy.privileged: false)"
		}
	case GrantCapability:
		if !p.allowsCap(g.Value) {
			return fmt.Sprintf("adding capability %s is denied by this host's policy (policy.cap_add: %s)", g.Value, listOrNone(p.CapAdd))
		}
	case GrantNamespace:
		ns := namespaceOf(g.Field)
		if !slices.Contains(p.HostNamespaces, ns) {
			return fmt.Sprintf("%sthe host's %s namespace is denied by this host's policy (policy.host_namespaces: %s)", joins(g), ns, listOrNone(p.HostNamespaces))
		}
	case GrantBind:
		for _, d := range p.DenyBinds {
			if reaches(g.Path, d) {
				return fmt.Sprintf("%s reaches %s, which this host's policy denies (policy.deny_binds)", bindOf(g), cleanPath(d))
			}
		}
		if !underAny(g.Path, p.Binds) {
			return fmt.Sprintf("%s is outside the paths this host's policy allows (policy.binds: %s)", bindOf(g), listOrNone(p.Binds))
		}
	case GrantDevice:
		if !underAny(g.Path, p.Devices) {
			return fmt.Sprintf("%s is outside the devices this host's policy allows (policy.devices: %s)", deviceOf(g), listOrNone(p.Devices))
		}
	default:
		return fmt.Sprintf("%s: unknown kind of host access %q", g.Field, g.Kind)
	}
	return ""
}

// privilegedOf names a privileged grant: privileged, or the security
// option that amounts to it.
func privilegedOf(g Grant) string {
	if strings.HasPrefix(g.Field, "security_opt.") {
		return "security_opt " + g.Value + " lifts the container's confinement, as privileged does: it"
	}
	return "privileged"
}

// joins says, for a namespace another container holds, that it may be
// the host's.
func joins(g Grant) string {
	if strings.HasPrefix(g.Value, containerPrefix) {
		return g.Value + " is a container fleetd did not create, which may be in the host's namespace: "
	}
	return ""
}

// bindOf names a bind grant: the host path, or the container whose binds
// volumes_from takes.
func bindOf(g Grant) string {
	if strings.HasPrefix(g.Field, "volumes_from.") {
		return fmt.Sprintf("volumes_from %s takes the binds of a container fleetd did not create, which may be any host path: as a bind of %s, it", g.Value, cleanPath(g.Path))
	}
	if strings.HasPrefix(g.Field, "volumes.") && !path.IsAbs(g.Value) {
		return fmt.Sprintf("a volume mounting %s (as a bind of %s)", g.Value, cleanPath(g.Path))
	}
	return "a bind of " + cleanPath(g.Path)
}

// deviceOf names a device grant: the device, or the cgroup rule that
// reaches devices by number.
func deviceOf(g Grant) string {
	if strings.HasPrefix(g.Field, "device_cgroup_rules.") {
		return fmt.Sprintf("device_cgroup_rules %q reaches any device by number (%s)", g.Value, cleanPath(g.Path))
	}
	return "device " + cleanPath(g.Path)
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
	if field == "build.network" {
		return "network"
	}
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
func under(p, dir string) bool { return within(cleanPath(dir), cleanPath(p)) }

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
		why := p.checkOnHost(g)
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

// checkOnHost is Check, and for a bind also Check of the path the
// bind's source resolves to on this host, through its symlinks (the agent
// loads on the host it applies to): a symlink inside an allowed path may
// lead to a denied one. A source that does not exist yet is checked as
// its nearest existing directory resolves, as the engine creates it; a
// source that cannot be resolved is denied.
func (p HostPolicy) checkOnHost(g Grant) string {
	if why := p.Check(g); why != "" || g.Kind != GrantBind {
		return why
	}
	written := cleanPath(g.Path)
	real, err := evalPath(written)
	if err != nil {
		return fmt.Sprintf("a bind of %s cannot be resolved on this host, so this host's policy cannot allow it: %s", written, err)
	}
	if real == written {
		return ""
	}
	resolved := g
	resolved.Path = real
	if why := p.Check(resolved); why != "" {
		return fmt.Sprintf("%s resolves to %s on this host: %s", bindOf(g), real, why)
	}
	return ""
}

// composeField is where in the service's compose definition a grant is
// asked for.
func composeField(g Grant, bindIndex map[[2]string]int) string {
	prefix, _, _ := strings.Cut(g.Field, ".")
	switch prefix {
	case "cap_add", "devices", "device_cgroup_rules", "security_opt", "volumes_from":
		return prefix
	case "mounts":
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
