package enginetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// CreateContainer creates inst, stopped, attached to its spec's networks.
// The name must be free (held by an unmanaged container: ErrConflict, a
// Permanent Conflict naming the container), the image present locally
// (ErrNotFound, a Permanent ImageNotFound naming the image) and the
// networks existing (ErrNotFound, unclassified: the next pass ensures them
// again); named volumes that do not exist are created unlabelled, as
// Docker does.
func (f *Fake) CreateContainer(ctx context.Context, inst fleets.Instance) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "CreateContainer", inst.Name); err != nil {
		return "", f.done(fmt.Errorf("create container %s: %w", inst.Name, err))
	}
	if err := f.checkCreate(inst); err != nil {
		return "", f.done(fmt.Errorf("create container %s: %w", inst.Name, err))
	}
	spec := inst.Spec
	for _, m := range spec.Mounts {
		if m.Type == "volume" && m.Source != "" && f.volumes[m.Source] == nil {
			f.volumes[m.Source] = &drift.Volume{Name: m.Source, Labels: map[string]string{}}
		}
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, inst.Labels)
	x := &ctr{spec: spec, c: drift.Container{
		ID:      f.newID("container", inst.Name),
		Name:    inst.Name,
		Image:   spec.Image,
		ImageID: f.images[spec.Image],
		State:   "created",
		Labels:  labels,
		Created: f.tick(),
	}}
	if spec.NetworkMode == "" {
		for _, att := range spec.Networks {
			x.c.Networks = append(x.c.Networks, att.Network)
		}
		slices.Sort(x.c.Networks)
	}
	applyResources(&x.in, spec)
	f.containers[x.c.ID] = x
	return x.c.ID, nil
}

func (f *Fake) checkCreate(inst fleets.Instance) error {
	if err := f.nameFree(inst.Name); err != nil {
		return err
	}
	if _, ok := f.images[inst.Spec.Image]; !ok {
		return fault.New(fault.Permanent, fault.ImageNotFound, inst.Spec.Image, fmt.Errorf("image %s: %w", inst.Spec.Image, ErrNotFound))
	}
	if inst.Spec.NetworkMode != "" {
		return nil
	}
	for _, att := range inst.Spec.Networks {
		if f.networks[att.Network] == nil {
			return fmt.Errorf("network %s: %w", att.Network, ErrNotFound)
		}
	}
	return nil
}

// nameFree checks that no container holds name: one that is not managed is
// a Permanent Conflict naming it (ErrConflict), a managed one an
// unclassified error, as engine.Docker answers.
func (f *Fake) nameFree(name string) error {
	holder := f.byName(name)
	switch {
	case holder == nil:
		return nil
	case !managed(holder.c.Labels):
		return fault.New(fault.Permanent, fault.Conflict, name, fmt.Errorf("container %s: %w", name, ErrConflict))
	}
	return fmt.Errorf("name %s is already in use by container %s", name, shortID(holder.c.ID))
}

// StartContainer starts a created or stopped managed container. Starting
// a running one is a no-op; a paused one must be unpaused. A host port it
// publishes that is taken (see publishedPortsFree) fails the start, and the
// container stays as it was.
func (f *Fake) StartContainer(ctx context.Context, id string) error {
	return f.withManaged(ctx, "StartContainer", "start", id, func(x *ctr) error {
		switch x.c.State {
		case "running":
			return nil
		case "paused":
			return errors.New("cannot start a paused container, try unpause instead")
		}
		return f.start(x)
	})
}

// StopContainer stops a managed container; stopping a stopped one is a
// no-op.
func (f *Fake) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	return f.withManaged(ctx, "StopContainer", "stop", id, func(x *ctr) error {
		f.stop(x, 0)
		return nil
	})
}

// RestartContainer stops and starts a managed container; a taken host port
// leaves it stopped, as Docker does.
func (f *Fake) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	return f.withManaged(ctx, "RestartContainer", "restart", id, func(x *ctr) error {
		f.stop(x, 0)
		return f.start(x)
	})
}

// RemoveContainer removes a stopped managed container; a running, paused
// or restarting one is refused, as `docker rm` without force does. A
// container that is already gone is not an error.
func (f *Fake) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lookup(id) == nil {
		if err := f.call(ctx, "RemoveContainer", id); err != nil {
			return f.done(fmt.Errorf("remove container %s: %w", id, err))
		}
		return nil
	}
	return f.managedOp(ctx, "RemoveContainer", "remove", id, func(x *ctr) error {
		if isUp(x.c.State) {
			return fmt.Errorf("cannot remove a %s container: stop it first", x.c.State)
		}
		delete(f.containers, x.c.ID)
		return nil
	})
}

// RenameContainer renames a managed container. A name held by an unmanaged
// container is ErrConflict (a Permanent Conflict naming it), by a managed
// one an error.
func (f *Fake) RenameContainer(ctx context.Context, id, name string) error {
	return f.withManaged(ctx, "RenameContainer", "rename", id, func(x *ctr) error {
		if err := f.nameFree(name); err != nil {
			return err
		}
		x.c.Name = name
		return nil
	})
}

// UnpauseContainer unpauses a paused managed container.
func (f *Fake) UnpauseContainer(ctx context.Context, id string) error {
	return f.withManaged(ctx, "UnpauseContainer", "unpause", id, func(x *ctr) error {
		if x.c.State != "paused" {
			return fmt.Errorf("container %s is not paused", x.c.Name)
		}
		x.c.State = "running"
		return nil
	})
}

// ConnectNetwork attaches a managed container to an existing network it is
// not attached to.
func (f *Fake) ConnectNetwork(ctx context.Context, id string, att fleets.NetworkAttachment, containerName string) error {
	return f.withManaged(ctx, "ConnectNetwork", "connect", id, func(x *ctr) error {
		switch {
		case f.networks[att.Network] == nil:
			return fmt.Errorf("network %s: %w", att.Network, ErrNotFound)
		case slices.Contains(x.c.Networks, att.Network):
			return fmt.Errorf("network %s: endpoint with name %s already exists", att.Network, x.c.Name)
		}
		x.c.Networks = append(x.c.Networks, att.Network)
		slices.Sort(x.c.Networks)
		return nil
	})
}

// UpdateResources sets the limits and restart policy to the spec's. Like
// `docker update`, it cannot reset a set limit to unlimited
// (ErrUpdateUnsupported).
func (f *Fake) UpdateResources(ctx context.Context, id string, spec fleets.Spec) error {
	return f.withManaged(ctx, "UpdateResources", "update", id, func(x *ctr) error {
		want, have := spec.Resources, x.in
		for _, v := range [][2]int64{
			{want.Memory, have.Memory}, {want.MemoryReservation, have.MemoryReservation},
			{want.NanoCPUs, have.NanoCPUs}, {want.CPUShares, have.CPUShares},
		} {
			if v[0] == 0 && v[1] != 0 {
				return fmt.Errorf("reset a limit to unlimited: %w", ErrUpdateUnsupported)
			}
		}
		applyResources(&x.in, spec)
		return nil
	})
}

// withManaged logs op and runs fn on the managed container id (an ID or a
// name) under the lock; verb names the operation in errors.
func (f *Fake) withManaged(ctx context.Context, op, verb, id string, fn func(*ctr) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.managedOp(ctx, op, verb, id, fn)
}

// managedOp is withManaged for a caller that holds the lock.
func (f *Fake) managedOp(ctx context.Context, op, verb, id string, fn func(*ctr) error) error {
	x := f.lookup(id)
	targets := []string{id}
	if x != nil {
		targets = []string{x.c.Name, x.c.ID}
	}
	if err := f.call(ctx, op, targets...); err != nil {
		return f.done(fmt.Errorf("%s container %s: %w", verb, targets[0], err))
	}
	switch {
	case x == nil:
		return f.done(fmt.Errorf("%s container %s: %w", verb, id, ErrNotFound))
	case !managed(x.c.Labels):
		return f.done(fault.New(fault.Permanent, fault.NotManaged, x.c.Name, fmt.Errorf("%s container %s: %w", verb, x.c.Name, ErrNotManaged)))
	}
	name := x.c.Name
	if err := fn(x); err != nil {
		return f.done(fmt.Errorf("%s container %s: %w", verb, name, err))
	}
	return nil
}

// start runs x: healthy at once when it has a healthcheck, then the OnStart
// hook. A taken host port fails it and changes nothing.
func (f *Fake) start(x *ctr) error {
	if err := f.publishedPortsFree(x); err != nil {
		return err
	}
	x.c.State, x.c.Health = "running", ""
	if hc := x.spec.Healthcheck; hc != nil && !hc.Disable && len(hc.Test) > 0 {
		x.c.Health = "healthy"
	}
	x.in.ExitCode, x.in.OOMKilled, x.in.HealthLog = 0, false, ""
	x.in.StartedAt = f.tick()
	if f.onStart != nil {
		f.onStart(&x.c)
	}
	return nil
}

// stop ends a running, paused or restarting container with exitCode.
func (f *Fake) stop(x *ctr, exitCode int) {
	if !isUp(x.c.State) {
		return
	}
	x.c.State, x.c.Health = "exited", ""
	x.in.ExitCode = exitCode
	x.in.FinishedAt = f.tick()
}

func isUp(state string) bool {
	return state == "running" || state == "paused" || state == "restarting"
}

func applyResources(in *drift.Inspected, spec fleets.Spec) {
	r := spec.Resources
	in.Memory, in.MemoryReservation, in.NanoCPUs = r.Memory, r.MemoryReservation, r.NanoCPUs
	in.CPUShares, in.PidsLimit = r.CPUShares, r.PidsLimit
	in.RestartPolicy = spec.Restart
	if in.RestartPolicy == "" {
		in.RestartPolicy = "no"
	}
}

// lookup finds a container by ID or name, as the Docker API does.
func (f *Fake) lookup(idOrName string) *ctr {
	if x := f.containers[idOrName]; x != nil {
		return x
	}
	return f.byName(idOrName)
}

func (f *Fake) byName(name string) *ctr {
	for _, x := range f.containers {
		if x.c.Name == name {
			return x
		}
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
