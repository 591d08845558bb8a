package fleets

import (
	"slices"
	"strings"
	"time"
)

// Host is the machine a fleetd agent runs on: its name and its labels. It is
// the only input placement needs besides the fleet itself.
type Host struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Fleet is one directory of Compose files, converted to fleetd's model.
type Fleet struct {
	Name  string   `json:"name"`
	Dir   string   `json:"dir"`   // slash-separated, relative to the repository path
	Files []string `json:"files"` // compose files that were merged, relative to the repository path
	// Outside lists what the fleet reads outside its own directory but
	// inside the repository checkout (`../shared.env`), relative to the
	// repository path: a change there changes the fleet too.
	Outside []string `json:"outside,omitempty"`

	// Targets reports whether the fleet's x-fleetd placement selects the
	// host it was loaded for. Services may narrow it further with
	// deploy.placement.constraints (Service.Targets).
	//
	// A swarm fleet (Engine "swarm") never targets a host: it is deployed
	// once per swarm, its placement translated to Swarm constraints.
	Targets   bool      `json:"targets"`
	Engine    string    `json:"engine"` // docker | swarm (x-fleetd engine)
	Placement Placement `json:"placement"`
	Policy    Policy    `json:"policy"`

	Services []Service `json:"services"` // sorted by Name
	Networks []Network `json:"networks"` // sorted by Key
	Volumes  []Volume  `json:"volumes"`  // sorted by Key
}

// Placement is the fleet-level host selector from x-fleetd. Empty means every
// host.
type Placement struct {
	Hosts  []string          `json:"hosts,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Policy is the fleet's reconcile policy from x-fleetd.
type Policy struct {
	SelfHeal bool   `json:"self_heal"`
	Prune    bool   `json:"prune"`
	Suspend  bool   `json:"suspend"`
	Notify   Notify `json:"notify"`
}

// Notify routes the fleet's notifications.
type Notify struct {
	SlackChannel string `json:"slack_channel,omitempty"`
}

// Network is a network a fleet declares. Name is the Docker name
// (<fleet>_<key> unless set or external).
type Network struct {
	Key        string            `json:"key"`
	Name       string            `json:"name"`
	External   bool              `json:"external,omitempty"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Attachable bool              `json:"attachable,omitempty"`
	EnableIPv6 bool              `json:"enable_ipv6,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Subnets    []string          `json:"subnets,omitempty"`
}

// Volume is a named volume a fleet declares. Name is the Docker name
// (<fleet>_<key> unless set or external). fleetd creates volumes but never
// removes them.
type Volume struct {
	Key        string            `json:"key"`
	Name       string            `json:"name"`
	External   bool              `json:"external,omitempty"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Service is one Compose service: the container spec every replica is created
// from (Spec, hashed) plus what governs how many run and how they are
// replaced (not hashed).
type Service struct {
	Name string `json:"name"`
	Spec Spec   `json:"spec"`
	// Hash is the hex sha256 of Spec under HashVersion (see HashSpec).
	Hash string `json:"hash"`

	Replicas    int          `json:"replicas"`
	DependsOn   []Dependency `json:"depends_on,omitempty"` // sorted by Service
	Update      Rollout      `json:"update_config"`
	Rollback    Rollout      `json:"rollback_config"`
	PullPolicy  string       `json:"pull_policy"` // always | missing | never | build
	Build       *Build       `json:"build,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	// Targets reports whether the service's placement constraints select
	// the host the fleet was loaded for.
	Targets bool `json:"targets"`

	// Readiness is how long a replica without a healthcheck must keep
	// running before it counts as up (x-fleetd.readiness).
	Readiness time.Duration `json:"readiness"`
	// HealthTimeout bounds every wait for one replica to come up.
	HealthTimeout time.Duration `json:"health_timeout"`
	// PublicEnv lists environment keys whose values may be shown in plans
	// and messages; every other value is redacted.
	PublicEnv []string `json:"public_env,omitempty"`
	// ImageUpdates is what the agent does when the registry's digest
	// for the service's tag moves (x-fleetd.image_updates): ImageUpdates*.
	ImageUpdates string `json:"image_updates,omitempty"`
	// Secrets are the values of the fleet known to be secret: its
	// secrets' contents and the values under secret-looking keys
	// (environment but PublicEnv, labels, logging options, .env). They
	// never enter JSON or a log (SecretBytes); every output redacts them
	// (drift.SpecFields, redact.New).
	Secrets []SecretBytes `json:"-"`

	// PostStart and PreStop are the service's lifecycle hooks, in the
	// file's order (see Hook). They are not part of Spec, so a changed
	// hook recreates no container: it is run at the next start or stop.
	PostStart []Hook `json:"post_start,omitempty"`
	PreStop   []Hook `json:"pre_stop,omitempty"`

	// Swarm holds the deploy attributes only Swarm honours; set for the
	// services of a swarm fleet only.
	Swarm *SwarmDeploy `json:"swarm,omitempty"`

	// Ingress is set when the service's published TCP ports go through
	// fleetd's ingress (x-fleetd.ingress): the replicas publish nothing,
	// roll out start-first, and may be any number.
	Ingress *Ingress `json:"ingress,omitempty"`
}

// Ingress is how fleetd's ingress serves a service (x-fleetd.ingress).
type Ingress struct {
	// Ports are the service's published TCP ports, taken out of its
	// container spec: the ingress listens on Published (at HostIP) and
	// sends to the replicas' Target.
	Ports      []Port        `json:"ports"`
	Protocol   string        `json:"protocol"` // http (default) | tcp
	Balance    string        `json:"balance"`  // round_robin (default) | least_conn
	Drain      time.Duration `json:"drain"`    // how long an old replica keeps its requests (default 30 s)
	HealthPath string        `json:"health_path,omitempty"`
	// Rules let services share a listen port: an HTTP request goes to the
	// service whose host and path prefix it matches.
	Rules []IngressRule `json:"rules,omitempty"`
	// TLS, when set, makes the ingress terminate TLS on the service's
	// ports with this certificate and key (two of the fleet's secrets).
	TLS *IngressTLS `json:"tls,omitempty"`
}

// IngressTLS is a certificate chain and its private key, as secrets.
type IngressTLS struct {
	Cert FileRef `json:"cert"`
	Key  FileRef `json:"key"`
}

// IngressRule selects HTTP requests by host and path prefix; empty
// matches any.
type IngressRule struct {
	Host string `json:"host,omitempty"`
	Path string `json:"path,omitempty"`
}

// SwarmDeploy is what a swarm fleet's service says about its tasks beyond
// the container spec: Compose's deploy attributes that only Swarm honours.
type SwarmDeploy struct {
	Mode               string            `json:"mode"`                    // replicated | global
	EndpointMode       string            `json:"endpoint_mode,omitempty"` // vip | dnsrr; empty = Swarm's (vip)
	Preferences        []string          `json:"preferences,omitempty"`   // spread descriptors, in order
	MaxReplicasPerNode uint64            `json:"max_replicas_per_node,omitempty"`
	Labels             map[string]string `json:"labels,omitempty"` // deploy.labels: the service's own
	// Restart is the task restart condition: deploy.restart_policy's,
	// else restart: translated (no → none, always and unless-stopped →
	// any, on-failure[:N] → on-failure), else Swarm's default, any.
	Restart            string  `json:"restart"`
	RestartMaxAttempts *uint64 `json:"restart_max_attempts,omitempty"`
	// RestartDelay and RestartWindow are deploy.restart_policy's; nil
	// leaves Swarm's default.
	RestartDelay    *time.Duration `json:"restart_delay,omitempty"`
	RestartWindow   *time.Duration `json:"restart_window,omitempty"`
	ReserveNanoCPUs int64          `json:"reserve_nano_cpus,omitempty"` // deploy.resources.reservations.cpus
}

// Swarm deploy modes.
const (
	ModeReplicated = "replicated"
	ModeGlobal     = "global"
)

// Dependency is one depends_on entry.
type Dependency struct {
	Service   string `json:"service"`
	Condition string `json:"condition"` // service_started | service_healthy | service_completed_successfully
	Required  bool   `json:"required"`
	Restart   bool   `json:"restart,omitempty"`
}

// Dependency conditions, as Compose spells them.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// Rollout is a Swarm update_config / rollback_config with defaults applied.
type Rollout struct {
	Parallelism     int           `json:"parallelism"` // 0 = all at once
	Delay           time.Duration `json:"delay"`
	FailureAction   string        `json:"failure_action"` // rollback | pause | continue
	Monitor         time.Duration `json:"monitor"`
	MaxFailureRatio float64       `json:"max_failure_ratio"`
	Order           string        `json:"order"` // stop-first | start-first
}

// Rollout option values.
const (
	OrderStopFirst  = "stop-first"
	OrderStartFirst = "start-first"

	FailureRollback = "rollback"
	FailurePause    = "pause"
	FailureContinue = "continue"
)

// Build is a build: section. Context is the absolute directory on disk (inside
// the fleet's tree); ContextHash is the sha256 of its contents, Dockerfile and
// every option that changes the image (all but CacheFrom), and the image is
// tagged with it (Spec.Image). Secrets and SSH need BuildKit: the engine
// refuses them when it builds with the classic builder.
type Build struct {
	Context    string            `json:"-"`
	ContextDir string            `json:"context"` // relative to the repository path
	Dockerfile string            `json:"dockerfile"`
	Args       map[string]string `json:"args,omitempty"`
	Target     string            `json:"target,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	CacheFrom  []string          `json:"cache_from,omitempty"` // in the file's order
	Network    string            `json:"network,omitempty"`
	ExtraHosts []string          `json:"extra_hosts,omitempty"` // "host:ip", sorted
	ShmSize    int64             `json:"shm_size,omitempty"`    // bytes
	Platform   string            `json:"platform,omitempty"`    // os/arch[/variant]
	Secrets    []BuildSecret     `json:"secrets,omitempty"`     // sorted by ID
	SSH        []BuildSSH        `json:"ssh,omitempty"`         // sorted by ID
	// ContextHash stays last: it is computed from the fields above.
	ContextHash string `json:"context_hash"`
}

// Constraint is one deploy.placement.constraints entry in Swarm syntax:
// node.hostname == x, node.hostname != x, node.labels.k == v, node.labels.k != v.
type Constraint struct {
	Field string `json:"field"` // "node.hostname" or "node.labels.<key>"
	Op    string `json:"op"`    // == or !=
	Value string `json:"value"`
}

// Spec is everything a container is created from. It is hashed (Hash) and
// stored as JSON in the io.fleetd.spec label so that drift can name the
// fields that changed. It must not hold secret contents: secrets and configs
// are represented by a digest of their contents.
//
// Invariants that keep the hash stable: maps are encoded sorted by
// encoding/json; every slice whose order does not matter is sorted by the
// loader; defaults are applied so that spelling a default out does not
// change the hash.
type Spec struct {
	Image         string            `json:"image"`
	ContainerName string            `json:"container_name,omitempty"`
	Command       []string          `json:"command,omitempty"`
	Entrypoint    []string          `json:"entrypoint,omitempty"`
	Environment   map[string]string `json:"environment,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	User          string            `json:"user,omitempty"`
	WorkingDir    string            `json:"working_dir,omitempty"`
	Hostname      string            `json:"hostname,omitempty"`
	Domainname    string            `json:"domainname,omitempty"`

	// SecretEnv are the values of SOPS-encrypted env files: only their
	// keyed digests are encoded (see SecretValue, ContainerEnv).
	SecretEnv map[string]SecretValue `json:"secret_env,omitempty"`

	Ports       []Port              `json:"ports,omitempty"`  // sorted
	Expose      []string            `json:"expose,omitempty"` // sorted
	Mounts      []Mount             `json:"mounts,omitempty"` // sorted by Target
	Networks    []NetworkAttachment `json:"networks,omitempty"`
	NetworkMode string              `json:"network_mode,omitempty"` // host | none | container:<name>; empty = fleet networks

	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	Restart     string       `json:"restart"` // no | always | unless-stopped | on-failure[:N]
	Resources   Resources    `json:"resources"`

	Secrets []FileRef `json:"secrets,omitempty"` // sorted by Target
	Configs []FileRef `json:"configs,omitempty"` // sorted by Target

	StopSignal      string        `json:"stop_signal,omitempty"`
	StopGracePeriod time.Duration `json:"stop_grace_period"`

	Init        bool              `json:"init,omitempty"`
	Privileged  bool              `json:"privileged,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"`
	Tty         bool              `json:"tty,omitempty"`
	StdinOpen   bool              `json:"stdin_open,omitempty"`
	CapAdd      []string          `json:"cap_add,omitempty"`  // sorted
	CapDrop     []string          `json:"cap_drop,omitempty"` // sorted
	DNS         []string          `json:"dns,omitempty"`
	DNSSearch   []string          `json:"dns_search,omitempty"`
	ExtraHosts  []string          `json:"extra_hosts,omitempty"`  // sorted
	SecurityOpt []string          `json:"security_opt,omitempty"` // sorted
	Tmpfs       []string          `json:"tmpfs,omitempty"`        // sorted
	Devices     []string          `json:"devices,omitempty"`      // sorted
	GroupAdd    []string          `json:"group_add,omitempty"`    // sorted
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	Ulimits     map[string]Ulimit `json:"ulimits,omitempty"`
	Logging     *Logging          `json:"logging,omitempty"`
	ShmSize     int64             `json:"shm_size,omitempty"`

	// Namespaces, runtime and cgroup settings, as docker compose passes
	// them to the engine at create: a change recreates the container.
	Pid               string            `json:"pid,omitempty"` // host | container:<name>
	Ipc               string            `json:"ipc,omitempty"` // host | private | shareable | none | container:<name>
	Uts               string            `json:"uts,omitempty"` // host
	UsernsMode        string            `json:"userns_mode,omitempty"`
	Runtime           string            `json:"runtime,omitempty"`
	Cgroup            string            `json:"cgroup,omitempty"` // host | private
	CgroupParent      string            `json:"cgroup_parent,omitempty"`
	Isolation         string            `json:"isolation,omitempty"`
	CPUSet            string            `json:"cpuset,omitempty"`
	OomScoreAdj       int64             `json:"oom_score_adj,omitempty"`
	OomKillDisable    bool              `json:"oom_kill_disable,omitempty"`
	MemSwapLimit      int64             `json:"memswap_limit,omitempty"` // bytes; -1 unlimited
	DNSOpt            []string          `json:"dns_opt,omitempty"`
	StorageOpt        map[string]string `json:"storage_opt,omitempty"`
	DeviceCgroupRules []string          `json:"device_cgroup_rules,omitempty"` // sorted

	// More of what docker compose passes at create: a change recreates
	// the container.
	Platform       string            `json:"platform,omitempty"` // os/arch[/variant]
	MacAddress     string            `json:"mac_address,omitempty"`
	MemSwappiness  int64             `json:"mem_swappiness,omitempty"` // 1-100; 0: the engine's default, as compose reads it
	CPUCount       int64             `json:"cpu_count,omitempty"`
	CPUPercent     int64             `json:"cpu_percent,omitempty"`
	CPUPeriod      int64             `json:"cpu_period,omitempty"`
	CPUQuota       int64             `json:"cpu_quota,omitempty"`
	CPURTPeriod    int64             `json:"cpu_rt_period,omitempty"`
	CPURTRuntime   int64             `json:"cpu_rt_runtime,omitempty"`
	Blkio          *Blkio            `json:"blkio_config,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	DeviceRequests []DeviceRequest   `json:"device_requests,omitempty"` // gpus, then deploy.resources.reservations.devices
	// VolumesFrom is "service:<name>[:ro|:rw]" or "container:<name>[:ro|:rw]",
	// in the file's order. A service: reference here or in NetworkMode, Pid
	// or Ipc is resolved to a running container of that service when the
	// container is created (see PeerServices).
	VolumesFrom []string `json:"volumes_from,omitempty"`
}

// Blkio is blkio_config: weights and throttles per device path.
type Blkio struct {
	Weight          uint16            `json:"weight,omitempty"`
	WeightDevice    map[string]uint16 `json:"weight_device,omitempty"`
	DeviceReadBps   map[string]int64  `json:"device_read_bps,omitempty"`
	DeviceReadIOps  map[string]int64  `json:"device_read_iops,omitempty"`
	DeviceWriteBps  map[string]int64  `json:"device_write_bps,omitempty"`
	DeviceWriteIOps map[string]int64  `json:"device_write_iops,omitempty"`
}

// DeviceRequest asks the engine for devices through a driver (GPUs through
// the NVIDIA container toolkit): Docker's --gpus.
type DeviceRequest struct {
	Driver       string            `json:"driver,omitempty"`
	Count        int64             `json:"count,omitempty"` // -1: all
	DeviceIDs    []string          `json:"device_ids,omitempty"`
	Capabilities []string          `json:"capabilities,omitempty"` // sorted
	Options      map[string]string `json:"options,omitempty"`
}

// PeerPrefix starts a reference to another service of the fleet in
// network_mode, pid, ipc and volumes_from.
const PeerPrefix = "service:"

// PeerServices returns the services whose containers a spec joins
// (network_mode, pid, ipc service:<name>) or takes volumes from, sorted and
// without repeats.
func (s Spec) PeerServices() []string {
	var out []string
	for _, ref := range append([]string{s.NetworkMode, s.Pid, s.Ipc}, s.VolumesFrom...) {
		if name, ok := PeerName(ref); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PeerName returns the service a "service:<name>[:mode]" reference names.
func PeerName(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, PeerPrefix)
	if !ok || rest == "" {
		return "", false
	}
	name, _, _ := strings.Cut(rest, ":")
	return name, true
}

// Port is one published or unpublished port binding.
type Port struct {
	Target    uint32 `json:"target"`
	Published string `json:"published,omitempty"` // host port or range; empty = ephemeral
	HostIP    string `json:"host_ip,omitempty"`
	Protocol  string `json:"protocol"` // tcp | udp | sctp
	// Mode is Swarm's publish mode, ingress (the routing mesh) or host;
	// set for swarm fleets only.
	Mode string `json:"mode,omitempty"`
}

// Mount is a volume, bind or tmpfs mount. For a named volume Source is the
// Docker volume name; for a bind of a path inside the repository Source is
// "repo:<path relative to the repository path>" (resolved on disk at create
// time) and for a host path it is the absolute host path.
type Mount struct {
	Type     string `json:"type"` // volume | bind | tmpfs
	Source   string `json:"source,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// NetworkAttachment joins a container to a network (Docker name) with aliases.
// The service name is always an alias; the container name is added at create
// time.
type NetworkAttachment struct {
	Network     string   `json:"network"`
	Aliases     []string `json:"aliases,omitempty"` // sorted
	IPv4Address string   `json:"ipv4_address,omitempty"`
	IPv6Address string   `json:"ipv6_address,omitempty"`
	Priority    int      `json:"priority,omitempty"`
}

// Healthcheck is the service's healthcheck. Test nil with Disable false means
// "use the image's".
type Healthcheck struct {
	Disable       bool          `json:"disable,omitempty"`
	Test          []string      `json:"test,omitempty"`
	Interval      time.Duration `json:"interval,omitempty"`
	Timeout       time.Duration `json:"timeout,omitempty"`
	StartPeriod   time.Duration `json:"start_period,omitempty"`
	StartInterval time.Duration `json:"start_interval,omitempty"`
	Retries       int           `json:"retries,omitempty"`
}

// Resources are the limits `docker update` can change, among others.
type Resources struct {
	Memory            int64 `json:"memory,omitempty"`             // bytes
	MemoryReservation int64 `json:"memory_reservation,omitempty"` // bytes
	NanoCPUs          int64 `json:"nano_cpus,omitempty"`
	CPUShares         int64 `json:"cpu_shares,omitempty"`
	PidsLimit         int64 `json:"pids_limit,omitempty"`
}

// FileRef is a secret or config mounted into the container as a file.
// Digest is the sha256 of the file's contents, so a content change changes
// the hash while the contents themselves never enter a label, a plan or a
// log. Source is where the contents are read from at create time.
type FileRef struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Mode   uint32 `json:"mode,omitempty"`
	Digest string `json:"digest"`
	Source string `json:"-"`
	// Content holds the contents when there is no file to read them from
	// (a secret from environment:, a config from content:); Source is then
	// empty. It never enters JSON, a label or a log (see SecretBytes).
	Content SecretBytes `json:"-"`
	// External names a secret or config the swarm already holds
	// (external: true; swarm fleets only): fleetd neither reads, creates
	// nor removes it, and Digest is empty.
	External string `json:"external,omitempty"`
}

// Ulimit is one ulimit; Soft and Hard are equal for a single value.
type Ulimit struct {
	Soft int64 `json:"soft"`
	Hard int64 `json:"hard"`
}

// Logging is the service's logging driver.
type Logging struct {
	Driver  string            `json:"driver,omitempty"`
	Options map[string]string `json:"options,omitempty"`
}
