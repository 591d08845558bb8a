package swarm

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	units "github.com/docker/go-units"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fleets"
)

// LabelStackNamespace is docker stack's own label: with it `docker stack
// ls/ps/services` show a swarm fleet as the stack it is.
const LabelStackNamespace = "com.docker.stack.namespace"

// Labels fleetd adds to the swarm objects it owns, besides the ones every
// fleetd object carries (fleets.LabelManaged, LabelInstance, LabelFleet).
const (
	LabelEngine   = fleets.LabelEngine // "swarm"
	LabelSecret   = "io.fleetd.secret" // a secret's key in the fleet
	LabelConfig   = "io.fleetd.config" // a config's key in the fleet
	LabelNetwork  = "io.fleetd.network"
	LabelSpecHash = fleets.LabelSpecHash // sha256 of the translated ServiceSpec, without this label
)

// Input is everything the translation of one fleet depends on.
type Input struct {
	Fleet    fleets.Fleet
	Instance string // the fleetd instance that owns the objects
	// Nodes are the swarm's nodes (hostname and labels): a fleet placed on
	// several hosts by name becomes constraints over them.
	Nodes []fleets.Host
	// Images maps an image as the fleet names it to the reference every
	// node runs (name@sha256:…, resolved once per revision). An image not
	// in the map is used as written.
	Images map[string]string
}

// Stack is a fleet translated to Swarm objects. Everything in it carries
// the stack label and fleetd's ownership labels.
type Stack struct {
	Namespace string    `json:"namespace"`
	Networks  []Network `json:"networks,omitempty"` // sorted by Name; external ones are not created
	Secrets   []File    `json:"secrets,omitempty"`  // sorted by Name
	Configs   []File    `json:"configs,omitempty"`  // sorted by Name
	Services  []Service `json:"services"`           // sorted by Name
}

// Network is an overlay network the stack creates.
type Network struct {
	Name    string                `json:"name"`
	Key     string                `json:"key"`
	Options network.CreateOptions `json:"options"`
}

// File is a secret or config. Swarm's are immutable, so the name carries
// a digest of the contents: a change is a new object, the services move to
// it, and the old one is removed once no service uses it. The contents are
// read by the adapter from Ref at create time; they are never part of the
// stack (nor of a plan or a log).
type File struct {
	Name   string            `json:"name"`
	Key    string            `json:"key"`
	Labels map[string]string `json:"labels"`
	Ref    fleets.FileRef    `json:"ref"`
}

// Service is one Swarm service.
type Service struct {
	Name string            `json:"name"`
	Key  string            `json:"key"` // the Compose service name
	Spec swarm.ServiceSpec `json:"spec"`
	// Hash is the sha256 of Spec without the hash label: equal hashes
	// mean equal specs.
	Hash string `json:"hash"`
}

// Error is a fleet that cannot be translated, naming the field at fault.
type Error struct {
	Fleet, Field, Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("fleet %s: %s: %s", e.Fleet, e.Field, e.Msg) }

// Translate maps a swarm fleet to Swarm objects, as `docker stack deploy`
// would, plus fleetd's labels, content-addressed secrets and configs, and
// the fleet's placement as constraints. It is pure.
func Translate(in Input) (Stack, error) {
	f := in.Fleet
	if f.Engine != fleets.EngineSwarm {
		return Stack{}, &Error{f.Name, "x-fleetd.engine", fmt.Sprintf("the fleet runs on %q, not swarm", f.Engine)}
	}
	placement, err := fleetConstraints(f, in.Nodes)
	if err != nil {
		return Stack{}, err
	}
	st := Stack{Namespace: f.Name}
	t := translator{in: in, owned: ownedLabels(f.Name, in.Instance)}
	for _, n := range f.Networks {
		if !n.External {
			st.Networks = append(st.Networks, t.network(n))
		}
	}
	files := map[string]File{}
	for _, svc := range f.Services {
		for _, ref := range svc.Spec.Secrets {
			if ref.External == "" {
				files["s"+ref.Name+ref.Digest] = t.file(ref, LabelSecret)
			}
		}
		for _, ref := range svc.Spec.Configs {
			if ref.External == "" {
				files["c"+ref.Name+ref.Digest] = t.file(ref, LabelConfig)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(files)) {
		if k[0] == 's' {
			st.Secrets = append(st.Secrets, files[k])
		} else {
			st.Configs = append(st.Configs, files[k])
		}
	}
	for _, svc := range f.Services {
		s, err := t.service(svc, placement)
		if err != nil {
			return Stack{}, err
		}
		st.Services = append(st.Services, s)
	}
	sortBy(st.Networks, func(n Network) string { return n.Name })
	sortBy(st.Secrets, func(f File) string { return f.Name })
	sortBy(st.Configs, func(f File) string { return f.Name })
	sortBy(st.Services, func(s Service) string { return s.Name })
	return st, nil
}

type translator struct {
	in    Input
	owned map[string]string
}

// ownedLabels are the labels every object of a swarm fleet carries.
func ownedLabels(fleet, instance string) map[string]string {
	return map[string]string{
		fleets.LabelManaged:  "true",
		fleets.LabelInstance: cmp.Or(instance, fleets.DefaultInstance),
		fleets.LabelFleet:    fleet,
		LabelEngine:          fleets.EngineSwarm,
		LabelStackNamespace:  fleet,
	}
}

// with returns the owned labels over user labels, plus extra key/values.
func (t translator) with(user map[string]string, kv ...string) map[string]string {
	out := maps.Clone(user)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, t.owned)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (t translator) network(n fleets.Network) Network {
	opts := network.CreateOptions{
		Driver:     cmp.Or(n.Driver, "overlay"),
		Scope:      "swarm",
		Internal:   n.Internal,
		Attachable: true, // a swarm fleet's network is joinable by plain containers too (debugging, fleetd's ingress)
		Options:    n.DriverOpts,
		Labels:     t.with(n.Labels, LabelNetwork, n.Key),
	}
	if n.EnableIPv6 {
		v := true
		opts.EnableIPv6 = &v
	}
	if len(n.Subnets) > 0 {
		opts.IPAM = &network.IPAM{Driver: "default"}
		for _, s := range n.Subnets {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: s})
		}
	}
	return Network{Name: n.Name, Key: n.Key, Options: opts}
}

// FileName is the Swarm name of a secret or config of fleet: its key and
// the first 12 hex digits of its contents' digest; an external one's own.
func FileName(fleet string, ref fleets.FileRef) string {
	if ref.External != "" {
		return ref.External
	}
	return fleet + "_" + ref.Name + "_" + shortDigest(ref.Digest)
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok { // sha256:, or hmac-sha256: for a SOPS file
		d = hex
	}
	return d[:min(12, len(d))]
}

func (t translator) file(ref fleets.FileRef, keyLabel string) File {
	return File{
		Name:   FileName(t.in.Fleet.Name, ref),
		Key:    ref.Name,
		Labels: t.with(nil, keyLabel, ref.Name, "io.fleetd.digest", ref.Digest),
		Ref:    ref,
	}
}

func (t translator) service(svc fleets.Service, fleetPlacement []string) (Service, error) {
	f, sp, sw := t.in.Fleet, svc.Spec, svc.Swarm
	if sw == nil {
		sw = &fleets.SwarmDeploy{Mode: fleets.ModeReplicated, Restart: "any"}
	}
	name := f.Name + "_" + svc.Name
	cs := &swarm.ContainerSpec{
		Image:           cmp.Or(t.in.Images[sp.Image], sp.Image),
		Labels:          withStack(sp.Labels, f.Name),
		Command:         sp.Entrypoint,
		Args:            sp.Command,
		Hostname:        sp.Hostname,
		Env:             engine.EnvList(sp.Environment),
		Dir:             sp.WorkingDir,
		User:            sp.User,
		Groups:          sp.GroupAdd,
		StopSignal:      sp.StopSignal,
		TTY:             sp.Tty,
		OpenStdin:       sp.StdinOpen,
		ReadOnly:        sp.ReadOnly,
		Healthcheck:     engine.HealthConfig(sp.Healthcheck),
		Hosts:           hosts(sp.ExtraHosts),
		Sysctls:         sp.Sysctls,
		CapabilityAdd:   sp.CapAdd,
		CapabilityDrop:  sp.CapDrop,
		Ulimits:         engine.Ulimits(sp.Ulimits),
		StopGracePeriod: ptr(sp.StopGracePeriod),
	}
	if sp.Init {
		cs.Init = ptr(true)
	}
	if len(sp.DNS) > 0 || len(sp.DNSSearch) > 0 || len(sp.DNSOpt) > 0 {
		cs.DNSConfig = &swarm.DNSConfig{Nameservers: sp.DNS, Search: sp.DNSSearch, Options: sp.DNSOpt}
	}
	if sp.Isolation != "" {
		cs.Isolation = container.Isolation(sp.Isolation)
	}
	cs.Mounts = t.mounts(sp)
	for _, ref := range sp.Secrets {
		cs.Secrets = append(cs.Secrets, &swarm.SecretReference{
			SecretName: FileName(f.Name, ref),
			File:       &swarm.SecretReferenceFileTarget{Name: secretTarget(ref.Target), UID: "0", GID: "0", Mode: fileMode(ref.Mode, 0o444)},
		})
	}
	for _, ref := range sp.Configs {
		cs.Configs = append(cs.Configs, &swarm.ConfigReference{
			ConfigName: FileName(f.Name, ref),
			File:       &swarm.ConfigReferenceFileTarget{Name: ref.Target, UID: "0", GID: "0", Mode: fileMode(ref.Mode, 0o444)},
		})
	}
	task := swarm.TaskSpec{
		ContainerSpec: cs,
		Resources:     resources(sp.Resources, sw.ReserveNanoCPUs),
		RestartPolicy: &swarm.RestartPolicy{
			Condition:   swarm.RestartPolicyCondition(sw.Restart),
			Delay:       sw.RestartDelay,
			MaxAttempts: sw.RestartMaxAttempts,
			Window:      sw.RestartWindow,
		},
		Placement: &swarm.Placement{
			Constraints: append(slices.Clone(fleetPlacement), constraints(svc.Constraints)...),
			MaxReplicas: sw.MaxReplicasPerNode,
		},
	}
	for _, p := range sw.Preferences {
		task.Placement.Preferences = append(task.Placement.Preferences, swarm.PlacementPreference{Spread: &swarm.SpreadOver{SpreadDescriptor: p}})
	}
	if len(task.Placement.Constraints) == 0 && len(task.Placement.Preferences) == 0 && task.Placement.MaxReplicas == 0 {
		task.Placement = nil
	}
	if sp.Logging != nil {
		task.LogDriver = &swarm.Driver{Name: sp.Logging.Driver, Options: sp.Logging.Options}
	}
	for _, a := range sp.Networks {
		task.Networks = append(task.Networks, swarm.NetworkAttachmentConfig{Target: a.Network, Aliases: a.Aliases})
	}
	spec := swarm.ServiceSpec{
		Annotations:    swarm.Annotations{Name: name, Labels: t.with(sw.Labels, fleets.LabelService, svc.Name)},
		TaskTemplate:   task,
		UpdateConfig:   updateConfig(svc.Update),
		RollbackConfig: updateConfig(svc.Rollback),
		EndpointSpec:   endpoint(sw.EndpointMode, sp.Ports),
	}
	switch sw.Mode {
	case fleets.ModeGlobal:
		spec.Mode.Global = &swarm.GlobalService{}
	default:
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: ptr(uint64(max(svc.Replicas, 0)))}
	}
	hash, err := SpecHash(spec)
	if err != nil {
		return Service{}, &Error{f.Name, "services." + svc.Name, err.Error()}
	}
	spec.Labels[LabelSpecHash] = hash
	return Service{Name: name, Key: svc.Name, Spec: spec, Hash: hash}, nil
}

// SpecHash is the sha256 of a service spec as JSON, without its
// io.fleetd.spec-hash label.
func SpecHash(spec swarm.ServiceSpec) (string, error) {
	spec.Labels = maps.Clone(spec.Labels)
	delete(spec.Labels, LabelSpecHash)
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("hash the service spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// withStack adds the stack label to a task container's labels, as docker
// stack deploy does. A task container never carries fleetd's ownership
// labels: the docker engine's agent on that node must not take it for one
// of its own.
func withStack(labels map[string]string, fleet string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[LabelStackNamespace] = fleet
	return out
}

func (t translator) mounts(sp fleets.Spec) []mount.Mount {
	volumes := map[string]fleets.Volume{}
	for _, v := range t.in.Fleet.Volumes {
		volumes[v.Name] = v
	}
	var out []mount.Mount
	for _, m := range sp.Mounts {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if v, ok := volumes[m.Source]; ok && m.Type == "volume" && !v.External {
			// Swarm creates a named volume on each node a task lands on:
			// volumes are node-local, with these labels and driver.
			mm.VolumeOptions = &mount.VolumeOptions{Labels: t.with(v.Labels, fleets.LabelComposeVolume, v.Key)}
			if v.Driver != "" || len(v.DriverOpts) > 0 {
				mm.VolumeOptions.DriverConfig = &mount.Driver{Name: v.Driver, Options: v.DriverOpts}
			}
		}
		out = append(out, mm)
	}
	for _, tm := range sp.Tmpfs {
		target, opts, _ := strings.Cut(tm, ":")
		mm := mount.Mount{Type: mount.TypeTmpfs, Target: target}
		if o := tmpfsOptions(opts); o != nil {
			mm.TmpfsOptions = o
		}
		out = append(out, mm)
	}
	return out
}

// tmpfsOptions reads size= (64m, 1g, bytes) and mode= (octal) from a tmpfs
// entry's options, as the docker CLI does.
func tmpfsOptions(opts string) *mount.TmpfsOptions {
	var out mount.TmpfsOptions
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "size="); ok {
			if n, err := units.RAMInBytes(v); err == nil {
				out.SizeBytes = n
			}
		}
		if v, ok := strings.CutPrefix(o, "mode="); ok {
			if m, err := strconv.ParseUint(v, 8, 32); err == nil {
				out.Mode = os.FileMode(m)
			}
		}
	}
	if out.SizeBytes == 0 && out.Mode == 0 {
		return nil
	}
	return &out
}

// fleetConstraints turns the fleet's x-fleetd placement into Swarm
// constraints. Swarm ANDs constraints, so one host is node.hostname ==
// host, and several are node.hostname != for every other node of the
// swarm (the translation is redone when the nodes change). Labels are
// node.labels constraints.
func fleetConstraints(f fleets.Fleet, nodes []fleets.Host) ([]string, error) {
	var out []string
	if hosts := f.Placement.Hosts; len(hosts) > 0 {
		known := map[string]bool{}
		for _, n := range nodes {
			known[n.Name] = true
		}
		var unknown []string
		for _, h := range hosts {
			if !known[h] {
				unknown = append(unknown, h)
			}
		}
		if len(unknown) > 0 {
			return nil, &Error{f.Name, "x-fleetd.hosts", fmt.Sprintf("%s: not a node of the swarm", strings.Join(unknown, ", "))}
		}
		if len(hosts) == 1 {
			out = append(out, "node.hostname == "+hosts[0])
		} else {
			var others []string
			for _, n := range nodes {
				if !slices.Contains(hosts, n.Name) {
					others = append(others, n.Name)
				}
			}
			slices.Sort(others)
			for _, n := range slices.Compact(others) {
				out = append(out, "node.hostname != "+n)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(f.Placement.Labels)) {
		out = append(out, "node.labels."+k+" == "+f.Placement.Labels[k])
	}
	return out, nil
}

func constraints(cs []fleets.Constraint) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Field+" "+c.Op+" "+c.Value)
	}
	return out
}

// hosts turns extra_hosts (host:ip, sorted) into the hosts(5) lines Swarm
// takes: "ip host".
func hosts(extra []string) []string {
	var out []string
	for _, h := range extra {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			out = append(out, h)
			continue
		}
		out = append(out, ip+" "+name)
	}
	return out
}

func resources(r fleets.Resources, reserveCPUs int64) *swarm.ResourceRequirements {
	out := &swarm.ResourceRequirements{}
	if r.Memory != 0 || r.NanoCPUs != 0 || r.PidsLimit != 0 {
		out.Limits = &swarm.Limit{MemoryBytes: r.Memory, NanoCPUs: r.NanoCPUs, Pids: r.PidsLimit}
	}
	if r.MemoryReservation != 0 || reserveCPUs != 0 {
		out.Reservations = &swarm.Resources{MemoryBytes: r.MemoryReservation, NanoCPUs: reserveCPUs}
	}
	if out.Limits == nil && out.Reservations == nil {
		return nil
	}
	return out
}

func updateConfig(r fleets.Rollout) *swarm.UpdateConfig {
	return &swarm.UpdateConfig{
		Parallelism:     uint64(max(r.Parallelism, 0)),
		Delay:           r.Delay,
		FailureAction:   r.FailureAction,
		Monitor:         r.Monitor,
		MaxFailureRatio: float32(r.MaxFailureRatio),
		Order:           r.Order,
	}
}

func endpoint(mode string, ports []fleets.Port) *swarm.EndpointSpec {
	if mode == "" && len(ports) == 0 {
		return nil
	}
	es := &swarm.EndpointSpec{Mode: swarm.ResolutionMode(mode)}
	for _, p := range ports {
		pc := swarm.PortConfig{
			Protocol:    swarm.PortConfigProtocol(p.Protocol),
			TargetPort:  p.Target,
			PublishMode: swarm.PortConfigPublishMode(cmp.Or(p.Mode, "ingress")),
		}
		if p.Published != "" {
			var n uint32
			if _, err := fmt.Sscan(p.Published, &n); err == nil {
				pc.PublishedPort = n
			}
		}
		es.Ports = append(es.Ports, pc)
	}
	return es
}

// secretTarget is a secret's file name as Swarm takes it: relative to
// /run/secrets, where the model puts every secret by default; another
// absolute path is kept (engines since 20.10 mount it there).
func secretTarget(target string) string {
	if rel, ok := strings.CutPrefix(target, "/run/secrets/"); ok {
		return rel
	}
	return target
}

func fileMode(m, def uint32) os.FileMode {
	if m == 0 {
		return os.FileMode(def)
	}
	return os.FileMode(m)
}

func ptr[T any](v T) *T { return &v }

func sortBy[T any](s []T, key func(T) string) {
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
}
