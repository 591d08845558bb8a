package fleets

import (
	"github.com/compose-spec/compose-go/v2/types"
)

// extensionKey is fleetd's Compose extension, at the top level (fleet
// placement and policy) and in a service (readiness and redaction).
const extensionKey = "x-fleetd"

// xFleetd is the decoded x-fleetd extension. compose-go registers known
// extensions by name, not by position, so one type carries the keys of both
// levels; checkExtensionKeys reports a key used at the wrong level.
type xFleetd struct {
	// Fleet level.
	Hosts    []string          `yaml:"hosts,omitempty"`
	Labels   map[string]string `yaml:"labels,omitempty"`
	SelfHeal *bool             `yaml:"self_heal,omitempty"`
	Prune    *bool             `yaml:"prune,omitempty"`
	Suspend  *bool             `yaml:"suspend,omitempty"`
	Notify   *xNotify          `yaml:"notify,omitempty"`
	Engine   string            `yaml:"engine,omitempty"`

	// Service level.
	Readiness     *types.Duration `yaml:"readiness,omitempty"`
	HealthTimeout *types.Duration `yaml:"health_timeout,omitempty"`
	PublicEnv     []string        `yaml:"public_env,omitempty"`
	ImageUpdates  string          `yaml:"image_updates,omitempty"`
	// Ingress is true or a map (see ingress.go).
	Ingress any `yaml:"ingress,omitempty"`
}

type xNotify struct {
	SlackChannel string `yaml:"slack_channel,omitempty"`
}

// Keys x-fleetd accepts at each level.
var (
	fleetExtensionKeys   = []string{"hosts", "labels", "self_heal", "prune", "suspend", "notify", "engine"}
	serviceExtensionKeys = []string{"readiness", "health_timeout", "public_env", "ingress", "image_updates"}
	notifyExtensionKeys  = []string{"slack_channel"}
)

// extension returns the decoded x-fleetd of a project or service, or the
// zero value when there is none.
func extension(ext types.Extensions) xFleetd {
	switch v := ext[extensionKey].(type) {
	case xFleetd:
		return v
	case *xFleetd:
		if v != nil {
			return *v
		}
	}
	return xFleetd{}
}
