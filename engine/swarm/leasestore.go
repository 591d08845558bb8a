package swarm

import (
	"context"
	"fmt"
	"maps"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fleets"
)

// LeaseStore keeps the lease in the swarm itself: the labels of a Swarm
// config that fleetd owns, named after the instance. Swarm's Raft store
// versions every object and refuses an update sent with a stale version,
// which is the compare-and-swap the election needs; fleetd builds no
// consensus of its own. A config's labels are the one part of it Swarm
// lets an update change.
type LeaseStore struct {
	cli      *Docker
	name     string
	id       string
	instance string
}

// LeaseName is the name of the config holding instance's lease.
func LeaseName(instance string) string { return "fleetd-lease-" + instance }

// Lease returns the store of this adapter's instance.
func (d *Docker) Lease() *LeaseStore {
	return &LeaseStore{cli: d, name: LeaseName(d.instance), instance: d.instance}
}

// Read returns the lease, creating the config (with no holder) the first
// time; two agents creating it at once is fine, one wins and both read it.
func (l *LeaseStore) Read(ctx context.Context) (_ LeaseRecord, err error) {
	defer classified(&err)
	cfg, _, err := l.cli.cli.ConfigInspectWithRaw(ctx, l.name)
	if cerrdefs.IsNotFound(err) {
		_, err = l.cli.cli.ConfigCreate(ctx, swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: l.name, Labels: l.owned()},
			Data:        []byte("fleetd agent lease: the holder is in the labels\n"),
		})
		if err != nil && !cerrdefs.IsAlreadyExists(err) && !cerrdefs.IsConflict(err) {
			return LeaseRecord{}, fmt.Errorf("create lease %s: %w", l.name, err)
		}
		cfg, _, err = l.cli.cli.ConfigInspectWithRaw(ctx, l.name)
	}
	if err != nil {
		return LeaseRecord{}, fmt.Errorf("read lease %s: %w", l.name, err)
	}
	if !fleets.OwnedBy(cfg.Spec.Labels, l.instance) {
		return LeaseRecord{}, fmt.Errorf("lease %s: the config exists and is not fleetd's", l.name)
	}
	l.id = cfg.ID
	return ParseLease(cfg.Spec.Labels, cfg.Version.Index)
}

// Write stores r if the config is still at r.Version, and returns the new
// version. A stale version fails with a fault.VersionConflict: someone
// else wrote first.
func (l *LeaseStore) Write(ctx context.Context, r LeaseRecord) (_ uint64, err error) {
	defer classified(&err)
	if l.id == "" {
		return 0, fmt.Errorf("lease %s: write before read", l.name)
	}
	labels := l.owned()
	maps.Copy(labels, LeaseLabels(r))
	if err := l.cli.cli.ConfigUpdate(ctx, l.id, swarm.Version{Index: r.Version}, swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: l.name, Labels: labels},
	}); err != nil {
		return 0, fmt.Errorf("write lease %s: %w", l.name, err)
	}
	cfg, _, err := l.cli.cli.ConfigInspectWithRaw(ctx, l.id)
	if err != nil {
		return 0, fmt.Errorf("read lease %s back: %w", l.name, err)
	}
	if cfg.Spec.Labels[LabelLeaseHolder] != r.Holder {
		return 0, engine.Classify(fmt.Errorf("lease %s: update out of sequence (now held by %q)", l.name, cfg.Spec.Labels[LabelLeaseHolder]))
	}
	return cfg.Version.Index, nil
}

func (l *LeaseStore) owned() map[string]string {
	return map[string]string{fleets.LabelManaged: "true", fleets.LabelInstance: l.instance, LabelEngine: fleets.EngineSwarm}
}
