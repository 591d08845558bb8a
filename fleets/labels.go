package fleets

// Labels fleetd puts on every object it creates. An object without
// LabelManaged=true is never stopped, removed or changed by fleetd.
const (
	LabelPrefix      = "io.fleetd."
	LabelManaged     = "io.fleetd.managed"      // "true"
	LabelFleet       = "io.fleetd.fleet"        // fleet name
	LabelService     = "io.fleetd.service"      // service name
	LabelSlot        = "io.fleetd.slot"         // replica number, from 1
	LabelSpecHash    = "io.fleetd.spec-hash"    // Service.Hash
	LabelHashVersion = "io.fleetd.hash-version" // HashVersion the hash was computed with
	LabelSpec        = "io.fleetd.spec"         // JSON of Spec, for field-level drift
	LabelImageID     = "io.fleetd.image-id"     // image ID the container was created from
	LabelRevision    = "io.fleetd.revision"     // Git commit, informational
	LabelReplaces    = "io.fleetd.replaces"     // name of the container a mid-rollout container replaces
	LabelInstance    = "io.fleetd.instance"     // the fleetd agent that owns the object (see DefaultInstance)
	LabelPeers       = "io.fleetd.peers"        // containers joined at create, "service=<id>,…" (network_mode, pid, ipc service:, volumes_from)
	LabelPreStop     = "io.fleetd.pre-stop"     // HooksDigest of the pre_stop hooks the container was created with
	LabelEngine      = "io.fleetd.engine"       // "swarm" on the objects of swarm fleets (services, overlay networks, secrets, configs, volumes); "ingress" on the ingress container

	// Compose's own labels, so that `docker compose ls/ps` show fleetd's
	// containers as the stacks they are.
	LabelComposeProject    = "com.docker.compose.project"
	LabelComposeService    = "com.docker.compose.service"
	LabelComposeNumber     = "com.docker.compose.container-number"
	LabelComposeOneoff     = "com.docker.compose.oneoff"
	LabelComposeNetwork    = "com.docker.compose.network"
	LabelComposeVolume     = "com.docker.compose.volume"
	LabelComposeConfigHash = "com.docker.compose.config-hash"
)

// DefaultInstance names the agent of a host that runs one fleetd. Objects
// without an io.fleetd.instance label belong to it.
const DefaultInstance = "default"

// OwnedBy reports whether an object with these labels is managed by the
// fleetd agent named instance. Objects of another agent on the same host (a
// second repository, or a test run) are as untouchable as unmanaged ones.
func OwnedBy(labels map[string]string, instance string) bool {
	if labels[LabelManaged] != "true" {
		return false
	}
	got := labels[LabelInstance]
	if got == "" {
		got = DefaultInstance
	}
	return got == instance
}

// Instance is one replica fleetd wants: the container's name, its complete
// label set and the spec it is created from. It is what the engine's
// CreateContainer takes.
type Instance struct {
	Name    string            `json:"name"`
	Fleet   string            `json:"fleet"`
	Service string            `json:"service"`
	Slot    int               `json:"slot"`
	Spec    Spec              `json:"spec"`
	Labels  map[string]string `json:"labels"`
	// RepoDir is the absolute directory that "repo:" bind sources are
	// relative to; CheckoutDir the repository checkout it is part of,
	// which a "repo:../…" source must stay in (RepoDir when empty).
	RepoDir     string `json:"-"`
	CheckoutDir string `json:"-"`
}
