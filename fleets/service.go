package fleets

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// service converts one compose service: its container spec (hashed) and
// what governs how its replicas are run (not hashed).
func (c *converter) service(s types.ServiceConfig) Service {
	ext := extension(s.Extensions)
	svc := Service{
		Name:          s.Name,
		Spec:          c.spec(s),
		Replicas:      replicas(s),
		DependsOn:     dependencies(s),
		Update:        rollout(deployUpdate(s, false), c.zeroMonitor[s.Name+".update_config"]),
		Rollback:      rollout(deployUpdate(s, true), c.zeroMonitor[s.Name+".rollback_config"]),
		PullPolicy:    pullPolicy(s),
		Constraints:   c.constraints(s),
		Readiness:     durationOr(ext.Readiness, defaultReadiness),
		HealthTimeout: durationOr(ext.HealthTimeout, defaultHealthTimeout),
		PublicEnv:     sortedSet(ext.PublicEnv),
		PostStart:     c.hooks(s.Name, "post_start", s.PostStart),
		PreStop:       c.hooks(s.Name, "pre_stop", s.PreStop),
	}
	c.withSopsEnv(&svc, s)
	checkRollout(s.Name, svc.Update, "deploy.update_config", c.r)
	checkRollout(s.Name, svc.Rollback, "deploy.rollback_config", c.r)
	if s.Build != nil {
		svc.Build = c.build(s)
		if svc.Build != nil {
			svc.Spec.Image = buildImage(c.project.Name, s, svc.Build.ContextHash)
		}
		svc.PullPolicy = "build"
	}
	svc.Ingress = c.ingress(s.Name, ext.Ingress, &svc.Spec)
	svc.ImageUpdates = c.imageUpdates(svc, ext.ImageUpdates)
	if c.fleet.Engine == EngineSwarm {
		svc.Swarm = swarmDeploy(s)
		checkSwarmMounts(s.Name, svc.Spec.Mounts, c.r)
	}
	svc.Targets = c.fleet.Targets && ConstraintsMatch(svc.Constraints, c.host)
	hash, err := HashSpec(HashVersion, svc.Spec)
	if err != nil {
		c.r.servicef(s.Name, "", "%s", err)
	}
	svc.Hash = hash
	return svc
}

// spec converts the container-relevant attributes of a service.
func (c *converter) spec(s types.ServiceConfig) Spec {
	spec := Spec{
		Image:           s.Image,
		ContainerName:   s.ContainerName,
		Command:         slices.Clone([]string(s.Command)),
		Entrypoint:      slices.Clone([]string(s.Entrypoint)),
		Environment:     environment(s.Environment),
		Labels:          mapOrNil(s.Labels),
		User:            s.User,
		WorkingDir:      s.WorkingDir,
		Hostname:        s.Hostname,
		Domainname:      s.DomainName,
		Ports:           ports(s.Ports, c.fleet.Engine == EngineSwarm),
		Expose:          sortedSet(s.Expose),
		Mounts:          c.mounts(s),
		Networks:        c.attachments(s),
		NetworkMode:     c.networkMode(s),
		Healthcheck:     healthcheck(s.HealthCheck),
		Restart:         restart(s),
		Resources:       resources(s),
		Secrets:         c.secrets(s),
		Configs:         c.configs(s),
		StopSignal:      s.StopSignal,
		StopGracePeriod: durationOr(s.StopGracePeriod, defaultStopGracePeriod),
		Init:            s.Init != nil && *s.Init,
		Privileged:      s.Privileged,
		ReadOnly:        s.ReadOnly,
		Tty:             s.Tty,
		StdinOpen:       s.StdinOpen,
		CapAdd:          sortedSet(s.CapAdd),
		CapDrop:         sortedSet(s.CapDrop),
		DNS:             slices.Clone([]string(s.DNS)),
		DNSSearch:       slices.Clone([]string(s.DNSSearch)),
		ExtraHosts:      sortedSet(s.ExtraHosts.AsList(":")),
		SecurityOpt:     sortedSet(s.SecurityOpt),
		Tmpfs:           sortedSet(s.Tmpfs),
		Devices:         devices(s.Devices),
		GroupAdd:        sortedSet(s.GroupAdd),
		Sysctls:         mapOrNil(s.Sysctls),
		Ulimits:         ulimits(s.Ulimits),
		Logging:         logging(s.Logging),
		ShmSize:         int64(s.ShmSize),

		Pid:               s.Pid,
		Ipc:               s.Ipc,
		Uts:               s.Uts,
		UsernsMode:        s.UserNSMode,
		Runtime:           s.Runtime,
		Cgroup:            s.Cgroup,
		CgroupParent:      s.CgroupParent,
		Isolation:         s.Isolation,
		CPUSet:            s.CPUSet,
		OomScoreAdj:       s.OomScoreAdj,
		OomKillDisable:    s.OomKillDisable,
		MemSwapLimit:      int64(s.MemSwapLimit),
		DNSOpt:            slices.Clone(s.DNSOpts),
		StorageOpt:        mapOrNil(s.StorageOpt),
		DeviceCgroupRules: sortedSet(s.DeviceCgroupRules),

		Platform:       s.Platform,
		MacAddress:     s.MacAddress,
		MemSwappiness:  int64(s.MemSwappiness),
		CPUCount:       s.CPUCount,
		CPUPercent:     int64(s.CPUPercent),
		CPUPeriod:      s.CPUPeriod,
		CPUQuota:       s.CPUQuota,
		CPURTPeriod:    s.CPURTPeriod,
		CPURTRuntime:   s.CPURTRuntime,
		Blkio:          blkio(s.BlkioConfig),
		Annotations:    mapOrNil(s.Annotations),
		DeviceRequests: deviceRequests(s),
		VolumesFrom:    volumesFrom(s.VolumesFrom),
	}
	return spec
}

// volumesFrom spells each entry with its kind: a bare name is a service
// (compose's "service_name[:ro|rw]"), container:<name> a container.
func volumesFrom(in []string) []string {
	var out []string
	for _, v := range in {
		if !strings.HasPrefix(v, "container:") {
			v = PeerPrefix + v
		}
		out = append(out, v)
	}
	return out
}

// deviceRequests converts gpus and deploy.resources.reservations.devices as
// docker compose does; a request that names neither a count nor devices
// asks for all of them, as the compose reference says, and gpus always
// asks for the gpu capability.
func deviceRequests(s types.ServiceConfig) []DeviceRequest {
	var out []DeviceRequest
	add := func(d types.DeviceRequest, capability string) {
		r := DeviceRequest{Driver: d.Driver, Count: int64(d.Count), DeviceIDs: slices.Clone(d.IDs), Options: mapOrNil(d.Options)}
		caps := slices.Clone(d.Capabilities)
		if capability != "" && !slices.Contains(caps, capability) {
			caps = append(caps, capability)
		}
		r.Capabilities = sortedSet(caps)
		if r.Count == 0 && len(r.DeviceIDs) == 0 {
			r.Count = -1
		}
		out = append(out, r)
	}
	for _, d := range s.Gpus {
		add(d, "gpu")
	}
	if s.Deploy != nil && s.Deploy.Resources.Reservations != nil {
		for _, d := range s.Deploy.Resources.Reservations.Devices {
			add(d, "")
		}
	}
	return out
}

func blkio(b *types.BlkioConfig) *Blkio {
	if b == nil {
		return nil
	}
	throttle := func(in []types.ThrottleDevice) map[string]int64 {
		if len(in) == 0 {
			return nil
		}
		out := make(map[string]int64, len(in))
		for _, t := range in {
			out[t.Path] = int64(t.Rate)
		}
		return out
	}
	out := &Blkio{
		Weight:          b.Weight,
		DeviceReadBps:   throttle(b.DeviceReadBps),
		DeviceReadIOps:  throttle(b.DeviceReadIOps),
		DeviceWriteBps:  throttle(b.DeviceWriteBps),
		DeviceWriteIOps: throttle(b.DeviceWriteIOps),
	}
	for _, w := range b.WeightDevice {
		if out.WeightDevice == nil {
			out.WeightDevice = map[string]uint16{}
		}
		out.WeightDevice[w.Path] = w.Weight
	}
	if out.Weight == 0 && out.WeightDevice == nil && out.DeviceReadBps == nil && out.DeviceReadIOps == nil &&
		out.DeviceWriteBps == nil && out.DeviceWriteIOps == nil {
		return nil // blkio_config: {} changes nothing
	}
	return out
}

// replicas is deploy.replicas, else scale, else 1.
func replicas(s types.ServiceConfig) int {
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	if s.Scale != nil {
		return *s.Scale
	}
	return 1
}

func dependencies(s types.ServiceConfig) []Dependency {
	var deps []Dependency
	for _, name := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[name]
		deps = append(deps, Dependency{
			Service:   name,
			Condition: cmpOr(d.Condition, ConditionStarted),
			Required:  d.Required,
			Restart:   d.Restart,
		})
	}
	return deps
}

func pullPolicy(s types.ServiceConfig) string {
	return cmpOr(s.PullPolicy, defaultPullPolicy)
}

func environment(env types.MappingWithEquals) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		if v != nil {
			out[k] = *v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func healthcheck(hc *types.HealthCheckConfig) *Healthcheck {
	if hc == nil {
		return nil
	}
	if hc.Disable || (len(hc.Test) > 0 && hc.Test[0] == "NONE") {
		return &Healthcheck{Disable: true}
	}
	out := &Healthcheck{
		Test:          slices.Clone([]string(hc.Test)),
		Interval:      durationOr(hc.Interval, 0),
		Timeout:       durationOr(hc.Timeout, 0),
		StartPeriod:   durationOr(hc.StartPeriod, 0),
		StartInterval: durationOr(hc.StartInterval, 0),
	}
	if hc.Retries != nil {
		out.Retries = int(min(*hc.Retries, math.MaxInt32))
	}
	return out
}

// restart is restart:, else the Swarm deploy.restart_policy translated to
// Docker's, else "no".
func restart(s types.ServiceConfig) string {
	if s.Restart != "" {
		return s.Restart
	}
	if s.Deploy == nil || s.Deploy.RestartPolicy == nil {
		return defaultRestart
	}
	rp := s.Deploy.RestartPolicy
	switch rp.Condition {
	case "none":
		return "no"
	case "on-failure":
		if rp.MaxAttempts != nil && *rp.MaxAttempts > 0 {
			return "on-failure:" + itoa(int64(*rp.MaxAttempts))
		}
		return "on-failure"
	case "any", "":
		return "always"
	}
	return rp.Condition
}

// resources merges the service-level and deploy.resources spellings;
// validateProject has reported them if they disagree.
func resources(s types.ServiceConfig) Resources {
	r := Resources{
		Memory:            int64(s.MemLimit),
		MemoryReservation: int64(s.MemReservation),
		NanoCPUs:          nanoCPUs(s.CPUS),
		CPUShares:         s.CPUShares,
		PidsLimit:         s.PidsLimit,
	}
	if s.Deploy == nil {
		return r
	}
	if l := s.Deploy.Resources.Limits; l != nil {
		r.Memory = cmpOr(r.Memory, int64(l.MemoryBytes))
		r.NanoCPUs = cmpOr(r.NanoCPUs, nanoCPUs(float32(l.NanoCPUs)))
		r.PidsLimit = cmpOr(r.PidsLimit, l.Pids)
	}
	if res := s.Deploy.Resources.Reservations; res != nil {
		r.MemoryReservation = cmpOr(r.MemoryReservation, int64(res.MemoryBytes))
	}
	return r
}

// nanoCPUs converts compose-go's float32 cpus as the docker CLI reads
// --cpus: by its shortest decimal spelling, so 0.1 is 100000000 and not
// the float32's 100000001.
func nanoCPUs(cpus float32) int64 {
	exact, err := strconv.ParseFloat(strconv.FormatFloat(float64(cpus), 'f', -1, 32), 64)
	if err != nil {
		exact = float64(cpus)
	}
	return int64(math.Round(exact * 1e9))
}

func devices(ds []types.DeviceMapping) []string {
	var out []string
	for _, d := range ds {
		s := d.Source + ":" + cmpOr(d.Target, d.Source)
		if d.Permissions != "" {
			s += ":" + d.Permissions
		}
		out = append(out, s)
	}
	return sortedSet(out)
}

func ulimits(in map[string]*types.UlimitsConfig) map[string]Ulimit {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]Ulimit, len(in))
	for name, u := range in {
		if u == nil {
			continue
		}
		if u.Single != 0 {
			out[name] = Ulimit{Soft: int64(u.Single), Hard: int64(u.Single)}
			continue
		}
		out[name] = Ulimit{Soft: int64(u.Soft), Hard: int64(u.Hard)}
	}
	return out
}

func logging(l *types.LoggingConfig) *Logging {
	if l == nil || (l.Driver == "" && len(l.Options) == 0) {
		return nil
	}
	return &Logging{Driver: l.Driver, Options: mapOrNil(l.Options)}
}

func durationOr(d *types.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return time.Duration(*d)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
