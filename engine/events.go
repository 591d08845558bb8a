package engine

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/fleets"
)

// Event is a lifecycle event of a managed container.
type Event struct {
	ContainerID string
	Name        string // container name at the time of the event
	Action      string // die, stop, start, destroy, oom, health_status, pause, unpause, update, rename
	// Detail qualifies Action: the health status for health_status
	// ("healthy", "unhealthy"), the exit code for die, the old name for
	// rename.
	Detail  string
	Fleet   string
	Service string
	Time    time.Time
}

// eventActions are the container actions that can mean drift.
var eventActions = []string{
	"die", "stop", "start", "destroy", "oom", "health_status",
	"pause", "unpause", "update", "rename",
}

// Events subscribes to lifecycle events of managed containers. Both
// channels close when ctx ends or the stream fails; a failure is sent on the
// error channel first (an ended ctx is not a failure). Subscribe before
// listing so that nothing falls in between, and resync fully after a
// reconnect.
func (d *Docker) Events(ctx context.Context) (<-chan Event, <-chan error) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", fleets.LabelManaged+"=true"),
	)
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
				if !d.isManaged(m.Actor.Attributes) {
					continue // another fleetd instance's container
				}
				select {
				case out <- eventFrom(m):
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if ctx.Err() == nil && err != nil {
					outErr <- err
				}
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, outErr
}

func eventFrom(m events.Message) Event {
	attrs := m.Actor.Attributes
	action, detail, _ := strings.Cut(string(m.Action), ":")
	switch action {
	case "die":
		detail = attrs["exitCode"]
	case "rename":
		detail = strings.TrimPrefix(attrs["oldName"], "/")
	}
	return Event{
		ContainerID: m.Actor.ID,
		Name:        attrs["name"],
		Action:      action,
		Detail:      strings.TrimSpace(detail),
		Fleet:       attrs[fleets.LabelFleet],
		Service:     attrs[fleets.LabelService],
		Time:        time.Unix(0, m.TimeNano).UTC(),
	}
}
