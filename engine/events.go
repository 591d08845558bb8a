package engine

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/fleets"
)

// Event is an engine event that may concern the agent: a lifecycle event
// of any container (Managed when it is this agent's), the creation or
// removal of a network or volume, or an image arriving (pull, tag, load,
// import).
type Event struct {
	Type        string // container | network | volume | image | service | node (the last two on a swarm manager)
	ContainerID string // containers only
	Name        string // container, network or volume name at the time of the event; image reference
	Action      string // die, stop, start, destroy, oom, health_status, pause, unpause, update, rename | destroy | pull, tag, load, import
	// Detail qualifies Action: the health status for health_status
	// ("healthy", "unhealthy"), the exit code for die, the old name for
	// rename.
	Detail string
	// Managed is set for a container of this agent (managed by fleetd and
	// of its instance); Fleet and Service are its labels.
	Managed bool
	Fleet   string
	Service string
	Time    time.Time
}

// eventActions are the actions that can mean drift (for the agent's own
// containers) or free what a stalled fleet waits for (another object's
// removal or rename, an image's arrival).
var eventActions = []string{
	"die", "stop", "start", "destroy", "oom", "health_status",
	"pause", "unpause", "update", "rename",
	"pull", "tag", "load", "import", "create", "remove",
}

// Events subscribes to the events the agent follows. Both channels close
// when ctx ends or the stream fails; a failure is sent on the error channel
// first (an ended ctx is not a failure). Subscribe before listing so that
// nothing falls in between, and resync fully after a reconnect.
func (d *Docker) Events(ctx context.Context) (<-chan Event, <-chan error) {
	args := filters.NewArgs()
	for _, t := range []events.Type{events.ContainerEventType, events.NetworkEventType, events.VolumeEventType, events.ImageEventType,
		events.ServiceEventType, events.NodeEventType} { // the last two only come from a swarm manager
		args.Add("type", string(t))
	}
	for _, a := range eventActions {
		args.Add("event", a)
	}
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: args})
	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(outErr)
		for {
			select {
			case m := <-msgs:
				ev, ok := d.eventFrom(m)
				if !ok {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if ctx.Err() == nil && err != nil {
					outErr <- classify(err)
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, outErr
}

// eventFrom reads a message; it drops what cannot concern the agent: the
// creation of a container (its start follows), network and volume events
// other than a creation or a removal.
func (d *Docker) eventFrom(m events.Message) (Event, bool) {
	attrs := m.Actor.Attributes
	action, detail, _ := strings.Cut(string(m.Action), ":")
	ev := Event{Type: string(m.Type), Name: attrs["name"], Action: action, Time: time.Unix(0, m.TimeNano).UTC()}
	switch m.Type {
	case events.ContainerEventType:
		if action == "create" {
			return Event{}, false
		}
		ev.ContainerID = m.Actor.ID
		switch action {
		case "die":
			detail = attrs["exitCode"]
		case "rename":
			detail = strings.TrimPrefix(attrs["oldName"], "/")
		}
		ev.Detail = strings.TrimSpace(detail)
		if d.isManaged(attrs) {
			ev.Managed, ev.Fleet, ev.Service = true, attrs[fleets.LabelFleet], attrs[fleets.LabelService]
		}
	case events.NetworkEventType, events.VolumeEventType:
		if action != "destroy" && action != "create" {
			return Event{}, false
		}
		if ev.Name == "" {
			ev.Name = m.Actor.ID // a volume's ID is its name
		}
	case events.ImageEventType:
		if ev.Name == "" {
			ev.Name = m.Actor.ID
		}
	case events.ServiceEventType, events.NodeEventType:
		// A swarm service changed (by hand, or by a rollout) or a node
		// joined, left or changed: the swarm fleets look again.
		if action != "create" && action != "update" && action != "remove" {
			return Event{}, false
		}
		if ev.Name == "" {
			ev.Name = m.Actor.ID
		}
	default:
		return Event{}, false
	}
	return ev, true
}
