package enginetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// EnsureNetwork creates n unless it exists. An existing managed network is
// kept, an unmanaged one is ErrConflict (a Permanent Conflict), a missing
// external one ErrNotFound (a Permanent NotFound), both naming the network.
func (f *Fake) EnsureNetwork(ctx context.Context, fleet string, n fleets.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "EnsureNetwork", n.Name); err != nil {
		return f.done(fmt.Errorf("ensure network %s: %w", n.Name, err))
	}
	existing := f.networks[n.Name]
	switch {
	case n.External && existing != nil:
		return nil
	case n.External:
		return f.done(missing("network", n.Name))
	case existing != nil && managed(existing.Labels):
		return nil
	case existing != nil:
		return f.done(conflict("network", n.Name))
	}
	f.networks[n.Name] = &drift.Network{ID: f.newID("network", n.Name), Name: n.Name,
		Labels: ownedLabels(n.Labels, fleet, fleets.LabelComposeNetwork, n.Key)}
	return nil
}

// RemoveNetwork removes a managed network with no container attached (else
// ErrInUse); an unmanaged one is ErrNotManaged (a Permanent NotManaged
// naming it). A network that is already gone is not an error.
func (f *Fake) RemoveNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "RemoveNetwork", name); err != nil {
		return f.done(fmt.Errorf("remove network %s: %w", name, err))
	}
	n := f.networks[name]
	switch {
	case n == nil:
		return nil
	case !managed(n.Labels):
		return f.done(fault.New(fault.Permanent, fault.NotManaged, name, fmt.Errorf("remove network %s: %w", name, ErrNotManaged)))
	}
	for _, x := range f.containers {
		if slices.Contains(x.c.Networks, name) {
			return f.done(fmt.Errorf("remove network %s: container %s attached: %w", name, x.c.Name, ErrInUse))
		}
	}
	delete(f.networks, name)
	return nil
}

// EnsureVolume creates v unless it exists, with EnsureNetwork's rules and
// errors.
func (f *Fake) EnsureVolume(ctx context.Context, fleet string, v fleets.Volume) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "EnsureVolume", v.Name); err != nil {
		return f.done(fmt.Errorf("ensure volume %s: %w", v.Name, err))
	}
	existing := f.volumes[v.Name]
	switch {
	case v.External && existing != nil:
		return nil
	case v.External:
		return f.done(missing("volume", v.Name))
	case existing != nil && managed(existing.Labels):
		return nil
	case existing != nil:
		return f.done(conflict("volume", v.Name))
	}
	f.volumes[v.Name] = &drift.Volume{Name: v.Name, Labels: ownedLabels(v.Labels, fleet, fleets.LabelComposeVolume, v.Key)}
	return nil
}

// missing is the error of an external network or volume that does not
// exist: ErrNotFound, a Permanent NotFound naming it.
func missing(kind, name string) error {
	return fault.New(fault.Permanent, fault.NotFound, name, fmt.Errorf("external %s %s: %w", kind, name, ErrNotFound))
}

// conflict is the error of a network or volume name an unmanaged object
// holds: ErrConflict, a Permanent Conflict naming it.
func conflict(kind, name string) error {
	return fault.New(fault.Permanent, fault.Conflict, name, fmt.Errorf("ensure %[1]s: %[1]s %[2]s: %[3]w", kind, name, ErrConflict))
}

// PullImage makes a ref registered with AddRemoteImage local; any other ref
// is ErrNotFound (a Permanent ImageNotFound naming the ref), as a registry
// without it would answer.
func (f *Fake) PullImage(ctx context.Context, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "PullImage", ref); err != nil {
		return "", f.done(fmt.Errorf("pull %s: %w", ref, err))
	}
	id, ok := f.remote[ref]
	if !ok {
		return "", f.done(fault.New(fault.Permanent, fault.ImageNotFound, ref, fmt.Errorf("pull %s: manifest %w", ref, ErrNotFound)))
	}
	f.images[ref] = id
	return id, nil
}

// BuildImage tags ref with an ID derived from the build's inputs, so the
// same build always yields the same ID, and hands logf one line naming
// ref (outside the fake's lock: logf may call the fake).
func (f *Fake) BuildImage(ctx context.Context, b fleets.Build, ref string, logf func(string)) (string, error) {
	id, err := f.build(ctx, b, ref)
	if err == nil && logf != nil {
		logf("fake build of " + ref)
	}
	return id, err
}

func (f *Fake) build(ctx context.Context, b fleets.Build, ref string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call(ctx, "BuildImage", ref); err != nil {
		return "", f.done(fmt.Errorf("build %s: %w", ref, err))
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", ref, b.ContextHash, b.Dockerfile, b.Target)
	for _, k := range slices.Sorted(maps.Keys(b.Args)) {
		fmt.Fprintf(h, "%s=%s\x00", k, b.Args[k])
	}
	id := "sha256:" + hex.EncodeToString(h.Sum(nil))
	f.images[ref] = id
	return id, nil
}

// AddImage makes ref present locally as image id (a generated one when id
// is ""), as `docker pull` or `docker tag` out of band would; it returns
// the ID. Retagging a ref simulates the tag moving to another image.
func (f *Fake) AddImage(ref, id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "" {
		id = "sha256:" + f.newID("image", ref)
	}
	f.images[ref] = id
	return id
}

// AddRemoteImage makes ref pullable as image id (a generated one when id is
// ""); it returns the ID. Calling it again with a new ID simulates a push.
func (f *Fake) AddRemoteImage(ref, id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "" {
		id = "sha256:" + f.newID("image", ref)
	}
	f.remote[ref] = id
	return id
}
