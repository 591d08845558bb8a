package drift

import (
	"fmt"
	"strconv"

	"github.com/fleetd/fleetd/fleets"
)

// ContainerName is the name fleetd gives replica slot of svc in fleet:
// Compose's <fleet>-<service>-<slot>, or the service's container_name (which
// the loader allows only with one replica).
func ContainerName(fleetName string, svc fleets.Service, slot int) string {
	if svc.Spec.ContainerName != "" {
		return svc.Spec.ContainerName
	}
	return fleetName + "-" + svc.Name + "-" + strconv.Itoa(slot)
}

// InSync reports whether a Diff found nothing to do.
func InSync(items []Item) bool { return len(items) == 0 }

// Managed reports whether the container carries io.fleetd.managed=true. Only
// such containers are ever stopped, removed or changed by fleetd.
func (c Container) Managed() bool { return c.Labels[fleets.LabelManaged] == "true" }

// Managed reports whether the network carries io.fleetd.managed=true.
func (n Network) Managed() bool { return n.Labels[fleets.LabelManaged] == "true" }

// Owner is the replica a managed container claims by its labels.
type Owner struct {
	Fleet   string
	Service string
	Slot    int // 0 when the slot label is not a replica number
}

// OwnerOf reads the fleet, service and slot labels of a managed container.
// The error says which label is missing or malformed; Owner holds whatever
// could be read, so a container with a bad slot still names its fleet.
func OwnerOf(c Container) (Owner, error) {
	o := Owner{Fleet: c.Labels[fleets.LabelFleet], Service: c.Labels[fleets.LabelService]}
	switch {
	case o.Fleet == "":
		return o, fmt.Errorf("label %s is missing", fleets.LabelFleet)
	case o.Service == "":
		return o, fmt.Errorf("label %s is missing", fleets.LabelService)
	}
	raw := c.Labels[fleets.LabelSlot]
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return o, fmt.Errorf("label %s=%q is not a replica number", fleets.LabelSlot, raw)
	}
	o.Slot = n
	return o, nil
}
