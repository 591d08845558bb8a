package fleets

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// Engines a fleet can run on, chosen by the top-level x-fleetd engine.
const (
	// EngineDocker runs the fleet's containers on every host its placement
	// selects, each host's agent on its own engine (the default).
	EngineDocker = "docker"
	// EngineSwarm deploys the fleet once per swarm as Swarm services; its
	// placement becomes Swarm constraints.
	EngineSwarm = "swarm"
)

// fleetEngine is the engine the fleet's compose files ask for: the last
// x-fleetd engine in file order (later files override earlier ones, as
// compose merges them), docker when none does. It is read from the files
// as written, before compose-go runs, because it decides which attributes
// are refused; so it must be a literal, not interpolated.
func fleetEngine(r *report) string {
	engine := EngineDocker
	for _, f := range r.files {
		ext, _ := child(f.root, extensionKey)
		n, _ := child(ext, "engine")
		if n == nil {
			continue
		}
		switch n.Value {
		case EngineDocker, EngineSwarm:
			engine = n.Value
		default:
			r.fileErr(f.rel, n.Line, fmt.Errorf("%s.engine: %q is not an engine: write docker or swarm", extensionKey, n.Value))
		}
	}
	return engine
}

// targets reports whether the agent of host runs the fleet on its own
// engine: a docker fleet whose placement selects the host. A swarm fleet
// targets no host; the swarm runs it.
func (f Fleet) targets(host Host) bool {
	return f.Engine != EngineSwarm && f.Placement.Selects(host)
}

// swarmDeploy converts the deploy attributes only Swarm honours.
func swarmDeploy(s types.ServiceConfig) *SwarmDeploy {
	d := &SwarmDeploy{Mode: ModeReplicated}
	d.Restart, d.RestartMaxAttempts = swarmRestart(s)
	if s.Deploy == nil {
		return d
	}
	d.Mode = cmpOr(s.Deploy.Mode, ModeReplicated)
	d.EndpointMode = s.Deploy.EndpointMode
	for _, p := range s.Deploy.Placement.Preferences {
		d.Preferences = append(d.Preferences, p.Spread)
	}
	d.MaxReplicasPerNode = s.Deploy.Placement.MaxReplicas
	d.Labels = mapOrNil(s.Deploy.Labels)
	if rp := s.Deploy.RestartPolicy; rp != nil {
		d.RestartDelay = optDuration(rp.Delay)
		d.RestartWindow = optDuration(rp.Window)
	}
	if res := s.Deploy.Resources.Reservations; res != nil {
		d.ReserveNanoCPUs = nanoCPUs(float32(res.NanoCPUs))
	}
	return d
}

// swarmRestart is the task restart condition and attempts, as docker stack
// deploy reads them.
func swarmRestart(s types.ServiceConfig) (string, *uint64) {
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		rp := s.Deploy.RestartPolicy
		return cmpOr(rp.Condition, "any"), rp.MaxAttempts
	}
	policy, count, _ := strings.Cut(s.Restart, ":")
	switch policy {
	case "no":
		return "none", nil
	case "on-failure":
		if n, err := strconv.ParseUint(count, 10, 64); err == nil {
			return "on-failure", &n
		}
		return "on-failure", nil
	}
	return "any", nil // always, unless-stopped, or nothing said
}

func optDuration(d *types.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v := time.Duration(*d)
	return &v
}

// checkSwarmMounts refuses a bind of a path in the repository in a swarm
// fleet: the checkout is on the agent's host, not on the node a task runs
// on. A bind of a host path binds that path on whichever node runs the task.
func checkSwarmMounts(service string, mounts []Mount, r *report) {
	for _, m := range mounts {
		if m.Type == "bind" && strings.HasPrefix(m.Source, RepoBindPrefix) {
			r.servicef(service, "volumes", "a swarm fleet cannot bind %s from the repository into %s: its tasks run on other nodes; use a config or an image", strings.TrimPrefix(m.Source, RepoBindPrefix), m.Target)
		}
	}
}

// checkSwarmService reports what a swarm fleet's service asks for that a
// Swarm service cannot do, naming the field: fleetd would otherwise run
// something other than what the file says.
func checkSwarmService(s types.ServiceConfig, r *report) {
	refuse := func(field, why string) { r.servicef(s.Name, field, "a swarm fleet cannot use %s: %s", field, why) }
	if s.Build != nil {
		refuse("build", "every node must run the same image: build and push it, then name it in image")
	}
	if len(s.Links) > 0 {
		refuse("links", "Swarm services reach each other by service name and network aliases")
	}
	if s.Platform != "" {
		refuse("platform", "Swarm picks each node's platform from the image: constrain nodes with deploy.placement.constraints (node.platform.arch)")
	}
	if s.ContainerName != "" {
		refuse("container_name", "Swarm names each task's container itself")
	}
	if s.NetworkMode != "" {
		refuse("network_mode", "a Swarm service joins networks: use networks (an attachable or host network)")
	}
	if s.Privileged {
		refuse("privileged", "Swarm services cannot run privileged")
	}
	if len(s.Devices) > 0 {
		refuse("devices", "Swarm services cannot map host devices")
	}
	if s.ShmSize != 0 {
		refuse("shm_size", "not in a Swarm container spec: mount a tmpfs at /dev/shm")
	}
	if s.CPUShares != 0 {
		refuse("cpu_shares", "use deploy.resources (cpus limits and reservations)")
	}
	if len(s.SecurityOpt) > 0 {
		refuse("security_opt", "not in a Swarm container spec")
	}
	for field, hooks := range map[string][]types.ServiceHook{"post_start": s.PostStart, "pre_stop": s.PreStop} {
		if len(hooks) > 0 {
			refuse(field, "Swarm starts and stops tasks itself and runs no lifecycle hooks: run the command from the image's entrypoint")
		}
	}
	for field, set := range map[string]bool{
		"pid": s.Pid != "", "ipc": s.Ipc != "", "uts": s.Uts != "", "userns_mode": s.UserNSMode != "", "runtime": s.Runtime != "",
		"cgroup": s.Cgroup != "", "cgroup_parent": s.CgroupParent != "", "cpuset": s.CPUSet != "", "oom_score_adj": s.OomScoreAdj != 0,
		"oom_kill_disable": s.OomKillDisable, "memswap_limit": s.MemSwapLimit != 0, "storage_opt": len(s.StorageOpt) > 0,
		"device_cgroup_rules": len(s.DeviceCgroupRules) > 0, "mac_address": s.MacAddress != "", "mem_swappiness": s.MemSwappiness != 0,
		"cpu_count": s.CPUCount != 0, "cpu_percent": s.CPUPercent != 0, "cpu_period": s.CPUPeriod != 0, "cpu_quota": s.CPUQuota != 0,
		"cpu_rt_period": s.CPURTPeriod != 0, "cpu_rt_runtime": s.CPURTRuntime != 0, "blkio_config": s.BlkioConfig != nil,
		"annotations": len(s.Annotations) > 0, "volumes_from": len(s.VolumesFrom) > 0, "gpus": len(s.Gpus) > 0,
		"deploy.resources.reservations.devices": s.Deploy != nil && s.Deploy.Resources.Reservations != nil && len(s.Deploy.Resources.Reservations.Devices) > 0,
	} {
		if set {
			refuse(field, "not in a Swarm service's container spec")
		}
	}
	for i, p := range s.Ports {
		if p.HostIP != "" {
			refuse(fmt.Sprintf("ports.%d.host_ip", i), "Swarm publishes on every address of a node")
		}
		if strings.Contains(p.Published, "-") {
			refuse(fmt.Sprintf("ports.%d.published", i), "a Swarm port publishes one host port for one target port: write one entry per port")
		}
	}
	for _, dep := range sortedKeys(s.DependsOn) {
		if c := s.DependsOn[dep].Condition; c != "" && c != ConditionStarted {
			refuse("depends_on."+dep+".condition", "Swarm starts services independently and cannot wait for "+c)
		}
	}
	if s.Deploy != nil && s.Deploy.Mode != "" && !slices.Contains([]string{ModeReplicated, ModeGlobal}, s.Deploy.Mode) {
		refuse("deploy.mode", "fleetd deploys replicated or global services")
	}
}
