package engine

import (
	"context"
	"fmt"
	"maps"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// EnsureNetwork creates n unless it exists. An existing managed network is
// left as it is; an existing unmanaged one is a *ConflictError. An external
// network is only checked for: it is never created (ErrNotFound, a
// Permanent NotFound naming it).
func (d *Docker) EnsureNetwork(ctx context.Context, fleet string, n fleets.Network) (err error) {
	defer classified(&err)
	existing, found, err := d.findNetwork(ctx, n.Name)
	if err != nil {
		return fmt.Errorf("ensure network %s: %w", n.Name, err)
	}
	switch {
	case n.External && found:
		return nil
	case n.External:
		return fault.New(fault.Permanent, fault.NotFound, n.Name, fmt.Errorf("external network %s: %w", n.Name, ErrNotFound))
	case found && d.isManaged(existing.Labels):
		return nil
	case found:
		return fmt.Errorf("ensure network: %w", &ConflictError{Kind: "network", Name: n.Name})
	}
	if _, err := d.cli.NetworkCreate(ctx, n.Name, d.networkCreateOptions(fleet, n)); err != nil {
		if cerrdefs.IsConflict(err) {
			return d.EnsureNetwork(ctx, fleet, fleets.Network{Name: n.Name, External: true}) // created meanwhile
		}
		return fmt.Errorf("create network %s: %w", n.Name, err)
	}
	return nil
}

func (d *Docker) networkCreateOptions(fleet string, n fleets.Network) network.CreateOptions {
	opts := network.CreateOptions{
		Driver:     n.Driver,
		Options:    n.DriverOpts,
		Internal:   n.Internal,
		Attachable: n.Attachable,
		Labels:     d.ownedLabels(n.Labels, fleet, fleets.LabelComposeNetwork, n.Key),
	}
	if n.EnableIPv6 {
		opts.EnableIPv6 = &n.EnableIPv6
	}
	if len(n.Subnets) > 0 {
		opts.IPAM = &network.IPAM{}
		for _, s := range n.Subnets {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: s})
		}
	}
	return opts
}

// ownedLabels returns user labels overlaid with fleetd's ownership labels
// and Compose's project label plus keyLabel=key.
func (d *Docker) ownedLabels(user map[string]string, fleet, keyLabel, key string) map[string]string {
	out := maps.Clone(user)
	if out == nil {
		out = map[string]string{}
	}
	out[fleets.LabelManaged] = "true"
	out[fleets.LabelInstance] = d.instance
	out[fleets.LabelFleet] = fleet
	out[fleets.LabelComposeProject] = fleet
	out[keyLabel] = key
	return out
}

// findNetwork inspects the network named name. Docker also resolves IDs and
// ID prefixes, so a match by another name counts as not found.
func (d *Docker) findNetwork(ctx context.Context, name string) (network.Inspect, bool, error) {
	nw, err := d.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return network.Inspect{}, false, nil
	case err != nil:
		return network.Inspect{}, false, err
	case nw.Name != name && nw.ID != name:
		return network.Inspect{}, false, nil
	}
	return nw, true, nil
}

// RemoveNetwork removes a managed network; it refuses an unmanaged one
// with ErrNotManaged (a Permanent NotManaged naming it). A network that is
// already gone is not an error.
func (d *Docker) RemoveNetwork(ctx context.Context, name string) (err error) {
	defer classified(&err)
	nw, found, err := d.findNetwork(ctx, name)
	switch {
	case err != nil:
		return fmt.Errorf("remove network %s: %w", name, err)
	case !found:
		return nil
	case !d.isManaged(nw.Labels):
		return fault.New(fault.Permanent, fault.NotManaged, name, fmt.Errorf("remove network %s: %w", name, ErrNotManaged))
	}
	if err := d.cli.NetworkRemove(ctx, nw.ID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

// EnsureVolume creates v unless it exists, like EnsureNetwork. fleetd never
// removes volumes, so there is no RemoveVolume.
func (d *Docker) EnsureVolume(ctx context.Context, fleet string, v fleets.Volume) (err error) {
	defer classified(&err)
	existing, err := d.cli.VolumeInspect(ctx, v.Name)
	found := err == nil
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("ensure volume %s: %w", v.Name, err)
	}
	switch {
	case v.External && found:
		return nil
	case v.External:
		return fault.New(fault.Permanent, fault.NotFound, v.Name, fmt.Errorf("external volume %s: %w", v.Name, ErrNotFound))
	case found && d.isManaged(existing.Labels):
		return nil
	case found:
		return fmt.Errorf("ensure volume: %w", &ConflictError{Kind: "volume", Name: v.Name})
	}
	_, err = d.cli.VolumeCreate(ctx, volume.CreateOptions{
		Name:       v.Name,
		Driver:     v.Driver,
		DriverOpts: v.DriverOpts,
		Labels:     d.ownedLabels(v.Labels, fleet, fleets.LabelComposeVolume, v.Key),
	})
	if err != nil {
		return fmt.Errorf("create volume %s: %w", v.Name, err)
	}
	return nil
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
