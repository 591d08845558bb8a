package drift

// Kind is the kind of a drift item.
type Kind string

// Drift kinds.
const (
	Missing    Kind = "missing"     // a wanted replica has no container
	Extra      Kind = "extra"       // a replica beyond the wanted count (scale down)
	SpecChange Kind = "spec"        // the spec hash differs: the spec changed in Git
	Image      Kind = "image"       // the tag now resolves to another image
	Stopped    Kind = "stopped"     // created, exited or dead
	Paused     Kind = "paused"      // paused
	Unhealthy  Kind = "unhealthy"   // health check failing
	Restarting Kind = "restarting"  // Docker is restarting it
	Modified   Kind = "modified"    // changed out of band: docker update, rename, network disconnect
	Orphan     Kind = "orphan"      // managed, but its service or fleet left the spec
	Conflict   Kind = "conflict"    // an unmanaged object holds a name fleetd needs
	Tasks      Kind = "tasks"       // a swarm service runs fewer tasks than it wants
	RollingOut Kind = "rolling-out" // Swarm's updater is replacing a service's tasks
)

// Item is one drift finding.
type Item struct {
	Fleet     string `json:"fleet"`
	Service   string `json:"service"`
	Container string `json:"container"` // name; for missing, the name it will get; for a network conflict, the network name; for a swarm object, its name
	// Object is the kind of swarm object the item is about (service,
	// network, secret, config); empty for a container.
	Object      string  `json:"object,omitempty"`
	ContainerID string  `json:"container_id,omitempty"`
	Slot        int     `json:"slot,omitempty"`
	Kind        Kind    `json:"kind"`
	Fields      []Field `json:"fields,omitempty"`
	Detail      string  `json:"detail,omitempty"`
}

// Field is one field that differs, with the wanted and the actual value as
// text. Secret values are shown as Redacted.
type Field struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Have  string `json:"have"`
}

// Redacted stands in for a secret value.
const Redacted = "<redacted>"
