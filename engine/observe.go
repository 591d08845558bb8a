package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"golang.org/x/sync/errgroup"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// inspectParallelism bounds concurrent inspects in one observation.
const inspectParallelism = 8

// Observe takes one snapshot: four concurrent list calls (containers,
// networks, volumes, images) and an inspect only of the managed containers
// whose list entry does not settle their state (see the package doc); the
// inspects follow the container list at once, alongside the other lists.
func (d *Docker) Observe(ctx context.Context, opts drift.ObserveOptions) (_ drift.Observed, err error) {
	defer classified(&err)
	var obs drift.Observed
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if obs.Containers, err = d.listContainers(gctx, opts.Fleet); err != nil {
			return err
		}
		d.scopeContainers(obs.Containers)
		return d.inspectUnsettled(gctx, obs.Containers, opts)
	})
	g.Go(func() (err error) { obs.Networks, err = d.listNetworks(gctx); return err })
	g.Go(func() (err error) { obs.Volumes, err = d.listVolumes(gctx); return err })
	g.Go(func() (err error) { obs.Images, err = d.listImages(gctx); return err })
	if err := g.Wait(); err != nil {
		return drift.Observed{}, fmt.Errorf("observe: %w", err)
	}
	d.scope(&obs)
	return obs, nil
}

// scope hides the objects of other fleetd instances on this host: they keep
// their names (a clash is still a conflict) but lose io.fleetd.managed, so
// nothing downstream can mistake them for this agent's. The containers are
// scoped as soon as their list answers (scopeContainers), before the
// inspects that depend on it; scope does the networks and volumes.
func (d *Docker) scope(obs *drift.Observed) {
	for i := range obs.Networks {
		obs.Networks[i].Labels = d.unmanagedIfForeign(obs.Networks[i].Labels)
	}
	for i := range obs.Volumes {
		obs.Volumes[i].Labels = d.unmanagedIfForeign(obs.Volumes[i].Labels)
	}
}

func (d *Docker) scopeContainers(ctrs []drift.Container) {
	for i := range ctrs {
		ctrs[i].Labels = d.unmanagedIfForeign(ctrs[i].Labels)
	}
}

func (d *Docker) unmanagedIfForeign(labels map[string]string) map[string]string {
	if labels[fleets.LabelManaged] != "true" || d.isManaged(labels) {
		return labels
	}
	out := maps.Clone(labels)
	delete(out, fleets.LabelManaged)
	return out
}

// listContainers lists every container, or only fleet's (by its label)
// when fleet is set.
func (d *Docker) listContainers(ctx context.Context, fleet string) ([]drift.Container, error) {
	opts := container.ListOptions{All: true}
	if fleet != "" {
		opts.Filters = filters.NewArgs(filters.Arg("label", fleets.LabelFleet+"="+fleet))
	}
	list, err := d.cli.ContainerList(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]drift.Container, 0, len(list))
	var managed []string
	for _, s := range list {
		out = append(out, containerFromSummary(s))
		if d.isManaged(s.Labels) {
			managed = append(managed, s.ID)
		}
	}
	d.hub.learnManaged(managed) // a stop or rename of one needs no inspect to check it
	slices.SortFunc(out, func(a, b drift.Container) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func containerFromSummary(s container.Summary) drift.Container {
	c := drift.Container{
		ID:      s.ID,
		Name:    summaryName(s.Names),
		Image:   s.Image,
		ImageID: s.ImageID,
		State:   s.State,
		Health:  HealthFromStatus(s.Status),
		Status:  s.Status,
		Labels:  s.Labels,
		Created: time.Unix(s.Created, 0).UTC(),
	}
	if s.NetworkSettings != nil {
		for name := range s.NetworkSettings.Networks {
			c.Networks = append(c.Networks, name)
		}
		slices.Sort(c.Networks)
	}
	return c
}

// summaryName picks the container's own name: a list entry also names the
// legacy links that point at it ("/other/alias"), which contain a slash.
func summaryName(names []string) string {
	for _, n := range names {
		n = strings.TrimPrefix(n, "/")
		if !strings.Contains(n, "/") {
			return n
		}
	}
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/")
	}
	return ""
}

// HealthFromStatus reads the health Docker appends to a running container's
// status: "Up 3 minutes (healthy)", "(unhealthy)", "(health: starting)".
func HealthFromStatus(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return "healthy"
	case strings.HasSuffix(status, "(unhealthy)"):
		return "unhealthy"
	case strings.HasSuffix(status, "(health: starting)"):
		return "starting"
	}
	return ""
}

func (d *Docker) listNetworks(ctx context.Context) ([]drift.Network, error) {
	list, err := d.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	out := make([]drift.Network, 0, len(list))
	for _, n := range list {
		out = append(out, drift.Network{ID: n.ID, Name: n.Name, Labels: n.Labels})
	}
	slices.SortFunc(out, func(a, b drift.Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (d *Docker) listVolumes(ctx context.Context) ([]drift.Volume, error) {
	resp, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs()})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := make([]drift.Volume, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		out = append(out, drift.Volume{Name: v.Name, Labels: v.Labels})
	}
	slices.SortFunc(out, func(a, b drift.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (d *Docker) listImages(ctx context.Context) (map[string]string, error) {
	list, err := d.cli.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make(map[string]string)
	for _, img := range list {
		for _, ref := range slices.Concat(img.RepoTags, img.RepoDigests) {
			for _, key := range refSpellings(ref) {
				out[key] = img.ID
			}
		}
	}
	return out, nil
}

// refSpellings returns the ways a spec may write ref: as listed, familiar
// ("nginx:latest") and fully qualified ("docker.io/library/nginx:latest"),
// and, for the latest tag, without the tag.
func refSpellings(ref string) []string {
	if ref == "" || ref == "<none>:<none>" || ref == "<none>@<none>" {
		return nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return []string{ref}
	}
	keys := []string{ref, named.String(), reference.FamiliarString(named)}
	if tagged, ok := named.(reference.Tagged); ok && tagged.Tag() == "latest" {
		keys = append(keys, named.Name(), reference.FamiliarName(named))
	}
	return keys
}

// inspectUnsettled inspects, with bounded parallelism, the managed
// containers whose list entry does not settle their state.
func (d *Docker) inspectUnsettled(ctx context.Context, ctrs []drift.Container, opts drift.ObserveOptions) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inspectParallelism)
	for i := range ctrs {
		if !needsInspect(ctrs[i], opts) {
			continue
		}
		ctr := &ctrs[i]
		g.Go(func() error {
			if err := d.inspectFresh(gctx, ctr); err != nil {
				if isNotFound(err) {
					return nil // removed since the list; the next event resyncs
				}
				return fmt.Errorf("inspect container %s: %w", ctr.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func needsInspect(c drift.Container, opts drift.ObserveOptions) bool {
	if c.Labels[fleets.LabelManaged] != "true" {
		return false
	}
	switch {
	case opts.InspectAll, opts.Fleet != "", slices.Contains(opts.Inspect, c.ID):
		return true
	case c.Health == "unhealthy":
		return true
	}
	switch c.State {
	case container.StateExited, container.StateDead, container.StateRestarting:
		return true
	}
	return false
}

// containerFromInspect is the list entry an inspect implies, with
// Inspected filled in. Status is left empty: only a list renders it.
func containerFromInspect(resp container.InspectResponse) drift.Container {
	c := drift.Container{ID: resp.ID, Image: resp.Image, Inspected: inspectedFrom(resp)}
	if resp.ContainerJSONBase != nil {
		c.Name = strings.TrimPrefix(resp.Name, "/")
		c.ImageID = resp.Image
		c.Created = parseDockerTime(resp.Created)
	}
	if resp.Config != nil {
		c.Image, c.Labels = resp.Config.Image, resp.Config.Labels
	}
	if st := resp.State; st != nil {
		c.State = st.Status
		if st.Health != nil && st.Health.Status != "none" {
			c.Health = st.Health.Status
		}
	}
	if resp.NetworkSettings != nil {
		for name := range resp.NetworkSettings.Networks {
			c.Networks = append(c.Networks, name)
		}
		slices.Sort(c.Networks)
	}
	return c
}

func inspectedFrom(resp container.InspectResponse) *drift.Inspected {
	in := &drift.Inspected{}
	if resp.ContainerJSONBase == nil {
		return in
	}
	in.RestartCount = resp.RestartCount
	if hc := resp.HostConfig; hc != nil {
		in.Memory = hc.Memory
		in.MemoryReservation = hc.MemoryReservation
		in.NanoCPUs = hc.NanoCPUs
		in.CPUShares = hc.CPUShares
		if hc.PidsLimit != nil {
			in.PidsLimit = *hc.PidsLimit
		}
		in.RestartPolicy = restartString(hc.RestartPolicy)
	}
	if st := resp.State; st != nil {
		in.ExitCode = st.ExitCode
		in.OOMKilled = st.OOMKilled
		in.StartedAt = parseDockerTime(st.StartedAt)
		in.FinishedAt = parseDockerTime(st.FinishedAt)
		if st.Health != nil && len(st.Health.Log) > 0 {
			if last := st.Health.Log[len(st.Health.Log)-1]; last != nil {
				in.HealthLog = strings.TrimSpace(last.Output)
			}
		}
	}
	return in
}

// restartString spells a restart policy as Compose (and Spec.Restart) does.
func restartString(p container.RestartPolicy) string {
	switch p.Name {
	case "", container.RestartPolicyDisabled:
		return "no"
	case container.RestartPolicyOnFailure:
		if p.MaximumRetryCount > 0 {
			return "on-failure:" + strconv.Itoa(p.MaximumRetryCount)
		}
		return "on-failure"
	default:
		return string(p.Name)
	}
}

// parseDockerTime parses inspect timestamps; Docker's zero time
// ("0001-01-01T00:00:00Z") and garbage both give the zero time.
func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}
