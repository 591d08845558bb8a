package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/fleets"
)

// Swarm drains a node stop-first: its tasks stop, then start elsewhere.
// That can take more tasks down at once than the service's update policy
// lets a rollout take (none for start-first, parallelism for stop-first).
// So before a drain from Git, fleetd surges such services: it pauses the
// nodes to drain (no new task goes there, so the surge lands elsewhere),
// scales the services up by the difference, waits until the tasks off the
// draining nodes are enough, drains, waits for the replacements, and
// scales them back.

// TaskPlace is one task the swarm means to run: its service, its node, and
// whether it runs yet.
type TaskPlace struct {
	Service string // service ID
	Node    string // node ID
	Running bool
}

// Surge is one service to scale up for a drain.
type Surge struct {
	ID, Name string
	// Replicas is the service's count before the surge, and what it goes
	// back to.
	Replicas uint64
	// Extra is how many tasks are added during the drain.
	Extra uint64
	// Floor is how many tasks must run off the draining nodes before the
	// drain: the count minus what the update policy lets go down at once.
	Floor uint64
}

// Draining returns the IDs of the nodes the updates set to drain that do
// not drain yet.
func Draining(ups []NodeUpdate) map[string]bool {
	out := map[string]bool{}
	for _, u := range ups {
		if u.Spec.Availability == swarm.NodeAvailabilityDrain && u.Node.Spec.Availability != swarm.NodeAvailabilityDrain {
			out[u.Node.ID] = true
		}
	}
	return out
}

// allowedDown is how many tasks of a service its update policy lets go
// down at once: none start-first, parallelism stop-first (parallelism 0
// is all at once; no update_config is Swarm's default, 1 stop-first).
func allowedDown(u *swarm.UpdateConfig, replicas uint64) uint64 {
	if u == nil {
		return 1 // Swarm's default: parallelism 1, stop-first
	}
	if u.Order == swarm.UpdateOrderStartFirst {
		return 0
	}
	if u.Parallelism == 0 {
		return replicas
	}
	return u.Parallelism
}

// PlanSurges decides which services to surge before draining the nodes
// in draining: the replicated services fleetd owns (services) that run
// more tasks there than their update policy lets go down at once. Global
// services are not surged (a drained node runs none of their tasks, by
// design). It is pure.
func PlanSurges(draining map[string]bool, services []swarm.Service, tasks []TaskPlace) []Surge {
	var out []Surge
	for _, s := range services {
		rep := s.Spec.Mode.Replicated
		if rep == nil || rep.Replicas == nil {
			continue
		}
		var on uint64
		for _, t := range tasks {
			if t.Service == s.ID && t.Running && draining[t.Node] {
				on++
			}
		}
		allowed := allowedDown(s.Spec.UpdateConfig, *rep.Replicas)
		if on <= allowed {
			continue
		}
		out = append(out, Surge{ID: s.ID, Name: s.Spec.Name, Replicas: *rep.Replicas, Extra: on - allowed,
			Floor: *rep.Replicas - min(allowed, *rep.Replicas)})
	}
	slices.SortFunc(out, func(a, b Surge) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// runningOff counts a service's running tasks off the nodes in draining.
func runningOff(service string, tasks []TaskPlace, draining map[string]bool) uint64 {
	var n uint64
	for _, t := range tasks {
		if t.Service == service && t.Running && !draining[t.Node] {
			n++
		}
	}
	return n
}

// Reached reports whether every surge runs at least need(s) tasks off the
// draining nodes. It is pure.
func Reached(surges []Surge, tasks []TaskPlace, draining map[string]bool, need func(Surge) uint64) bool {
	for _, s := range surges {
		if runningOff(s.ID, tasks, draining) < need(s) {
			return false
		}
	}
	return true
}

// drain sets the node updates, surging first the services a drain among
// them would take below their update policy, and scales those back once
// the drained tasks run elsewhere. A surge that does not reach its count
// within timeout lets the drain go ahead anyway (Git asked for it; a node
// drained is often one in trouble), and says so in the returned note.
func (d *Docker) drain(ctx context.Context, ups []NodeUpdate, leading func() bool, timeout time.Duration) (note string, err error) {
	draining := Draining(ups)
	var surges []Surge
	if len(draining) > 0 {
		services, tasks, err := d.placed(ctx)
		if err != nil {
			return "", err
		}
		surges = PlanSurges(draining, services, tasks)
	}
	var notes []string
	if len(surges) > 0 {
		if ups, err = d.pause(ctx, ups, draining, leading); err != nil {
			return "", err
		}
	}
	for _, s := range surges {
		if err := d.scale(ctx, s.ID, s.Replicas+s.Extra, leading); err != nil {
			return "", fmt.Errorf("surge %s before the drain: %w", s.Name, err)
		}
	}
	// Whatever happens next, the surged services go back to their count.
	defer func() {
		for _, s := range surges {
			if e := d.scale(context.WithoutCancel(ctx), s.ID, s.Replicas, leading); e != nil && err == nil {
				err = fmt.Errorf("scale %s back after the drain: %w", s.Name, e)
			}
		}
	}()
	if len(surges) > 0 {
		if !d.waitPlaced(ctx, surges, draining, func(s Surge) uint64 { return s.Floor }, timeout) {
			notes = append(notes, "the surge before the drain did not reach its count in time")
		}
	}
	if err := d.updateNodes(ctx, ups, leading); err != nil {
		return "", err
	}
	if len(surges) > 0 {
		if !d.waitPlaced(ctx, surges, draining, func(s Surge) uint64 { return s.Replicas + s.Extra }, timeout) {
			notes = append(notes, "the drained tasks did not all run elsewhere in time")
		}
		var names []string
		for _, s := range surges {
			names = append(names, fmt.Sprintf("%s +%d", s.Name, s.Extra))
		}
		notes = append([]string{"surged " + strings.Join(names, ", ")}, notes...)
	}
	return strings.Join(notes, "; "), nil
}

// pause sets the nodes about to drain to pause, so that the surge's new
// tasks go to the other nodes, and returns the updates with the nodes'
// new versions.
func (d *Docker) pause(ctx context.Context, ups []NodeUpdate, draining map[string]bool, leading func() bool) (_ []NodeUpdate, err error) {
	defer classified(&err)
	for _, u := range ups {
		if !draining[u.Node.ID] {
			continue
		}
		if !leading() {
			return nil, ErrNotLeading
		}
		spec := u.Node.Spec
		spec.Availability = swarm.NodeAvailabilityPause
		if err := d.cli.NodeUpdate(ctx, u.Node.ID, swarm.Version{Index: u.Node.Version}, spec); err != nil {
			return nil, fmt.Errorf("pause node %s before the drain: %w", u.Node.Hostname, err)
		}
	}
	nodes, err := d.nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(ups)
	for i := range out {
		for _, n := range nodes {
			if n.ID == out[i].Node.ID {
				out[i].Node.Version = n.Version
			}
		}
	}
	return out, nil
}

// placed lists the replicated services this instance owns (of every
// fleet) and their tasks meant to run.
func (d *Docker) placed(ctx context.Context) (_ []swarm.Service, _ []TaskPlace, err error) {
	defer classified(&err)
	list, err := d.owned(ctx)
	if err != nil {
		return nil, nil, err
	}
	tasks, err := d.tasks(ctx)
	return list, tasks, err
}

// tasks lists the swarm's tasks meant to run, with their node and state.
func (d *Docker) tasks(ctx context.Context) (_ []TaskPlace, err error) {
	defer classified(&err)
	tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var out []TaskPlace
	for _, t := range tasks {
		out = append(out, TaskPlace{Service: t.ServiceID, Node: t.NodeID, Running: t.Status.State == swarm.TaskStateRunning})
	}
	return out, nil
}

// waitPlaced polls the tasks until Reached, or timeout passes (false).
func (d *Docker) waitPlaced(ctx context.Context, surges []Surge, draining map[string]bool, need func(Surge) uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if tasks, err := d.tasks(ctx); err == nil && Reached(surges, tasks, draining, need) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// scale sets a replicated service's count, sending the version it read.
func (d *Docker) scale(ctx context.Context, id string, replicas uint64, leading func() bool) (err error) {
	defer classified(&err)
	if !leading() {
		return ErrNotLeading
	}
	s, _, err := d.cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect service %s: %w", id, err)
	}
	if s.Spec.Mode.Replicated == nil {
		return nil
	}
	spec := s.Spec
	spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &replicas}
	_, err = d.cli.ServiceUpdate(ctx, id, s.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
	return err
}

// owned lists the swarm services this instance owns, of every fleet.
func (d *Docker) owned(ctx context.Context) ([]swarm.Service, error) {
	list, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", fleets.LabelManaged+"=true"))})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return slices.DeleteFunc(list, func(s swarm.Service) bool { return !d.owns(s.Spec.Labels) }), nil
}
