package swarm

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Labels of fleetd's own records in the swarm.
const (
	// LabelFailed is set on a service whose rollout to the spec with this
	// hash failed: the spec is not tried again until Git changes it or a
	// manual sync retries it. Kept in the swarm, so that the agent that
	// takes over knows it too.
	LabelFailed = "io.fleetd.failed-hash"
	// LabelRecord marks a config holding the last good specs of a fleet.
	LabelRecord = "io.fleetd.record"
)

// Runner converges swarm fleets: reconcile.SwarmEngine. It acts only while
// its campaign holds the lease, and checks that before every mutating
// call.
type Runner struct {
	d        *Docker
	campaign *Campaign // nil: a single agent, always active
	timeout  time.Duration
	// NoResolve leaves image tags as written, never asking a registry
	// (swarm.resolve_images: false; an air-gapped swarm, the tests).
	NoResolve bool
	// AllowMassPrune lifts the prune guard (reconcile.allow_mass_prune).
	AllowMassPrune bool

	// resolved caches the digests tags resolved to, for one revision;
	// applies of several fleets share it (mu).
	mu sync.Mutex
	// nodesMu makes the applies of several fleets set the nodes one at a
	// time: the first finds the work, the others nothing.
	nodesMu  sync.Mutex
	revision string
	resolved map[string]string
}

// NewRunner returns the runner of the swarm d talks to. campaign may be
// nil (one agent). rolloutTimeout bounds the wait for Swarm's updater.
func NewRunner(d *Docker, campaign *Campaign, rolloutTimeout time.Duration) *Runner {
	return &Runner{d: d, campaign: campaign, timeout: rolloutTimeout}
}

func (r *Runner) leading() bool { return r.campaign == nil || r.campaign.Leading() }

var _ reconcile.SwarmEngine = (*Runner)(nil)

// Converge observes the fleet's stack, plans, creates and updates, waits
// for Swarm's updater, rolls a failed service back to the last good spec
// fleetd recorded, and prunes what Git no longer has only once every
// rollout succeeded. A suspended fleet is observed and reported only.
func (r *Runner) Converge(ctx context.Context, f fleets.Fleet, o reconcile.SwarmOptions) (res reconcile.SwarmResult, err error) {
	gone := len(f.Services) == 0
	if !r.leading() {
		if gone {
			// A fleet that left Git: a standby agent may forget it once
			// the swarm holds nothing of it; else it waits for the lease.
			obs, err := r.d.Observe(ctx, f.Name)
			if err != nil {
				return res, err
			}
			if !obs.holds(f.Name) {
				return res, nil
			}
		}
		return res, r.standby()
	}
	if f.Policy.Suspend {
		o.ReportOnly = true
	}
	r.nodesMu.Lock()
	nodes, err := r.d.nodes(ctx)
	var nodesUpdated int
	var nodeErr error
	var nodeNote string
	if err == nil {
		nodes, nodesUpdated, nodeNote, nodeErr = r.convergeNodes(ctx, f.Name, nodes, o, &res)
	}
	r.nodesMu.Unlock()
	if err != nil {
		return res, err
	}
	if x := fault.Of(nodeErr); nodeErr != nil && x.Reason == fault.NotLeader {
		return res, nodeErr
	}
	obs, err := r.d.Observe(ctx, f.Name)
	if err != nil {
		return res, err
	}
	images := r.resolve(ctx, f, o.Revision, obs)
	st, err := Translate(Input{Fleet: f, Instance: r.d.instance, Nodes: placementHosts(nodes), Images: images})
	if err != nil {
		return res, fault.New(fault.Permanent, fault.InvalidSpec, "", err)
	}
	before := Diff(st, obs)
	res.Drifted = append(res.Drifted, outOfBand(before)...)
	res.Left = before
	plan := PlanStack(st, obs, Policy{SelfHeal: f.Policy.SelfHeal, Prune: f.Policy.Prune})
	plan, refused := withoutFailed(plan, obs, o.Retry)
	if o.ReportOnly {
		return res, errors.Join(blockedFault(plan), refused, nodeErr)
	}
	judged, failed := r.unjudged(ctx, f.Name, st, obs, o)
	plan.Actions = slices.DeleteFunc(plan.Actions, func(a Action) bool { return judged[a.Name] })
	apply, prune := split(plan)
	if err := r.d.Execute(ctx, apply, r.leading); err != nil {
		return res, err
	}
	for _, a := range apply.Actions {
		if a.Op != OpCreateService && a.Op != OpUpdateService && a.Op != OpReplaceService {
			continue
		}
		out, err := r.d.WaitRollout(ctx, a, r.timeout)
		if err != nil {
			return res, err
		}
		if out.Failed() {
			failed = append(failed, r.rollback(ctx, f.Name, a, out, o))
			continue
		}
		if a.Op != OpCreateService {
			tell(o, reconcile.Event{Kind: reconcile.EventRolloutSucceeded, Fleet: f.Name, Service: a.Service.Key,
				Message: fmt.Sprintf("swarm service %s updated: %d of %d tasks running", a.Name, out.Running, out.Desired)})
		}
	}
	// Removals and the good record wait until the whole stack is as Git
	// says: no failed rollout, no spec held back, nothing blocked.
	whole := len(failed) == 0 && refused == nil && len(plan.Blocked) == 0
	var guard error
	if whole && len(prune.Actions) > 0 {
		prune, guard = r.guard(ctx, prune, o.Desired) // a refusal is told by the agent, as a stall
		if err := r.d.Execute(ctx, prune, r.leading); err != nil {
			return res, err
		}
	}
	if whole && guard == nil && len(plan.Actions) > 0 {
		// What the swarm now runs is good: record it for a later rollback.
		// A fleet that left Git leaves no record.
		if err := r.d.recordGood(ctx, st, r.leading); err != nil {
			return res, err
		}
	}
	res.Changes = changes(apply, prune, whole)
	if nodesUpdated > 0 {
		done := fmt.Sprintf("updated %d %s", nodesUpdated, reconcile.Plural(nodesUpdated, "node", "nodes"))
		if nodeNote != "" {
			done += " (" + nodeNote + ")"
		}
		res.Changes = strings.TrimSuffix(done+", "+res.Changes, ", ")
	}
	errs := append(failed, blockedFault(plan), refused, nodeErr, guard)
	if len(plan.Actions) == 0 && len(failed) == 0 {
		// Nothing done to the services: what was found is what is left.
		return res, errors.Join(errs...)
	}
	if after, err := r.d.Observe(ctx, f.Name); err == nil {
		res.Left = Diff(st, after)
	}
	return res, errors.Join(errs...)
}

// standby is the fault of an agent that does not hold the lease.
func (r *Runner) standby() error {
	holder := ""
	if r.campaign != nil {
		holder = r.campaign.Holder()
	}
	return fault.New(fault.Permanent, fault.NotLeader, holder, fmt.Errorf("standby: %s holds the swarm's lease", cmp.Or(holder, "no agent")))
}

// unjudged finds the services whose update to the wanted spec ended
// paused without fleetd having judged it (the agent that started it
// stopped or lost the lease meanwhile), and judges them now: each is a
// failed rollout, rolled back and marked, and left out of this pass's plan
// (whose version of it is stale now). An update Swarm rolled back leaves
// no trace of the spec it left (PreviousSpec is cleared), so the next
// holder tries that spec once more and judges that attempt.
func (r *Runner) unjudged(ctx context.Context, fleet string, st Stack, obs Observed, o reconcile.SwarmOptions) (map[string]bool, []error) {
	judged := map[string]bool{}
	var out []error
	for _, s := range pausedAtWanted(st, obs) {
		have := obs.Services[s.Name]
		a := Action{Op: OpUpdateService, Name: s.Name, Service: s, ID: have.ID, Version: have.Version}
		out = append(out, r.rollback(ctx, fleet, a, Outcome{Service: s.Name, State: have.Update, Message: have.UpdateMessage}, o))
		judged[s.Name] = true
	}
	return judged, out
}

// guard applies the prune guard to the removal of services, over the
// whole revision: the services fleetd owns on the swarm that no swarm
// fleet of desired still wants are what the revision removes; if that is
// more than half of them, or all of them, every removal of services is
// refused (the other actions went ahead). Counting the whole revision
// keeps fleets applied one at a time from slipping a mass prune past it.
func (r *Runner) guard(ctx context.Context, prune Plan, desired []fleets.Fleet) (Plan, error) {
	if r.AllowMassPrune || !slices.ContainsFunc(prune.Actions, func(a Action) bool { return a.Op == OpRemoveService }) {
		return prune, nil
	}
	owned, err := r.d.ownedServices(ctx)
	if err != nil {
		return Plan{}, err
	}
	removing, left := revisionRemovals(owned, desired)
	reason := reconcile.MassPrune(removing, len(owned), left, reconcile.Policy{}.PruneRatio(), "swarm", "services")
	if reason == "" {
		return prune, nil
	}
	return Plan{}, fault.New(fault.Permanent, fault.PruneRefused, "", errors.New(reason))
}

// convergeNodes applies nodes.yaml of the revision to the swarm's nodes
// (every swarm fleet's apply does; the first one to run finds the work)
// and returns the nodes as they are now. Node drift goes with the fleet's
// out-of-band drift; an invalid nodes.yaml or an unknown node is a
// permanent fault, and the known nodes are still set.
func (r *Runner) convergeNodes(ctx context.Context, fleet string, nodes []ObservedNode, o reconcile.SwarmOptions, res *reconcile.SwarmResult) ([]ObservedNode, int, string, error) {
	if o.Dir == "" {
		return nodes, 0, "", nil
	}
	want, err := fleets.LoadNodes(o.Dir)
	if err != nil {
		return nodes, 0, "", fault.New(fault.Permanent, fault.InvalidSpec, fleets.NodesFile, err)
	}
	ups, planErr := PlanNodes(want, nodes)
	for _, u := range ups {
		for _, it := range u.Reasons {
			it.Fleet = fleet
			if it.Kind == drift.Modified {
				res.Drifted = append(res.Drifted, it)
			}
		}
	}
	if o.ReportOnly || len(ups) == 0 {
		return nodes, 0, "", planErr
	}
	note, err := r.d.drain(ctx, ups, r.leading, r.timeout)
	if err != nil {
		return nodes, 0, "", err
	}
	out := slices.Clone(nodes)
	for _, u := range ups {
		for i := range out {
			if out[i].ID == u.Node.ID {
				out[i].Spec = u.Spec
			}
		}
	}
	return out, len(ups), note, planErr
}

// resolve resolves each image tag of the fleet to a digest once per
// revision, so that every node runs the same bytes. A tag its registry
// does not answer for is not cached (it is asked again next time) and
// stays pinned to the digest the fleet's services run for it, if any, so
// that a registry's blip restarts nothing; else it is used as written (the
// service is then created without querying a registry, as the tests do).
func (r *Runner) resolve(ctx context.Context, f fleets.Fleet, revision string, obs Observed) map[string]string {
	if r.NoResolve {
		return nil
	}
	deployed := map[string]string{}
	for _, s := range obs.Services {
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
			if tag, _, ok := strings.Cut(cs.Image, "@"); ok {
				deployed[tag] = cs.Image
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if revision != r.revision || r.resolved == nil {
		r.revision, r.resolved = revision, map[string]string{}
	}
	out := map[string]string{}
	for _, s := range f.Services {
		img := s.Spec.Image
		if strings.Contains(img, "@") {
			continue
		}
		if _, done := r.resolved[img]; !done {
			if pinned, ok := r.d.resolveImage(ctx, img); ok {
				r.resolved[img] = pinned
			}
		}
		if pinned, ok := r.resolved[img]; ok {
			out[img] = pinned
		} else if pinned, ok := deployed[img]; ok {
			out[img] = pinned
		}
	}
	return out
}

func tell(o reconcile.SwarmOptions, e reconcile.Event) {
	if o.OnEvent != nil {
		e.Time = time.Now()
		o.OnEvent(e)
	}
}

// outOfBand keeps the drift nobody asked for in Git.
func outOfBand(items []drift.Item) []drift.Item {
	var out []drift.Item
	for _, it := range items {
		switch it.Kind {
		case drift.Modified, drift.Tasks, drift.Conflict:
			out = append(out, it)
		}
	}
	return out
}

// withoutFailed drops the updates to a spec whose rollout failed before,
// unless retry: it waits for a new commit or a manual sync.
func withoutFailed(plan Plan, obs Observed, retry bool) (Plan, error) {
	if retry {
		return plan, nil
	}
	var kept []Action
	var refused []error
	for _, a := range plan.Actions {
		if (a.Op == OpUpdateService || a.Op == OpReplaceService) && obs.Services[a.Name].Spec.Labels[LabelFailed] == a.Service.Hash {
			refused = append(refused, fault.New(fault.Permanent, fault.RolloutFailed, a.Name,
				fmt.Errorf("service %s: the rollout of this spec failed before; it waits for a new commit or a manual sync", a.Name)))
			continue
		}
		kept = append(kept, a)
	}
	plan.Actions = kept
	return plan, errors.Join(refused...)
}

func blockedFault(plan Plan) error {
	var errs []error
	for _, it := range plan.Blocked {
		errs = append(errs, fault.New(fault.Permanent, fault.Conflict, it.Container,
			fmt.Errorf("%s %s exists and is not fleetd's", it.Object, it.Container)))
	}
	return errors.Join(errs...)
}

// split separates the removals, which wait until every rollout succeeded.
func split(plan Plan) (apply, prune Plan) {
	for _, a := range plan.Actions {
		switch a.Op {
		case OpRemoveService, OpRemoveSecret, OpRemoveConfig, OpRemoveNetwork:
			prune.Actions = append(prune.Actions, a)
		default:
			apply.Actions = append(apply.Actions, a)
		}
	}
	return apply, prune
}

func changes(apply, prune Plan, pruned bool) string {
	counts := map[string]int{}
	var order []string
	count := func(p Plan) {
		for _, a := range p.Actions {
			if counts[a.Op] == 0 {
				order = append(order, a.Op)
			}
			counts[a.Op]++
		}
	}
	count(apply)
	if pruned {
		count(prune)
	}
	var parts []string
	for _, op := range order {
		verb, obj, _ := strings.Cut(op, "-")
		parts = append(parts, fmt.Sprintf("%s %d %s", verb+"d", counts[op], reconcile.Plural(counts[op], obj, obj+"s")))
	}
	return strings.Join(parts, ", ")
}

// rollback answers a failed rollout: the service goes back to the last
// good spec fleetd recorded for the fleet (Swarm's own rollback goes back
// one spec only, which may itself be a failed one), and carries the failed
// hash so that the spec is not tried again. It returns the rollout's
// failure.
func (r *Runner) rollback(ctx context.Context, fleet string, a Action, out Outcome, o reconcile.SwarmOptions) error {
	failure := fault.New(fault.Permanent, fault.RolloutFailed, a.Name,
		fmt.Errorf("service %s: Swarm's update ended %s: %s", a.Name, out.State, cmp.Or(out.Message, "no message")))
	good, ok, err := r.d.goodSpec(ctx, fleet, a.Name)
	if err != nil {
		return errors.Join(failure, err)
	}
	svc, _, err := r.d.cli.ServiceInspectWithRaw(ctx, a.Name, swarm.ServiceInspectOptions{})
	if err != nil {
		return errors.Join(failure, engine.Classify(err))
	}
	spec := svc.Spec
	how := "kept as Swarm rolled it back (no earlier good spec recorded)"
	switch {
	case ok && modeKind(good.Mode) != modeKind(svc.Spec.Mode):
		// Going back across modes would replace the service once more.
		how = "kept: the last good spec has another mode (" + modeKind(good.Mode) + "); revert the change in Git to go back"
	case ok:
		spec = good
		how = "rolled back to the last good spec"
	case out.State != swarm.UpdateStateRollbackCompleted && svc.PreviousSpec != nil:
		// Paused or timed out at the failed spec: the spec before it.
		spec = *svc.PreviousSpec
		how = "rolled back to the spec before it (no earlier good spec recorded)"
	}
	spec.Labels = maps.Clone(spec.Labels)
	spec.Labels[LabelFailed] = a.Service.Hash
	if !r.leading() {
		return errors.Join(failure, ErrNotLeading)
	}
	if spec, err = r.d.withFileIDs(ctx, spec, map[string]string{}); err == nil {
		_, err = r.d.cli.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
	}
	if err != nil {
		return errors.Join(failure, engine.Classify(err))
	}
	tell(o, reconcile.Event{Kind: reconcile.EventRolloutRolledBack, Fleet: fleet, Service: a.Service.Key,
		Message: fmt.Sprintf("swarm service %s: the update failed (%s); %s", a.Name, out.State, how), Reason: out.Message})
	return failure
}

// recordName is the name of the config recording a fleet's last good
// specs, content-addressed like every config.
func recordName(fleet, digest string) string { return fleet + "_fleetd-good_" + shortDigest(digest) }

// recordGood stores the stack's service specs as the fleet's last good
// ones (a config; configs are immutable, so a new record replaces the
// old), unless they are recorded already.
func (d *Docker) recordGood(ctx context.Context, st Stack, leading func() bool) error {
	if len(st.Services) == 0 {
		return d.dropRecords(ctx, st.Namespace, leading) // the fleet left Git
	}
	specs := map[string]swarm.ServiceSpec{}
	for _, s := range st.Services {
		specs[s.Name] = s.Spec
	}
	data, err := json.Marshal(specs)
	if err != nil {
		return err
	}
	digest := digestOf(data)
	name := recordName(st.Namespace, digest)
	list, err := d.cli.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelRecord+"="+st.Namespace))})
	if err != nil {
		return engine.Classify(fmt.Errorf("list records: %w", err))
	}
	have := false
	for _, c := range list {
		have = have || c.Spec.Name == name
	}
	if !leading() {
		return ErrNotLeading
	}
	if !have {
		labels := ownedLabels(st.Namespace, d.instance)
		labels[LabelRecord] = st.Namespace
		if _, err := d.cli.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data}); err != nil {
			return engine.Classify(fmt.Errorf("record the good specs: %w", err))
		}
	}
	for _, c := range list {
		if c.Spec.Name != name && d.owns(c.Spec.Labels) {
			if err := d.cli.ConfigRemove(ctx, c.ID); err != nil {
				return engine.Classify(fmt.Errorf("remove an old record: %w", err))
			}
		}
	}
	return nil
}

// dropRecords removes the good records of a fleet that left Git.
func (d *Docker) dropRecords(ctx context.Context, fleet string, leading func() bool) error {
	list, err := d.cli.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelRecord+"="+fleet))})
	if err != nil {
		return engine.Classify(fmt.Errorf("list records: %w", err))
	}
	for _, c := range list {
		if !d.owns(c.Spec.Labels) {
			continue
		}
		if !leading() {
			return ErrNotLeading
		}
		if err := d.cli.ConfigRemove(ctx, c.ID); err != nil {
			return engine.Classify(fmt.Errorf("remove record %s: %w", c.Spec.Name, err))
		}
	}
	return nil
}

// goodSpec returns the last good spec recorded for a service.
func (d *Docker) goodSpec(ctx context.Context, fleet, service string) (swarm.ServiceSpec, bool, error) {
	list, err := d.cli.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelRecord+"="+fleet))})
	if err != nil {
		return swarm.ServiceSpec{}, false, engine.Classify(fmt.Errorf("list records: %w", err))
	}
	slices.SortFunc(list, func(a, b swarm.Config) int { return b.CreatedAt.Compare(a.CreatedAt) })
	for _, c := range list {
		if !d.owns(c.Spec.Labels) {
			continue
		}
		full, _, err := d.cli.ConfigInspectWithRaw(ctx, c.ID)
		if err != nil {
			return swarm.ServiceSpec{}, false, engine.Classify(err)
		}
		var specs map[string]swarm.ServiceSpec
		if err := json.Unmarshal(full.Spec.Data, &specs); err != nil {
			return swarm.ServiceSpec{}, false, fmt.Errorf("record %s: %w", c.Spec.Name, err)
		}
		spec, ok := specs[service]
		return spec, ok, nil
	}
	return swarm.ServiceSpec{}, false, nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ErrNotManager says that the engine is no swarm manager: swarm fleets
// cannot be compared through it.
var ErrNotManager = errors.New("the local engine is no swarm manager: swarm fleets are not compared")

// Inspection is what the active agent would find and do for the swarm
// fleets of a repository, computed without changing anything.
type Inspection struct {
	Nodes []NodeUpdate // nodes.yaml's changes, with their reasons
	Plans []FleetPlan  // one per swarm fleet, in the order given
}

// FleetPlan is one swarm fleet's drift and plan.
type FleetPlan struct {
	Fleet string       `json:"fleet"`
	Drift []drift.Item `json:"drift"`
	Plan  Plan         `json:"plan"`
}

// Drift lists the inspection's drift: the nodes', then each fleet's.
func (in Inspection) Drift() []drift.Item {
	var out []drift.Item
	for _, u := range in.Nodes {
		out = append(out, u.Reasons...)
	}
	for _, p := range in.Plans {
		out = append(out, p.Drift...)
	}
	return out
}

// Inspect finds the drift and plans of the swarm fleets among fs and of
// the nodes nodes.yaml in dir names, as the active agent would, tags
// resolved as it resolves them; it changes nothing (fleetd diff, plan
// --live). Through an engine that is no manager it returns ErrNotManager;
// with no swarm fleet among fs, nothing.
func (d *Docker) Inspect(ctx context.Context, fs []fleets.Fleet, dir string) (Inspection, error) {
	var in Inspection
	var nodes []ObservedNode
	r := &Runner{d: d}
	for _, f := range fs {
		if f.Engine != fleets.EngineSwarm {
			continue
		}
		if nodes == nil {
			info, err := d.cli.Info(ctx)
			if err != nil {
				return in, engine.Classify(fmt.Errorf("engine info: %w", err))
			}
			if !info.Swarm.ControlAvailable {
				return in, ErrNotManager
			}
			if nodes, err = d.nodes(ctx); err != nil {
				return in, err
			}
			want, err := fleets.LoadNodes(dir)
			if err != nil {
				return in, err
			}
			if in.Nodes, err = PlanNodes(want, nodes); err != nil {
				return in, err
			}
		}
		obs, err := d.Observe(ctx, f.Name)
		if err != nil {
			return in, err
		}
		st, err := Translate(Input{Fleet: f, Instance: d.instance, Nodes: placementHosts(nodes), Images: r.resolve(ctx, f, "", obs)})
		if err != nil {
			return in, err
		}
		plan, _ := withoutFailed(PlanStack(st, obs, Policy{SelfHeal: f.Policy.SelfHeal, Prune: f.Policy.Prune}), obs, false)
		in.Plans = append(in.Plans, FleetPlan{Fleet: f.Name, Drift: Diff(st, obs), Plan: plan})
	}
	return in, nil
}
