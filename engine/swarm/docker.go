package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// Docker is the adapter to a swarm, through one manager's API. It decides
// nothing: it observes, and runs the actions of a plan.
type Docker struct {
	cli       *client.Client
	instance  string
	configDir string // the Docker CLI's config.json directory, for registry credentials
}

// New returns the adapter for the manager cli talks to, acting as the
// fleetd agent named instance.
func New(cli *client.Client, instance string) *Docker {
	if instance == "" {
		instance = fleets.DefaultInstance
	}
	return &Docker{cli: cli, instance: instance, configDir: engine.DefaultDockerConfigDir()}
}

// resolveImage returns image pinned to the digest its registry gives for
// it (name:tag@sha256:…); false when no registry answers.
func (d *Docker) resolveImage(ctx context.Context, image string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	digest, err := engine.ResolveDigest(ctx, d.cli, d.configDir, image)
	if err != nil {
		return "", false
	}
	return image + "@" + digest, true
}

// ErrNotLeading is returned when the agent lost the lease before a batch
// of mutating calls: it must not act. It is a fault.NotLeader: the agent
// stands by, it has not failed.
var ErrNotLeading = fault.New(fault.Permanent, fault.NotLeader, "", errors.New("swarm: this agent no longer holds the lease"))

func classified(err *error) { *err = engine.Classify(*err) }

// Observe reads what the swarm holds of fleet: its services (with task
// counts and update state) and every service, network, secret and config
// whose name is the fleet's, owned or not.
func (d *Docker) Observe(ctx context.Context, fleet string) (_ Observed, err error) {
	defer classified(&err)
	prefix := fleet + "_"
	obs := Observed{Services: map[string]ObservedService{}, Networks: map[string]ObservedObject{},
		Secrets: map[string]ObservedObject{}, Configs: map[string]ObservedObject{}, NetworkNames: map[string]string{}}
	byName := filters.NewArgs(filters.Arg("name", prefix))
	services, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: byName, Status: true})
	if err != nil {
		return obs, fmt.Errorf("list services: %w", err)
	}
	for _, s := range services {
		if !strings.HasPrefix(s.Spec.Name, prefix) {
			continue // the name filter matches prefixes of other words too
		}
		o := ObservedService{ID: s.ID, Version: s.Version.Index, Owned: d.owns(s.Spec.Labels), Fleet: s.Spec.Labels[fleets.LabelFleet], Spec: s.Spec}
		if st := s.ServiceStatus; st != nil {
			o.Running, o.Desired = st.RunningTasks, st.DesiredTasks
		}
		if u := s.UpdateStatus; u != nil {
			o.Update, o.UpdateMessage = u.State, u.Message
			if u.StartedAt != nil {
				o.UpdateStarted = *u.StartedAt
			}
		}
		if o.Running < o.Desired {
			if o.Failing, err = d.failing(ctx, s.ID); err != nil {
				return obs, err
			}
		}
		obs.Services[s.Spec.Name] = o
	}
	nets, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("scope", "swarm"))})
	if err != nil {
		return obs, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets {
		// Every swarm network, by name: a fleet's network may be named
		// otherwise than <fleet>_<key> (name:).
		obs.NetworkNames[n.ID] = n.Name
		obs.Networks[n.Name] = ObservedObject{ID: n.ID, Owned: d.owns(n.Labels), Fleet: n.Labels[fleets.LabelFleet]}
	}
	secrets, err := d.cli.SecretList(ctx, swarm.SecretListOptions{Filters: byName})
	if err != nil {
		return obs, fmt.Errorf("list secrets: %w", err)
	}
	for _, s := range secrets {
		if strings.HasPrefix(s.Spec.Name, prefix) {
			obs.Secrets[s.Spec.Name] = ObservedObject{ID: s.ID, Owned: d.owns(s.Spec.Labels), Fleet: s.Spec.Labels[fleets.LabelFleet]}
		}
	}
	configs, err := d.cli.ConfigList(ctx, swarm.ConfigListOptions{Filters: byName})
	if err != nil {
		return obs, fmt.Errorf("list configs: %w", err)
	}
	for _, c := range configs {
		if strings.HasPrefix(c.Spec.Name, prefix) && c.Spec.Labels[LabelRecord] == "" {
			obs.Configs[c.Spec.Name] = ObservedObject{ID: c.ID, Owned: d.owns(c.Spec.Labels), Fleet: c.Spec.Labels[fleets.LabelFleet]}
		}
	}
	return obs, nil
}

// ownedServices lists the swarm services this instance owns, of every
// fleet, as "fleet/service": what the prune guard weighs removals against.
func (d *Docker) ownedServices(ctx context.Context) (_ []string, err error) {
	defer classified(&err)
	list, err := d.owned(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list {
		out = append(out, s.Spec.Labels[fleets.LabelFleet]+"/"+s.Spec.Labels[fleets.LabelService])
	}
	return out, nil
}

func (d *Docker) owns(labels map[string]string) bool {
	return fleets.OwnedBy(labels, d.instance) && labels[LabelEngine] == fleets.EngineSwarm
}

// failing returns the errors of a service's failed or rejected tasks that
// are still meant to run, newest first (at most 3).
func (d *Docker) failing(ctx context.Context, serviceID string) ([]string, error) {
	tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	slices.SortFunc(tasks, func(a, b swarm.Task) int { return b.Status.Timestamp.Compare(a.Status.Timestamp) })
	var out []string
	for _, t := range tasks {
		if t.Status.Err != "" && len(out) < 3 {
			out = append(out, fmt.Sprintf("task %s on node %s: %s: %s", shortID(t.ID), shortID(t.NodeID), t.Status.State, t.Status.Err))
		}
	}
	return out, nil
}

func shortID(id string) string { return id[:min(12, len(id))] }

// Execute runs a plan's actions in order. leading is asked before every
// mutating call; when it says no, Execute stops with ErrNotLeading. The
// first failure stops the plan (later actions depend on earlier ones).
func (d *Docker) Execute(ctx context.Context, plan Plan, leading func() bool) error {
	ids := map[string]string{} // secret and config names → IDs, for service specs
	for _, a := range plan.Actions {
		if !leading() {
			return ErrNotLeading
		}
		if err := d.run(ctx, a, ids); err != nil {
			return fmt.Errorf("%s %s: %w", a.Op, a.Name, err)
		}
	}
	return nil
}

func (d *Docker) run(ctx context.Context, a Action, ids map[string]string) (err error) {
	defer classified(&err)
	switch a.Op {
	case OpCreateNetwork:
		_, err = d.cli.NetworkCreate(ctx, a.Name, a.Network.Options)
	case OpCreateSecret:
		var data []byte
		if data, err = engine.FileContents(a.File.Ref); err == nil {
			var r swarm.SecretCreateResponse
			r, err = d.cli.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: a.Name, Labels: a.File.Labels}, Data: data})
			ids[a.Name] = r.ID
		}
	case OpCreateConfig:
		var data []byte
		if data, err = engine.FileContents(a.File.Ref); err == nil {
			var r swarm.ConfigCreateResponse
			r, err = d.cli.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: a.Name, Labels: a.File.Labels}, Data: data})
			ids[a.Name] = r.ID
		}
	case OpCreateService, OpUpdateService, OpReplaceService:
		var spec swarm.ServiceSpec
		if spec, err = d.withFileIDs(ctx, a.Service.Spec, ids); err != nil {
			return err
		}
		// Credentials go with the spec, so that every node can pull; the
		// image is pinned already (Runner.resolve), so no registry query.
		auth, _ := engine.RegistryAuth(d.configDir, spec.TaskTemplate.ContainerSpec.Image)
		if a.Op == OpReplaceService {
			if err = d.cli.ServiceRemove(ctx, a.ID); err != nil {
				return err
			}
		}
		if a.Op != OpUpdateService {
			_, err = d.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{EncodedRegistryAuth: auth, QueryRegistry: false})
		} else {
			_, err = d.cli.ServiceUpdate(ctx, a.ID, swarm.Version{Index: a.Version}, spec, swarm.ServiceUpdateOptions{EncodedRegistryAuth: auth, QueryRegistry: false})
		}
	case OpRemoveService:
		err = d.cli.ServiceRemove(ctx, a.ID)
	case OpRemoveSecret:
		err = d.cli.SecretRemove(ctx, a.ID)
	case OpRemoveConfig:
		err = d.cli.ConfigRemove(ctx, a.ID)
	case OpRemoveNetwork:
		err = d.cli.NetworkRemove(ctx, a.ID)
	default:
		err = fault.New(fault.Permanent, fault.InvalidSpec, a.Name, fmt.Errorf("unknown operation %q", a.Op))
	}
	return err
}

// withFileIDs fills the IDs of the secrets and configs a service spec
// names: Swarm resolves references by ID.
func (d *Docker) withFileIDs(ctx context.Context, spec swarm.ServiceSpec, ids map[string]string) (swarm.ServiceSpec, error) {
	cs := *spec.TaskTemplate.ContainerSpec
	lookup := func(name string, list func() (map[string]string, error)) (string, error) {
		if id, ok := ids[name]; ok {
			return id, nil
		}
		all, err := list()
		if err != nil {
			return "", err
		}
		for n, id := range all {
			ids[n] = id
		}
		if id, ok := ids[name]; ok {
			return id, nil
		}
		return "", fault.New(fault.Permanent, fault.NotFound, name, fmt.Errorf("%s does not exist", name))
	}
	cs.Secrets = slices.Clone(cs.Secrets)
	for i, r := range cs.Secrets {
		id, err := lookup(r.SecretName, d.secretIDs(ctx))
		if err != nil {
			return spec, err
		}
		rr := *r
		rr.SecretID = id
		cs.Secrets[i] = &rr
	}
	cs.Configs = slices.Clone(cs.Configs)
	for i, r := range cs.Configs {
		id, err := lookup(r.ConfigName, d.configIDs(ctx))
		if err != nil {
			return spec, err
		}
		rr := *r
		rr.ConfigID = id
		cs.Configs[i] = &rr
	}
	spec.TaskTemplate.ContainerSpec = &cs
	return spec, nil
}

func (d *Docker) secretIDs(ctx context.Context) func() (map[string]string, error) {
	return func() (map[string]string, error) {
		list, err := d.cli.SecretList(ctx, swarm.SecretListOptions{})
		return idsByName(list, err, func(s swarm.Secret) (string, string) { return s.Spec.Name, s.ID })
	}
}

func (d *Docker) configIDs(ctx context.Context) func() (map[string]string, error) {
	return func() (map[string]string, error) {
		list, err := d.cli.ConfigList(ctx, swarm.ConfigListOptions{})
		return idsByName(list, err, func(c swarm.Config) (string, string) { return c.Spec.Name, c.ID })
	}
}

// idsByName maps the names of listed secrets or configs to their IDs.
func idsByName[T any](list []T, err error, nameID func(T) (string, string)) (map[string]string, error) {
	out := map[string]string{}
	for _, x := range list {
		name, id := nameID(x)
		out[name] = id
	}
	return out, err
}

// Outcome is how Swarm's updater ended a service's rollout.
type Outcome struct {
	Service string
	State   swarm.UpdateState // completed, paused, rollback_completed, …; empty: no update ran (a create)
	Message string
	Running uint64
	Desired uint64
}

// Failed reports whether the rollout failed: Swarm rolled it back, paused
// it, or it did not finish in time. doco-cd reports some of these as
// success (doco-cd#1616); fleetd does not.
func (o Outcome) Failed() bool {
	switch o.State {
	case swarm.UpdateStateCompleted, "":
		return false
	}
	return true
}

// WaitRollout polls the service until RolloutOutcome says the action's
// rollout is over, or timeout passes (the outcome's state is "timeout").
func (d *Docker) WaitRollout(ctx context.Context, a Action, timeout time.Duration) (Outcome, error) {
	start := time.Now()
	for {
		svcs, err := d.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("name", a.Name)), Status: true})
		if err != nil {
			return Outcome{}, engine.Classify(err)
		}
		var found *swarm.Service
		for i := range svcs {
			if svcs[i].Spec.Name == a.Name {
				found = &svcs[i]
			}
		}
		if o, done := RolloutOutcome(a, found, time.Since(start), timeout); done {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
