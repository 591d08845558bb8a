package reconcile

import (
	"time"

	"fmt"
	"slices"
	"strings"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// tempSuffix marks a container created to replace another; it is renamed to
// the replaced container's name once that one is gone. Together with the
// io.fleetd.replaces label it lets an interrupted replacement resume.
const tempSuffix = "-next"

// serviceCtx is what planning one service needs to know.
type serviceCtx struct {
	fleet fleets.Fleet
	svc   fleets.Service
	items []drift.Item
	// deps are the actions new containers of this service start after:
	// the networks, volumes and dependency readiness they need.
	deps []int
	// image is the pull/build action new containers wait for (0: none).
	image int
}

// planService adds the actions that converge one service and records the
// actions its dependents wait for.
func (b *builder) planService(sc serviceCtx) {
	f, svc := sc.fleet, sc.svc
	for _, it := range sc.items {
		if it.Kind == drift.Conflict {
			b.fail(f.Name, svc.Name, it.Container, "name conflict: "+it.Detail+"; fleetd never touches objects it did not create", fault.Conflict, it.Container)
			return
		}
	}
	// A blocked service gets no actions at all, not even its networks.
	image := needsImage(sc.items)
	if image {
		if err := b.imageObtainable(svc); err != nil {
			b.fail(f.Name, svc.Name, "", err.Error(), fault.ImageNotFound, svc.Spec.Image)
			return
		}
	}
	sc.deps = append(b.ensureNetworks(f, svc), b.ensureVolumes(f, svc)...)
	sc.deps = append(sc.deps, b.readiness(f, svc)...)
	if image {
		sc.image = b.ensureImage(f, svc)
	}
	rec, hasRec := b.pol.Rollouts[rolloutKey(f.Name, svc.Name)]
	stalled := hasRec && rec.Stalled() && rec.Target == svc.Hash
	// A paused rollout does not restart its new replicas that stopped or
	// turn unhealthy: that would only run a broken build over and over,
	// and the exited or unhealthy replica stays there to inspect. Anything
	// else is still done for them (a never-started container is started, a
	// rename, network or limit undone), and the old replicas are healed.
	paused := stalled && rec.Status == RolloutPaused
	resumable, resumed := b.resumable(sc, stalled)
	var stale []containerItems
	left := false // a paused rollout's new replica is left as it is
	// Removals first, creates last: a create waits for the action that
	// frees the name it takes (a leftover -next removed as extra, a
	// renamed container renamed back), and that action must come first.
	for _, pass := range []func(containerItems) bool{
		func(c containerItems) bool { return c.has(drift.Extra) && !c.has(drift.Missing) },
		func(c containerItems) bool { return !c.has(drift.Extra) && !c.has(drift.Missing) },
		func(c containerItems) bool { return c.has(drift.Missing) },
	} {
		for _, c := range groupByContainer(sc.items) {
			switch {
			case resumed[c.name] || !pass(c):
			case isStale(c):
				stale = append(stale, c)
			case paused && b.failedReplica(c):
				left = true
			default:
				b.planContainer(sc, c)
			}
		}
	}
	switch {
	case len(stale) > 0 || len(resumable) > 0:
		b.planRollout(sc, stale, resumable)
	case left:
		b.blockStalled(sc, rec)
	}
}

// failedReplica reports whether a container stopped, is restarting or is
// unhealthy, and was started (not merely created).
func (b *builder) failedReplica(c containerItems) bool {
	if c.has(drift.Missing) || c.has(drift.Extra) {
		return false
	}
	if ctr := b.container(c.id); ctr == nil || ctr.State == "created" {
		return false
	}
	return c.has(drift.Stopped) || c.has(drift.Unhealthy) || c.has(drift.Restarting)
}

// isStale reports whether a container runs an outdated spec or image and
// is therefore replaced by the service's rollout.
func isStale(c containerItems) bool {
	return !c.has(drift.Extra) && !c.has(drift.Missing) && (c.has(drift.SpecChange) || c.has(drift.Image))
}

func needsImage(items []drift.Item) bool {
	for _, it := range items {
		switch it.Kind {
		case drift.Missing, drift.SpecChange, drift.Image:
			return true
		}
	}
	return false
}

// containerItems is every drift item of one container (or one missing slot).
type containerItems struct {
	name  string
	id    string
	slot  int
	kinds map[drift.Kind]drift.Item
}

func (c containerItems) has(k drift.Kind) bool { _, ok := c.kinds[k]; return ok }

func groupByContainer(items []drift.Item) []containerItems {
	var out []containerItems
	index := map[string]int{}
	for _, it := range items {
		key := it.ContainerID
		if key == "" {
			key = "name:" + it.Container
		}
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, containerItems{name: it.Container, id: it.ContainerID, slot: it.Slot, kinds: map[drift.Kind]drift.Item{}})
		}
		out[i].kinds[it.Kind] = it
	}
	return out
}

// planContainer decides what to do about one container. The order of the
// cases is the priority: replacing a container makes healing it moot.
func (b *builder) planContainer(sc serviceCtx, c containerItems) {
	switch {
	case c.has(drift.Missing):
		b.createAndStart(sc, c.slot, c.name, "", causeOf(c.kinds[drift.Missing]))
	case c.has(drift.Extra):
		b.removeContainer(sc.fleet.Name, sc.svc, c.id, c.name, causeOf(c.kinds[drift.Extra]), b.running(c.id))
	default:
		b.heal(sc, c)
	}
}

// createAndStart creates a container for slot and starts it after the
// service's dependencies.
func (b *builder) createAndStart(sc serviceCtx, slot int, name, replaces, cause string) int {
	inst := b.instance(sc.fleet, sc.svc, slot, name, replaces)
	create := b.add(Action{Op: OpCreate, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, Cause: cause,
		After: append(slices.Clone(sc.deps), sc.image, b.freedBy[name]), Instance: inst, ImageFrom: sc.image})
	start := b.add(Action{Op: OpStart, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, Cause: "new container", After: []int{create}})
	start = b.postStart(sc, name, start)
	b.markStarted(sc, name, start)
	return start
}

// replace recreates a container whose spec or image changed: create the new
// one under a temporary name (labelled with the one it replaces), stop and
// remove the old, rename the new, start it. The next issue's rollout
// strategies replace this sequence per batch.
func (b *builder) replace(sc serviceCtx, c containerItems, cause string) int {
	f, svc := sc.fleet, sc.svc
	temp := c.name + tempSuffix
	if old := b.container(c.id); old != nil && old.Name == temp {
		return b.replaceUnderSlotName(sc, c, cause)
	}
	inst := b.instance(f, svc, c.slot, temp, c.name)
	create := b.add(Action{Op: OpCreate, Fleet: f.Name, Service: svc.Name, Target: temp, Cause: cause,
		After: append(slices.Clone(sc.deps), sc.image, b.freedBy[temp]), Instance: inst, ImageFrom: sc.image})
	return b.finishReplace(sc, c.id, c.name, temp, b.running(c.id), create)
}

// replaceUnderSlotName replaces a container that holds its slot under the
// temporary name (a killed fleetd's replacement, outdated by a newer spec):
// the slot's name is free, so the new container is created under it, and
// started once the old one is gone. Creating it under the temporary name
// would collide with the old one.
func (b *builder) replaceUnderSlotName(sc serviceCtx, c containerItems, cause string) int {
	f, svc := sc.fleet, sc.svc
	inst := b.instance(f, svc, c.slot, c.name, "")
	prev := b.add(Action{Op: OpCreate, Fleet: f.Name, Service: svc.Name, Target: c.name, Cause: cause,
		After: append(slices.Clone(sc.deps), sc.image, b.freedBy[c.name]), Instance: inst, ImageFrom: sc.image})
	oldName := b.container(c.id).Name
	if b.running(c.id) {
		prev = b.drained(f.Name, svc, c.id, oldName, prev)
		prev = b.preStop(f.Name, svc, c.id, oldName, prev)
		prev = b.add(Action{Op: OpStop, Fleet: f.Name, Service: svc.Name, Target: oldName, ContainerID: c.id,
			Cause: "replaced by " + c.name, After: []int{prev}, Timeout: stopTimeout(svc)})
	}
	prev = b.add(Action{Op: OpRemove, Fleet: f.Name, Service: svc.Name, Target: oldName, ContainerID: c.id,
		Cause: "replaced by " + c.name, After: []int{prev}})
	start := b.add(Action{Op: OpStart, Fleet: f.Name, Service: svc.Name, Target: c.name, Cause: "replacement", After: []int{prev}})
	start = b.postStart(sc, c.name, start)
	b.markStarted(sc, c.name, start)
	return start
}

// finishReplace stops and removes the old container, renames its
// replacement to the old name and starts it.
func (b *builder) finishReplace(sc serviceCtx, oldID, name, temp string, oldRunning bool, after int) int {
	rename := b.retire(sc, oldID, name, temp, oldRunning, after)
	start := b.add(Action{Op: OpStart, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, Cause: "replacement", After: []int{rename}})
	start = b.postStart(sc, name, start)
	b.markStarted(sc, name, start)
	return start
}

// retire stops (when running) and removes the old container of a slot
// after action after, then renames its replacement temp to the slot's name;
// it returns the rename.
func (b *builder) retire(sc serviceCtx, oldID, name, temp string, oldRunning bool, after int) int {
	f, svc := sc.fleet, sc.svc
	prev := after
	if oldID != "" {
		if oldRunning {
			prev = b.drained(f.Name, svc, oldID, name, prev)
			prev = b.preStop(f.Name, svc, oldID, name, prev)
			prev = b.add(Action{Op: OpStop, Fleet: f.Name, Service: svc.Name, Target: name, ContainerID: oldID,
				Cause: "replaced by " + temp, After: []int{prev}, Timeout: stopTimeout(svc)})
		}
		prev = b.add(Action{Op: OpRemove, Fleet: f.Name, Service: svc.Name, Target: name, ContainerID: oldID,
			Cause: "replaced by " + temp, After: []int{prev}})
	}
	return b.add(Action{Op: OpRename, Fleet: f.Name, Service: svc.Name, Target: temp, NewName: name,
		Cause: "takes the place of the replaced container", After: []int{prev}})
}

// resumption is a replacement a killed fleetd left half done: a container
// labelled io.fleetd.replaces=<name> that already runs the desired spec.
type resumption struct {
	c          containerItems
	temp       string // its current name
	replaces   string
	oldID      string
	oldRunning bool
}

// resumable finds the replacements to resume; the rollout finishes them
// (gate, remove the old, rename) instead of removing them as extra. When
// the service's rollout is stalled, a leftover replacement is not resumed:
// it is removed as the extra it is.
func (b *builder) resumable(sc serviceCtx, stalled bool) ([]resumption, map[string]bool) {
	done := map[string]bool{}
	if stalled {
		return nil, done
	}
	var out []resumption
	for _, c := range groupByContainer(sc.items) {
		ctr := b.container(c.id)
		if ctr == nil {
			continue
		}
		replaces := ctr.Labels[fleets.LabelReplaces]
		if replaces == "" || ctr.Labels[fleets.LabelSpecHash] != sc.svc.Hash || ctr.Name == replaces {
			continue
		}
		r := resumption{c: c, temp: ctr.Name, replaces: replaces}
		if old := b.managedByName(replaces); old != nil {
			r.oldID, r.oldRunning = old.ID, old.State == "running" || old.State == "paused" || old.State == "restarting"
		}
		out = append(out, r)
		done[c.name] = true
		done[replaces] = true
	}
	return out, done
}

// heal answers drift that happened out of band: stopped, paused, unhealthy
// or modified containers. A fleet with self_heal off is reported only, and a
// container healed recently waits out its backoff.
func (b *builder) heal(sc serviceCtx, c containerItems) {
	f, svc := sc.fleet, sc.svc
	if c.has(drift.Restarting) && len(c.kinds) == 1 {
		b.block(f.Name, svc.Name, c.name, "Docker is restarting it (restart policy); not acted on", false)
		return
	}
	if ctr := b.container(c.id); ctr != nil && ctr.State == "created" && len(c.kinds) == 1 {
		// Never started: a deploy or replacement fleetd was killed in
		// the middle of. Finishing it is deploying, not healing, so
		// neither self_heal nor the heal backoff applies.
		id := b.add(Action{Op: OpStart, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: "created but never started"})
		b.markStarted(sc, c.name, b.postStart(sc, c.name, id))
		return
	}
	if !f.Policy.SelfHeal {
		b.block(f.Name, svc.Name, c.name, "self_heal is off: "+kindList(c), false)
		return
	}
	if due, next := b.pol.healDue(c.name); !due {
		if b.healAt.IsZero() || next.Before(b.healAt) {
			b.healAt = next
		}
		b.block(f.Name, svc.Name, c.name, fmt.Sprintf("heal backoff until %s: %s", next.UTC().Format("15:04:05"), kindList(c)), false)
		return
	}
	if it, ok := c.kinds[drift.Modified]; ok {
		if why := recreateReason(it); why != "" {
			b.replace(sc, c, causeOf(it)+"; "+why)
			return
		}
		b.healModified(sc, c, it)
	}
	switch {
	case c.has(drift.Stopped):
		id := b.add(Action{Op: OpStart, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: causeOf(c.kinds[drift.Stopped]), Heal: true})
		b.markStarted(sc, c.name, b.postStart(sc, c.name, id))
	case c.has(drift.Paused):
		id := b.add(Action{Op: OpUnpause, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: causeOf(c.kinds[drift.Paused]), Heal: true})
		// Health checks fail while a container is paused, so Docker calls
		// it unhealthy until one passes again: wait for that, or the next
		// observation would restart a healthy container.
		b.add(Action{Op: OpWaitRecovered, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id,
			Cause: "health checks failed while it was paused", After: []int{id}, Timeout: svc.HealthTimeout})
	case c.has(drift.Unhealthy):
		id := b.add(Action{Op: OpRestart, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: causeOf(c.kinds[drift.Unhealthy]), Heal: true, Timeout: stopTimeout(svc)})
		b.markStarted(sc, c.name, b.postStart(sc, c.name, id))
	}
}

// healModified undoes out-of-band changes: a rename, a network disconnect,
// changed limits or restart policy.
func (b *builder) healModified(sc serviceCtx, c containerItems, it drift.Item) {
	f, svc := sc.fleet, sc.svc
	cause := causeOf(it)
	update := false
	for _, fd := range it.Fields {
		switch {
		case fd.Field == "name":
			b.freedBy[fd.Have] = b.add(Action{Op: OpRename, Fleet: f.Name, Service: svc.Name, Target: fd.Have, ContainerID: c.id, NewName: fd.Want, Cause: cause, Heal: true})
		case strings.HasPrefix(fd.Field, "networks"):
			for _, att := range svc.Spec.Networks {
				if b.attached(c.id, att.Network) {
					continue
				}
				a := att
				b.add(Action{Op: OpConnect, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: cause, Attachment: &a, Heal: true})
			}
		case strings.HasPrefix(fd.Field, "resources.") || fd.Field == "restart":
			update = true
		}
	}
	if update {
		spec := b.appliedSpec(c.id, svc.Spec)
		b.add(Action{Op: OpUpdate, Fleet: f.Name, Service: svc.Name, Target: c.name, ContainerID: c.id, Cause: cause, Spec: &spec, Heal: true})
	}
}

// removeContainer stops (when running) and removes a managed container.
func (b *builder) removeContainer(fleet string, svc fleets.Service, id, name, cause string, running bool) int {
	prev := 0
	if running {
		prev = b.drained(fleet, svc, id, name, 0)
		prev = b.preStop(fleet, svc, id, name, prev)
		prev = b.add(Action{Op: OpStop, Fleet: fleet, Service: svc.Name, Target: name, ContainerID: id, Cause: cause, After: []int{prev}, Timeout: stopTimeout(svc)})
	}
	rm := b.add(Action{Op: OpRemove, Fleet: fleet, Service: svc.Name, Target: name, ContainerID: id, Cause: cause, After: []int{prev}})
	b.freedBy[name] = rm
	return rm
}

// markStarted records that a container of the service is (re)started by
// action id, and adds the waits its dependents may need.
func (b *builder) markStarted(sc serviceCtx, name string, id int) {
	key := sc.fleet.Name + "/" + sc.svc.Name
	r := b.ready[key]
	if r == nil {
		r = map[string][]int{}
		b.ready[key] = r
	}
	r[fleets.ConditionStarted] = append(r[fleets.ConditionStarted], id)
	// The waits follow the started container by ID when the start knows
	// it: a rename in the same plan may not have given it its name yet.
	cid := b.actions[id-1].ContainerID
	if b.dependedOn(sc.fleet, sc.svc.Name, fleets.ConditionHealthy) {
		w := b.add(Action{Op: OpWaitHealthy, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, ContainerID: cid, Cause: "a dependent waits for service_healthy",
			After: []int{id}, Timeout: sc.svc.HealthTimeout})
		r[fleets.ConditionHealthy] = append(r[fleets.ConditionHealthy], w)
	}
	if sc.svc.Ingress != nil && b.actions[id-1].Op != OpRename {
		// A replica started outside a start-first hand-over (a first
		// deploy, a heal, a stop-first replacement) enters the ingress's
		// pool once healthy; a hand-over routed it before the rename.
		w := b.add(Action{Op: OpWaitUp, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, ContainerID: cid,
			Cause: "the ingress routes to it once up", After: []int{id}, Timeout: sc.svc.HealthTimeout, Readiness: sc.svc.Readiness})
		b.add(Action{Op: OpRoute, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, ContainerID: cid,
			Cause: "into the ingress's pool", After: []int{w}})
	}
	if b.dependedOn(sc.fleet, sc.svc.Name, fleets.ConditionCompleted) {
		w := b.add(Action{Op: OpWaitExit, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name, ContainerID: cid, Cause: "a dependent waits for service_completed_successfully",
			After: []int{id}, Timeout: sc.svc.HealthTimeout})
		r[fleets.ConditionCompleted] = append(r[fleets.ConditionCompleted], w)
	}
}

func (b *builder) dependedOn(f fleets.Fleet, service, condition string) bool {
	for _, s := range f.Services {
		for _, d := range s.DependsOn {
			if d.Service == service && d.Condition == condition {
				return true
			}
		}
	}
	return false
}

// readiness returns the actions a service's new containers start after
// because of its depends_on.
func (b *builder) readiness(f fleets.Fleet, svc fleets.Service) []int {
	var ids []int
	for _, d := range svc.DependsOn {
		ids = append(ids, b.ready[f.Name+"/"+d.Service][d.Condition]...)
	}
	return ids
}

func stopTimeout(svc fleets.Service) time.Duration {
	if svc.Spec.StopGracePeriod > 0 {
		return svc.Spec.StopGracePeriod
	}
	return 10 * time.Second
}

func kindList(c containerItems) string {
	var ks []string
	for k := range c.kinds {
		ks = append(ks, string(k))
	}
	slices.Sort(ks)
	return strings.Join(ks, ", ")
}

// recreateReason says why an out-of-band change can only be undone by
// recreating the container, or is "": `docker update` cannot set a limit
// back to unlimited (0 means "leave unchanged" in the update API), and a
// namespace or volumes joined at create cannot be joined again.
func recreateReason(it drift.Item) string {
	for _, fd := range it.Fields {
		if strings.HasPrefix(fd.Field, "peers.") {
			return "it joined a container that is gone, so the container is recreated to join its replacement"
		}
		if strings.HasPrefix(fd.Field, "resources.") && (fd.Want == "0" || fd.Want == "") {
			return "docker update cannot lift a limit, so the container is recreated"
		}
	}
	return ""
}
