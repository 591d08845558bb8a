package engine

import (
	"cmp"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/fleetd/fleetd/fleets"
)

// createConfig is what ContainerCreate takes for one instance, plus the
// networks to connect after create, before start, on APIs older than 1.44
// that accept only one network at create.
type createConfig struct {
	Config     *container.Config
	Host       *container.HostConfig
	Networking *network.NetworkingConfig
	Connect    []endpoint
	Platform   *ocispec.Platform
}

type endpoint struct {
	Network  string
	Settings *network.EndpointSettings
}

// convert translates an instance into Docker create options for the
// negotiated API version. It is pure: it reads no file and calls no API.
// The instance's service: references must have been resolved (withPeers).
func convert(inst fleets.Instance, apiVersion string) (createConfig, error) {
	spec := inst.Spec
	if len(spec.Annotations) > 0 && versions.LessThan(apiVersion, "1.43") {
		return createConfig{}, fmt.Errorf("annotations: the engine speaks Docker API %s and annotations need 1.43 (Docker Engine 24)", apiVersion)
	}
	cfg, err := containerConfig(inst, apiVersion)
	if err != nil {
		return createConfig{}, err
	}
	host, err := hostConfig(inst)
	if err != nil {
		return createConfig{}, err
	}
	var platform *ocispec.Platform
	if spec.Platform != "" {
		p, err := platforms.Parse(spec.Platform)
		if err != nil {
			return createConfig{}, fmt.Errorf("platform: %w", err)
		}
		platform = &p
	}
	if spec.Restart != "" {
		if host.RestartPolicy, err = parseRestart(spec.Restart); err != nil {
			return createConfig{}, err
		}
	}
	if err := addPorts(spec, cfg, host); err != nil {
		return createConfig{}, err
	}
	cc := createConfig{Config: cfg, Host: host, Platform: platform}
	attachNetworks(&cc, inst, apiVersion)
	if spec.MacAddress != "" && versions.LessThan(apiVersion, "1.44") {
		cfg.MacAddress = spec.MacAddress //nolint:staticcheck // the only place before API 1.44
	}
	return cc, nil
}

// withPeers resolves a spec's service:<name> references (network_mode,
// pid, ipc, volumes_from) to the containers peers names by service, as
// docker compose does at create.
func withPeers(spec fleets.Spec, peers map[string]string) (fleets.Spec, error) {
	var missing []string
	resolve := func(ref string) string {
		name, ok := fleets.PeerName(ref)
		if !ok {
			return ref
		}
		id, found := peers[name]
		if !found {
			missing = append(missing, name)
			return ref
		}
		out := "container:" + id
		if _, mode, ok := strings.Cut(strings.TrimPrefix(ref, fleets.PeerPrefix), ":"); ok {
			out += ":" + mode // volumes_from's ro or rw
		}
		return out
	}
	spec.NetworkMode, spec.Pid, spec.Ipc = resolve(spec.NetworkMode), resolve(spec.Pid), resolve(spec.Ipc)
	if spec.VolumesFrom != nil {
		from := make([]string, len(spec.VolumesFrom))
		for i, v := range spec.VolumesFrom {
			from[i] = resolve(v)
		}
		spec.VolumesFrom = from
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return spec, fmt.Errorf("no running container of service %s to join", strings.Join(slices.Compact(missing), ", "))
	}
	return spec, nil
}

// PeersLabel spells the containers a container joined, sorted by service:
// "db=<id>,cache=<id>" (the io.fleetd.peers label).
func PeersLabel(peers map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		parts = append(parts, name+"="+peers[name])
	}
	return strings.Join(parts, ",")
}

func containerConfig(inst fleets.Instance, apiVersion string) (*container.Config, error) {
	spec := inst.Spec
	env, err := spec.ContainerEnv() // with the plaintext of SOPS env files
	if err != nil {
		return nil, err
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        strslice.StrSlice(spec.Command),
		Entrypoint: strslice.StrSlice(spec.Entrypoint),
		Env:        EnvList(env),
		Labels:     mergeLabels(spec.Labels, inst.Labels),
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
		Hostname:   spec.Hostname,
		Domainname: spec.Domainname,
		StopSignal: spec.StopSignal,
		Tty:        spec.Tty,
		OpenStdin:  spec.StdinOpen,
	}
	if spec.StopGracePeriod > 0 {
		secs := int((spec.StopGracePeriod + 999_999_999) / 1_000_000_000) // round up
		cfg.StopTimeout = &secs
	}
	cfg.Healthcheck = healthConfig(spec.Healthcheck, apiVersion)
	return cfg, nil
}

// EnvList is an environment as Docker takes it, "KEY=value" sorted by key:
// for containers here, for swarm services in engine/swarm.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// mergeLabels returns spec labels overlaid with the instance's (fleetd's
// own labels win over the user's).
func mergeLabels(spec, inst map[string]string) map[string]string {
	out := make(map[string]string, len(spec)+len(inst))
	maps.Copy(out, spec)
	maps.Copy(out, inst)
	return out
}

func healthConfig(h *fleets.Healthcheck, apiVersion string) *container.HealthConfig {
	hc := HealthConfig(h)
	if hc != nil && versions.LessThan(apiVersion, "1.44") {
		hc.StartInterval = 0 // not supported before API 1.44
	}
	return hc
}

// HealthConfig is a healthcheck as Docker takes it (nil: the image's),
// for containers and swarm services alike.
func HealthConfig(h *fleets.Healthcheck) *container.HealthConfig {
	if h == nil {
		return nil
	}
	if h.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	return &container.HealthConfig{
		Test:          h.Test,
		Interval:      h.Interval,
		Timeout:       h.Timeout,
		StartPeriod:   h.StartPeriod,
		StartInterval: h.StartInterval,
		Retries:       h.Retries,
	}
}

func hostConfig(inst fleets.Instance) (*container.HostConfig, error) {
	spec := inst.Spec
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.NetworkMode),
		Privileged:     spec.Privileged,
		ReadonlyRootfs: spec.ReadOnly,
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		DNS:            spec.DNS,
		DNSSearch:      spec.DNSSearch,
		ExtraHosts:     spec.ExtraHosts,
		SecurityOpt:    spec.SecurityOpt,
		GroupAdd:       spec.GroupAdd,
		Sysctls:        spec.Sysctls,
		ShmSize:        spec.ShmSize,
		Tmpfs:          tmpfsMap(spec.Tmpfs),
		Resources:      resources(spec.Resources),
		PidMode:        container.PidMode(spec.Pid),
		IpcMode:        container.IpcMode(spec.Ipc),
		UTSMode:        container.UTSMode(spec.Uts),
		UsernsMode:     container.UsernsMode(spec.UsernsMode),
		Runtime:        spec.Runtime,
		CgroupnsMode:   container.CgroupnsMode(spec.Cgroup),
		Isolation:      container.Isolation(spec.Isolation),
		OomScoreAdj:    int(spec.OomScoreAdj),
		DNSOptions:     spec.DNSOpt,
		StorageOpt:     spec.StorageOpt,
	}
	host.CgroupParent = spec.CgroupParent
	host.CpusetCpus = spec.CPUSet
	host.MemorySwap = spec.MemSwapLimit
	host.DeviceCgroupRules = spec.DeviceCgroupRules
	if spec.OomKillDisable {
		host.OomKillDisable = &spec.OomKillDisable
	}
	if spec.Init {
		host.Init = &spec.Init
	}
	if spec.Logging != nil {
		host.LogConfig = container.LogConfig{Type: spec.Logging.Driver, Config: spec.Logging.Options}
	}
	if spec.MemSwappiness != 0 {
		host.MemorySwappiness = &spec.MemSwappiness
	}
	host.CPUCount, host.CPUPercent = spec.CPUCount, spec.CPUPercent
	host.CPUPeriod, host.CPUQuota = spec.CPUPeriod, spec.CPUQuota
	host.CPURealtimePeriod, host.CPURealtimeRuntime = spec.CPURTPeriod, spec.CPURTRuntime
	addBlkio(&host.Resources, spec.Blkio)
	host.DeviceRequests = deviceRequests(spec.DeviceRequests)
	host.Annotations = spec.Annotations
	host.VolumesFrom = volumesFrom(spec.VolumesFrom)
	host.Ulimits = Ulimits(spec.Ulimits)
	devices, err := deviceMappings(spec.Devices)
	if err != nil {
		return nil, err
	}
	host.Devices = devices
	if err := addMounts(host, spec.Mounts, inst.RepoDir, inst.CheckoutDir); err != nil {
		return nil, err
	}
	return host, nil
}

func resources(r fleets.Resources) container.Resources {
	res := container.Resources{
		Memory:            r.Memory,
		MemoryReservation: r.MemoryReservation,
		NanoCPUs:          r.NanoCPUs,
		CPUShares:         r.CPUShares,
	}
	if r.PidsLimit != 0 {
		res.PidsLimit = &r.PidsLimit
	}
	return res
}

// volumesFrom strips the container: prefix Docker does not take; service:
// references have been resolved to container: ones by withPeers.
func volumesFrom(in []string) []string {
	var out []string
	for _, v := range in {
		out = append(out, strings.TrimPrefix(v, "container:"))
	}
	return out
}

func deviceRequests(in []fleets.DeviceRequest) []container.DeviceRequest {
	var out []container.DeviceRequest
	for _, r := range in {
		dr := container.DeviceRequest{Driver: r.Driver, Count: int(r.Count), DeviceIDs: r.DeviceIDs, Options: r.Options}
		if len(r.Capabilities) > 0 {
			dr.Capabilities = [][]string{r.Capabilities}
		}
		out = append(out, dr)
	}
	return out
}

// addBlkio sets blkio_config, devices in path order.
func addBlkio(res *container.Resources, b *fleets.Blkio) {
	if b == nil {
		return
	}
	res.BlkioWeight = b.Weight
	for _, path := range slices.Sorted(maps.Keys(b.WeightDevice)) {
		res.BlkioWeightDevice = append(res.BlkioWeightDevice, &blkiodev.WeightDevice{Path: path, Weight: b.WeightDevice[path]})
	}
	throttle := func(in map[string]int64) []*blkiodev.ThrottleDevice {
		var out []*blkiodev.ThrottleDevice
		for _, path := range slices.Sorted(maps.Keys(in)) {
			out = append(out, &blkiodev.ThrottleDevice{Path: path, Rate: uint64(max(in[path], 0))})
		}
		return out
	}
	res.BlkioDeviceReadBps, res.BlkioDeviceWriteBps = throttle(b.DeviceReadBps), throttle(b.DeviceWriteBps)
	res.BlkioDeviceReadIOps, res.BlkioDeviceWriteIOps = throttle(b.DeviceReadIOps), throttle(b.DeviceWriteIOps)
}

// tmpfsMap turns "/run:size=64m" entries into Docker's path → options map.
func tmpfsMap(entries []string) map[string]string {
	if len(entries) == 0 {
		return nil
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		path, opts, _ := strings.Cut(e, ":")
		out[path] = opts
	}
	return out
}

// Ulimits are ulimits as Docker takes them, sorted by name.
func Ulimits(in map[string]fleets.Ulimit) []*container.Ulimit {
	var out []*container.Ulimit
	for _, name := range slices.Sorted(maps.Keys(in)) {
		u := in[name]
		out = append(out, &units.Ulimit{Name: name, Soft: u.Soft, Hard: u.Hard})
	}
	return out
}

// deviceMappings parses "host[:container[:perms]]".
func deviceMappings(devices []string) ([]container.DeviceMapping, error) {
	var out []container.DeviceMapping
	for _, d := range devices {
		parts := strings.Split(d, ":")
		m := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
		switch len(parts) {
		case 1:
		case 2:
			if isDevicePerms(parts[1]) {
				m.CgroupPermissions = parts[1]
			} else {
				m.PathInContainer = parts[1]
			}
		case 3:
			m.PathInContainer, m.CgroupPermissions = parts[1], parts[2]
		default:
			return nil, fmt.Errorf("device %q: want host[:container[:perms]]", d)
		}
		out = append(out, m)
	}
	return out, nil
}

func isDevicePerms(s string) bool {
	return s != "" && strings.Trim(s, "rwm") == ""
}

// addMounts maps volume and tmpfs mounts to Mounts, and binds to Binds so
// that a missing host directory is created, as Compose does.
func addMounts(host *container.HostConfig, mounts []fleets.Mount, repoDir, checkoutDir string) error {
	for _, m := range mounts {
		switch m.Type {
		case "volume":
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		case "tmpfs":
			host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: m.Target, ReadOnly: m.ReadOnly})
		case "bind":
			src, err := bindSource(m.Source, repoDir, checkoutDir)
			if err != nil {
				return err
			}
			bind := src + ":" + m.Target
			if m.ReadOnly {
				bind += ":ro"
			}
			host.Binds = append(host.Binds, bind)
		default:
			return fmt.Errorf("mount %s: unsupported type %q", m.Target, m.Type)
		}
	}
	return nil
}

// bindSource resolves a "repo:" bind source against repoDir; it may leave
// repoDir ("repo:../conf") but not checkoutDir, the checkout repoDir is
// part of (repoDir itself when empty).
func bindSource(src, repoDir, checkoutDir string) (string, error) {
	rel, ok := strings.CutPrefix(src, fleets.RepoBindPrefix)
	if !ok {
		return src, nil
	}
	if repoDir == "" {
		return "", fmt.Errorf("bind %s: instance has no repository directory", src)
	}
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("bind %s: path leaves the repository", src)
	}
	abs := filepath.Join(repoDir, rel)
	if out, err := filepath.Rel(cmp.Or(checkoutDir, repoDir), abs); err != nil || !filepath.IsLocal(out) && out != "." {
		return "", fmt.Errorf("bind %s: path leaves the repository", src)
	}
	return abs, nil
}

// parseRestart parses Spec.Restart: no | always | unless-stopped |
// on-failure[:N].
func parseRestart(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	switch mode := container.RestartPolicyMode(name); mode {
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if hasCount {
			return container.RestartPolicy{}, fmt.Errorf("restart %q: only on-failure takes a count", s)
		}
		return container.RestartPolicy{Name: mode}, nil
	case container.RestartPolicyOnFailure:
		p := container.RestartPolicy{Name: mode}
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return container.RestartPolicy{}, fmt.Errorf("restart %q: bad retry count", s)
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("restart %q: want no, always, unless-stopped or on-failure[:N]", s)
}

// addPorts fills exposed ports and bindings. A published range with a
// single target ("8000-8010" → 80) lets Docker pick a free host port in the
// range.
func addPorts(spec fleets.Spec, cfg *container.Config, host *container.HostConfig) error {
	for _, p := range spec.Ports {
		port, err := nat.NewPort(cmp.Or(p.Protocol, "tcp"), strconv.FormatUint(uint64(p.Target), 10))
		if err != nil {
			return fmt.Errorf("port %d: %w", p.Target, err)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = nat.PortSet{}
			host.PortBindings = nat.PortMap{}
		}
		cfg.ExposedPorts[port] = struct{}{}
		host.PortBindings[port] = append(host.PortBindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: p.Published})
	}
	for _, e := range spec.Expose {
		ports, err := exposedPorts(e)
		if err != nil {
			return err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = nat.PortSet{}
		}
		for _, port := range ports {
			cfg.ExposedPorts[port] = struct{}{}
		}
	}
	return nil
}

// exposedPorts parses "80", "80/udp" or "8000-8010/tcp".
func exposedPorts(e string) ([]nat.Port, error) {
	rng, proto, _ := strings.Cut(e, "/")
	start, end, err := nat.ParsePortRangeToInt(rng)
	if err != nil {
		return nil, fmt.Errorf("expose %q: %w", e, err)
	}
	var out []nat.Port
	for p := start; p <= end; p++ {
		port, err := nat.NewPort(cmp.Or(proto, "tcp"), strconv.Itoa(p))
		if err != nil {
			return nil, fmt.Errorf("expose %q: %w", e, err)
		}
		out = append(out, port)
	}
	return out, nil
}

// attachNetworks sets the network mode and endpoints. Attachments are
// ordered by priority (highest first), then name; the first is the primary
// network. Every endpoint's aliases are the attachment's plus the container
// name. Before API 1.44 only the primary network is given at create and the
// rest go to cc.Connect.
func attachNetworks(cc *createConfig, inst fleets.Instance, apiVersion string) {
	atts := slices.Clone(inst.Spec.Networks)
	if inst.Spec.NetworkMode != "" || len(atts) == 0 {
		return
	}
	slices.SortStableFunc(atts, func(a, b fleets.NetworkAttachment) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), strings.Compare(a.Network, b.Network))
	})
	cc.Host.NetworkMode = container.NetworkMode(atts[0].Network)
	cc.Networking = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	multi := !versions.LessThan(apiVersion, "1.44")
	for i, att := range atts {
		es := endpointSettings(att, inst.Name, apiVersion)
		if i == 0 && multi {
			es.MacAddress = inst.Spec.MacAddress // API 1.44 moved it to the primary endpoint
		}
		if i == 0 || multi {
			cc.Networking.EndpointsConfig[att.Network] = es
		} else {
			cc.Connect = append(cc.Connect, endpoint{Network: att.Network, Settings: es})
		}
	}
}

func endpointSettings(att fleets.NetworkAttachment, containerName, apiVersion string) *network.EndpointSettings {
	aliases := slices.Clone(att.Aliases)
	if containerName != "" && !slices.Contains(aliases, containerName) {
		aliases = append(aliases, containerName)
	}
	slices.Sort(aliases)
	es := &network.EndpointSettings{Aliases: aliases}
	if att.IPv4Address != "" || att.IPv6Address != "" {
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: att.IPv4Address, IPv6Address: att.IPv6Address}
	}
	if !versions.LessThan(apiVersion, "1.48") {
		es.GwPriority = att.Priority
	}
	return es
}
