package engine

import (
	"context"

	"github.com/fleetd/fleetd/drift"
)

// A container's list entry can be older than its events: the engine
// sends a container's die event before it has recorded the exit where
// the list reads it (on a slow storage driver, tens of milliseconds
// before), while an inspect waits for the container itself. A targeted
// observation (drift.ObserveOptions.Fleet), which follows such an event
// at once, therefore inspects each container of its fleet, and the state
// an inspect reads wins over the list's.

// inspectFresh inspects ctr and takes its state and health from the
// inspect.
func (d *Docker) inspectFresh(ctx context.Context, ctr *drift.Container) error {
	resp, err := d.cli.ContainerInspect(ctx, ctr.ID)
	if err != nil {
		return err
	}
	ctr.Inspected = inspectedFrom(resp)
	if st := resp.State; st != nil && st.Status != "" && st.Status != ctr.State {
		ctr.State, ctr.Status = st.Status, "" // Status is the list's rendering of the older state
		ctr.Health = ""
		if st.Health != nil && st.Health.Status != "none" {
			ctr.Health = st.Health.Status
		}
	}
	return nil
}
