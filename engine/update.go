package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/fleetd/fleetd/fleets"
)

// ErrUpdateUnsupported is returned, wrapped, when `docker update` cannot
// bring a container back to its spec: the daemon treats a zero memory,
// memory reservation, CPU or CPU-shares value as "unchanged", so a limit
// that was added out of band cannot be removed again. The caller recreates
// the container instead.
var ErrUpdateUnsupported = errors.New("docker update cannot reset this limit; recreate the container")

// UpdateResources resets the limits and restart policy `docker update` can
// change to the spec's. MemorySwap is set to twice the memory limit, the
// daemon's default at create, so that raising the limit above the current
// swap limit is accepted.
func (d *Docker) UpdateResources(ctx context.Context, id string, spec fleets.Spec) error {
	return d.withManaged(ctx, "update", id, func(ctr container.InspectResponse) error {
		uc, err := updateConfig(spec, ctr.HostConfig)
		if err != nil {
			return err
		}
		_, err = d.cli.ContainerUpdate(ctx, id, uc)
		return err
	})
}

// updateConfig builds the update for spec given the container's current
// host config. It is an error (ErrUpdateUnsupported) to ask for zero where
// the container has a value.
func updateConfig(spec fleets.Spec, have *container.HostConfig) (container.UpdateConfig, error) {
	want := spec.Resources
	if have == nil {
		have = &container.HostConfig{}
	}
	var stuck []string
	check := func(field string, want, have int64) {
		if want == 0 && have != 0 {
			stuck = append(stuck, field)
		}
	}
	check("memory", want.Memory, have.Memory)
	check("memory_reservation", want.MemoryReservation, have.MemoryReservation)
	check("nano_cpus", want.NanoCPUs, have.NanoCPUs)
	check("cpu_shares", want.CPUShares, have.CPUShares)
	if len(stuck) > 0 {
		return container.UpdateConfig{}, fmt.Errorf("reset %s to unlimited: %w", strings.Join(stuck, ", "), ErrUpdateUnsupported)
	}
	pids := want.PidsLimit // 0 = unlimited in an update
	uc := container.UpdateConfig{Resources: container.Resources{
		Memory:            want.Memory,
		MemoryReservation: want.MemoryReservation,
		NanoCPUs:          want.NanoCPUs,
		CPUShares:         want.CPUShares,
		PidsLimit:         &pids,
	}}
	if want.Memory > 0 {
		uc.MemorySwap = 2 * want.Memory
	}
	policy, err := parseRestart(cmp.Or(spec.Restart, "no"))
	if err != nil {
		return container.UpdateConfig{}, err
	}
	uc.RestartPolicy = policy
	return uc, nil
}
