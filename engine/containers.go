package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// CreateContainer creates inst (it does not start it): it connects every
// network of the spec with its aliases plus the container name, and copies
// the secrets and configs in, but for decrypted ones, which it
// bind-mounts from the host's tmpfs (see secretMounts). If any step after
// create fails, the new container (and its tmpfs files) is removed so that
// a retry starts clean. A name held by an unmanaged container is a
// *ConflictError.
func (d *Docker) CreateContainer(ctx context.Context, inst fleets.Instance) (_ string, err error) {
	defer classified(&err)
	inst.Labels = maps.Clone(inst.Labels)
	inst.Labels[fleets.LabelInstance] = d.instance
	if names := inst.Spec.PeerServices(); len(names) > 0 {
		peers, err := d.peers(ctx, inst.Fleet, names)
		if err != nil {
			return "", fmt.Errorf("create container %s: %w", inst.Name, err)
		}
		if inst.Spec, err = withPeers(inst.Spec, peers); err != nil {
			return "", fmt.Errorf("create container %s: %w", inst.Name, err)
		}
		inst.Labels[fleets.LabelPeers] = PeersLabel(peers)
	}
	cc, err := convert(inst, d.cli.ClientVersion())
	if err != nil {
		return "", fault.New(fault.Permanent, fault.InvalidSpec, inst.Name, fmt.Errorf("create container %s: %w", inst.Name, err))
	}
	files, err := readFiles(inst.Spec)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", inst.Name, err)
	}
	if inst.Spec.ReadOnly {
		// Docker refuses to copy into a read-only rootfs: bind the files.
		cc.Host.Binds = append(cc.Host.Binds, fileBinds(inst.Spec)...)
		files = slices.DeleteFunc(files, func(f file) bool { return !f.InMemory })
	}
	files, secretDir, err := d.mountInMemory(ctx, inst.Name, cc.Host, files)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", inst.Name, err)
	}
	// The waits' events stream is opened before the create, so that it
	// sees the container from its first event on and a health gate needs
	// no inspect; a failure here only means the waits inspect.
	_ = d.hub.ensure(ctx)
	resp, err := d.cli.ContainerCreate(ctx, cc.Config, cc.Host, cc.Networking, cc.Platform, inst.Name)
	if err != nil {
		d.removeSecretDirs(secretDir)
		return "", d.createError(ctx, inst, err)
	}
	d.hub.note(resp.ID, inst.Name, specHealth(cc.Config.Healthcheck))
	if err := d.finishCreate(ctx, resp.ID, cc.Connect, files); err != nil {
		d.discard(ctx, resp.ID)
		d.removeSecretDirs(secretDir)
		return "", fmt.Errorf("create container %s: %w", inst.Name, err)
	}
	return resp.ID, nil
}

// mountInMemory takes the decrypted files out of files: they are written
// to the host's tmpfs and bind-mounted read-only by host, never copied
// into the container's writable layer. It returns the files left to copy
// and the directory to remove with the container ("" if none).
func (d *Docker) mountInMemory(ctx context.Context, containerName string, host *container.HostConfig, files []file) ([]file, string, error) {
	var inMemory []file
	files = slices.DeleteFunc(files, func(f file) bool {
		if f.InMemory {
			inMemory = append(inMemory, f)
		}
		return f.InMemory
	})
	if len(inMemory) == 0 {
		return files, "", nil
	}
	if err := d.PruneSecretDirs(ctx); err != nil {
		d.log.Warn("prune decrypted secrets", "err", err)
	}
	dir, mounts, err := secretMounts(d.secretsDir, containerName, inMemory)
	if err != nil {
		return nil, "", err
	}
	host.Mounts = append(host.Mounts, mounts...)
	return files, dir, nil
}

// peers finds, for each service named, the running container of fleet
// this agent made that a new container joins (network_mode, pid, ipc
// service:<name>) or takes volumes from: the newest, as in a start-first
// rollout the new replica is the one that stays. A service with none
// running is left out (withPeers reports it).
func (d *Docker) peers(ctx context.Context, fleet string, services []string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range services {
		list, err := d.cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", fleets.LabelManaged+"=true"),
			filters.Arg("label", fleets.LabelFleet+"="+fleet),
			filters.Arg("label", fleets.LabelService+"="+name),
			filters.Arg("label", fleets.LabelInstance+"="+d.instance),
			filters.Arg("status", "running"),
		)})
		if err != nil {
			return nil, fmt.Errorf("find the containers of service %s: %w", name, err)
		}
		if id := newest(list); id != "" {
			out[name] = id
		}
	}
	return out, nil
}

// newest returns the ID of the most recently created container of list
// (ties by ID), or "".
func newest(list []container.Summary) string {
	best := -1
	for i, c := range list {
		if best < 0 || c.Created > list[best].Created || (c.Created == list[best].Created && c.ID > list[best].ID) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return list[best].ID
}

// createError types a failed ContainerCreate: a missing image is a
// Permanent ImageNotFound naming it, a name an unmanaged container holds a
// *ConflictError. The daemon answers "not found" for other missing objects
// too (a network, on newer engines), so the image is looked up to be sure.
func (d *Docker) createError(ctx context.Context, inst fleets.Instance, err error) error {
	name := inst.Name
	if cerrdefs.IsNotFound(err) {
		if _, ierr := d.ImageID(ctx, inst.Spec.Image); errors.Is(ierr, ErrNotFound) {
			return fault.New(fault.Permanent, fault.ImageNotFound, inst.Spec.Image, fmt.Errorf("create container %s: %w", name, err))
		}
	}
	if cerrdefs.IsConflict(err) {
		if holder, ierr := d.cli.ContainerInspect(ctx, name); ierr == nil && !d.isManaged(holder.Config.Labels) {
			return fmt.Errorf("create container: %w", &ConflictError{Kind: "container", Name: name})
		}
	}
	return fmt.Errorf("create container %s: %w", name, err)
}

// finishCreate connects the networks ContainerCreate could not take and
// copies secrets and configs in.
func (d *Docker) finishCreate(ctx context.Context, id string, connect []endpoint, files []file) error {
	for _, ep := range connect {
		if err := d.cli.NetworkConnect(ctx, ep.Network, id, ep.Settings); err != nil {
			return fmt.Errorf("connect network %s: %w", ep.Network, err)
		}
	}
	if len(files) == 0 {
		return nil
	}
	archive, err := tarFiles(files)
	if err != nil {
		return err
	}
	if err := d.cli.CopyToContainer(ctx, id, "/", archive, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy secrets and configs: %w", err)
	}
	return nil
}

// discard removes a container CreateContainer made but could not finish.
func (d *Docker) discard(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
		d.log.Warn("remove half-created container", "id", shortID(id), "err", err)
	}
}

// managedContainer inspects id and returns it if it carries
// io.fleetd.managed=true, else an error wrapping ErrNotManaged, classified
// Permanent NotManaged with the container's name as the object (an event
// about it may change the answer).
func (d *Docker) managedContainer(ctx context.Context, id string) (container.InspectResponse, error) {
	ctr, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return container.InspectResponse{}, err
	}
	if ctr.Config == nil || !d.isManaged(ctr.Config.Labels) {
		name := containerName(ctr, id)
		return container.InspectResponse{}, fault.New(fault.Permanent, fault.NotManaged, name, fmt.Errorf("container %s: %w", name, ErrNotManaged))
	}
	return ctr, nil
}

// withKnownManaged is withManaged for an op that needs nothing from the
// inspect but the container's ID: a container the hub knows as this
// agent's (created by this engine, or listed with its labels, which never
// change) is not inspected again. op acts on ctr.ID, the container that
// was checked, whatever holds the name by then.
func (d *Docker) withKnownManaged(ctx context.Context, verb, id string, op func(container.InspectResponse) error) (err error) {
	full, name, ok := d.hub.managed(id)
	if !ok {
		return d.withManaged(ctx, verb, id, op)
	}
	defer classified(&err)
	ctr := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: full, Name: "/" + name}}
	if err := op(ctr); err != nil {
		return fmt.Errorf("%s container %s: %w", verb, containerName(ctr, id), err)
	}
	return nil
}

// specHealth is what a container's config says of its healthcheck: none
// when disabled, one when it names a test, unknown when it leaves the test
// to the image.
func specHealth(hc *container.HealthConfig) healthKnown {
	switch {
	case hc == nil || len(hc.Test) == 0:
		return healthUnknown
	case hc.Test[0] == "NONE":
		return healthNo
	}
	return healthYes
}

// withManaged runs op on a managed container; verb names the operation in
// errors.
func (d *Docker) withManaged(ctx context.Context, verb, id string, op func(container.InspectResponse) error) (err error) {
	defer classified(&err)
	ctr, err := d.managedContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("%s container %s: %w", verb, shortID(id), err)
	}
	if err := op(ctr); err != nil {
		return fmt.Errorf("%s container %s: %w", verb, containerName(ctr, id), err)
	}
	return nil
}

// StartContainer starts a managed container.
func (d *Docker) StartContainer(ctx context.Context, id string) error {
	return d.withKnownManaged(ctx, "start", id, func(ctr container.InspectResponse) error {
		return d.cli.ContainerStart(ctx, ctr.ID, container.StartOptions{})
	})
}

// StopContainer stops a managed container, killing it after timeout.
func (d *Docker) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	return d.withKnownManaged(ctx, "stop", id, func(ctr container.InspectResponse) error {
		return d.cli.ContainerStop(ctx, ctr.ID, stopOptions(timeout))
	})
}

// RestartContainer restarts a managed container.
func (d *Docker) RestartContainer(ctx context.Context, id string, timeout time.Duration) error {
	return d.withManaged(ctx, "restart", id, func(container.InspectResponse) error {
		return d.cli.ContainerRestart(ctx, id, stopOptions(timeout))
	})
}

func stopOptions(timeout time.Duration) container.StopOptions {
	secs := int((timeout + time.Second - 1) / time.Second)
	return container.StopOptions{Timeout: &secs}
}

// RemoveContainer removes a managed container, stopping it first (with its
// own stop timeout) if it runs. It never removes volumes, anonymous ones
// included. A container that is already gone is not an error.
func (d *Docker) RemoveContainer(ctx context.Context, id string) error {
	if d.removeKnown(ctx, id) {
		return nil
	}
	err := d.withManaged(ctx, "remove", id, func(ctr container.InspectResponse) error {
		if ctr.State != nil && (ctr.State.Running || ctr.State.Restarting) {
			if err := d.cli.ContainerStop(ctx, id, container.StopOptions{}); err != nil {
				return fmt.Errorf("stop: %w", err)
			}
		}
		if err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: false, RemoveVolumes: false}); err != nil {
			return err
		}
		d.removeSecretDirs(secretDirsOf(d.secretsDir, ctr.Mounts)...)
		return nil
	})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// removeKnown removes, without inspecting it first, a container the hub
// knows as this agent's when it cannot mount decrypted files (the secrets
// directory holds none): the inspect would only tell whether to stop it
// first and which of those files to delete. It reports whether the
// container is gone; on any refusal (it runs) or error RemoveContainer
// takes the inspecting path.
func (d *Docker) removeKnown(ctx context.Context, id string) bool {
	full, _, ok := d.hub.managed(id)
	if !ok || d.mayHoldSecrets() {
		return false
	}
	err := d.cli.ContainerRemove(ctx, full, container.RemoveOptions{Force: false, RemoveVolumes: false})
	return err == nil || cerrdefs.IsNotFound(err)
}

// mayHoldSecrets reports whether the secrets directory may hold decrypted
// files of some container (it cannot be read, or is not empty).
func (d *Docker) mayHoldSecrets() bool {
	entries, err := os.ReadDir(d.secretsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	return err != nil || len(entries) > 0
}

// RenameContainer renames a managed container. A new name held by an
// unmanaged container is a *ConflictError.
func (d *Docker) RenameContainer(ctx context.Context, id, name string) error {
	return d.withKnownManaged(ctx, "rename", id, func(ctr container.InspectResponse) error {
		err := d.cli.ContainerRename(ctx, ctr.ID, name)
		if cerrdefs.IsConflict(err) {
			if holder, ierr := d.cli.ContainerInspect(ctx, name); ierr == nil && !d.isManaged(holder.Config.Labels) {
				return &ConflictError{Kind: "container", Name: name}
			}
		}
		return err
	})
}

// UnpauseContainer unpauses a managed container.
func (d *Docker) UnpauseContainer(ctx context.Context, id string) error {
	return d.withManaged(ctx, "unpause", id, func(container.InspectResponse) error {
		return d.cli.ContainerUnpause(ctx, id)
	})
}

// PauseContainer pauses a managed container (for tests and operators).
func (d *Docker) PauseContainer(ctx context.Context, id string) error {
	return d.withManaged(ctx, "pause", id, func(container.InspectResponse) error {
		return d.cli.ContainerPause(ctx, id)
	})
}

// KillContainer sends signal (default SIGKILL) to a managed container (for
// tests and operators).
func (d *Docker) KillContainer(ctx context.Context, id, signal string) error {
	return d.withManaged(ctx, "kill", id, func(container.InspectResponse) error {
		return d.cli.ContainerKill(ctx, id, signal)
	})
}

// ConnectNetwork connects a managed container to a network with the
// attachment's aliases plus containerName.
func (d *Docker) ConnectNetwork(ctx context.Context, id string, att fleets.NetworkAttachment, containerName string) error {
	return d.withManaged(ctx, "connect", id, func(container.InspectResponse) error {
		es := endpointSettings(att, containerName, d.cli.ClientVersion())
		if err := d.cli.NetworkConnect(ctx, att.Network, id, es); err != nil {
			return fmt.Errorf("network %s: %w", att.Network, err)
		}
		return nil
	})
}

// InspectContainer inspects a container, managed or not, and returns it as
// Observe would with Inspected filled in.
func (d *Docker) InspectContainer(ctx context.Context, id string) (drift.Container, error) {
	ctr, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return drift.Container{}, fmt.Errorf("inspect container %s: %w", id, err)
	}
	return containerFromInspect(ctr), nil
}

func containerName(ctr container.InspectResponse, id string) string {
	if ctr.ContainerJSONBase != nil && ctr.Name != "" {
		return strings.TrimPrefix(ctr.Name, "/")
	}
	return shortID(id)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
