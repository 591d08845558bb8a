package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// planRollout plans the next batch of a service's rolling update: the
// containers whose spec or image is outdated are replaced update_config
// parallelism at a time, each gated on the new replica being up. Resumed
// replacements (left by a killed fleetd) are finished first and count
// towards the batch. The plan carries a RolloutStep so that Advance can
// judge the batch once it has run; the loop re-plans for the next batch.
func (b *builder) planRollout(sc serviceCtx, stale []containerItems, resumable []resumption) {
	f, svc := sc.fleet, sc.svc
	rec, hasRec := b.pol.Rollouts[rolloutKey(f.Name, svc.Name)]
	if hasRec && rec.Stalled() && rec.Target == svc.Hash {
		b.blockStalled(sc, rec)
		for _, c := range stale {
			b.heal(sc, c) // the old replicas still get healed
		}
		return
	}
	rollback := hasRec && rec.Status == RolloutRollingBack && rec.From == svc.Hash
	inProgress := rollback || (hasRec && rec.Status == RolloutRunning && rec.Target == svc.Hash)
	if due := rec.LastBatchAt.Add(svc.Update.Delay); inProgress && svc.Update.Delay > 0 && b.pol.Now.Before(due) {
		b.block(f.Name, svc.Name, "", fmt.Sprintf("rollout: next batch at %s (update_config delay %s)", due.UTC().Format(time.TimeOnly), svc.Update.Delay), false)
		b.noteNext(due)
		return
	}
	order, forced := EffectiveOrder(svc)
	if !rollback {
		if _, from := b.previousSpec(stale); from != nil && order == fleets.OrderStartFirst {
			if port := takenOver(svc, *from); port != "" {
				order, forced = fleets.OrderStopFirst, "its replicas publish host port "+port+", which the ingress takes over"
			}
		}
	}
	step := RolloutStep{
		Fleet: f.Name, Service: svc.Name, Target: svc.Hash,
		Remaining: len(stale) + len(resumable), Replicas: svc.Replicas,
		Policy: svc.Update, Order: order, Forced: forced, Rollback: rollback,
	}
	if !rollback {
		step.From, step.FromSpec = b.previousSpec(stale)
	}
	size := svc.Update.Parallelism
	if size <= 0 {
		size = step.Remaining
	}
	slices.SortFunc(stale, func(x, y containerItems) int { return x.slot - y.slot })
	for _, r := range resumable {
		b.inSlot(r.c.slot, func() { b.resume(sc, r) })
		step.Slots = append(step.Slots, r.c.slot)
	}
	take := max(0, min(len(stale), size-len(resumable)))
	b.planBatch(sc, stale[:take], &step, order, nil, step.Remaining)
	b.rollouts = append(b.rollouts, step)
	// Without a delay between batches, the later batches are planned too,
	// each waiting for the previous batch's health gates: a batch's
	// hand-over (stop, remove and rename the old replicas) overlaps the
	// next batch's start, and no re-observation stands between batches. A
	// failed gate skips every later batch; the next pass re-plans them
	// under the failure action. A batch also waits for the whole batch
	// before the previous one, so that a failed hand-over lets at most one
	// more batch run.
	total := step.Remaining
	var before RolloutStep // the batch before step, once there is one
	for done := len(step.Slots); take < len(stale) && svc.Update.Delay == 0; {
		next := step
		next.Slots, next.Chained = nil, true
		next.Remaining = total - done
		end := min(len(stale), take+size)
		// Dependents (depends_on) wait for the first batch only, as
		// when each pass planned one batch: a later batch's failure
		// must not skip, and so fail, another service's rollout.
		ready := b.readyMark(sc)
		b.planBatch(sc, stale[take:end], &next, order, append(b.gatesOf(step), b.sinksOf(before)...), total)
		b.readyReset(sc, ready)
		done += len(next.Slots)
		take = end
		before, step = step, next
		b.rollouts = append(b.rollouts, step)
	}
}

// planBatch adds one batch of a rollout: each stale container replaced in
// the given order, its first actions waiting for after (the gates of the
// previous batch) as well. total is the number of replicas the rollout
// replaces in this plan, for the causes' "n/total".
func (b *builder) planBatch(sc serviceCtx, batch []containerItems, step *RolloutStep, order string, after []int, total int) {
	for _, c := range batch {
		first := len(b.actions)
		cause := rolloutCause(c, total-step.Remaining+len(step.Slots)+1, total, *step)
		if order == fleets.OrderStartFirst {
			b.inSlot(c.slot, func() { b.startFirst(sc, c, cause) })
		} else {
			b.inSlot(c.slot, func() { b.gate(sc, c.name, b.replace(sc, c, cause)) })
		}
		b.waitAlso(first, after)
		step.Slots = append(step.Slots, c.slot)
	}
}

// waitAlso makes the actions added since index first that wait for none of
// their own batch also wait for ids.
func (b *builder) waitAlso(first int, ids []int) {
	if len(ids) == 0 {
		return
	}
	for i := first; i < len(b.actions); i++ {
		a := &b.actions[i]
		if !slices.ContainsFunc(a.After, func(dep int) bool { return dep > first }) {
			a.After = compactIDs(append(a.After, ids...))
		}
	}
}

// readyMark and readyReset undo what planning adds to a service's
// readiness (the actions its dependents wait for).
func (b *builder) readyMark(sc serviceCtx) map[string]int {
	mark := map[string]int{}
	for cond, ids := range b.ready[sc.fleet.Name+"/"+sc.svc.Name] {
		mark[cond] = len(ids)
	}
	return mark
}

func (b *builder) readyReset(sc serviceCtx, mark map[string]int) {
	r := b.ready[sc.fleet.Name+"/"+sc.svc.Name]
	for cond := range r {
		r[cond] = r[cond][:mark[cond]]
	}
}

// sinksOf returns the last actions of a planned rollout batch: those no
// other action of the batch waits for. When they are done, so is the batch.
func (b *builder) sinksOf(step RolloutStep) []int {
	in := b.batchActions(step)
	waited := map[int]bool{}
	for _, a := range in {
		for _, dep := range a.After {
			waited[dep] = true
		}
	}
	var ids []int
	for _, a := range in {
		if !waited[a.ID] {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// batchActions returns the actions of a planned rollout batch.
func (b *builder) batchActions(step RolloutStep) []Action {
	var out []Action
	for _, a := range b.actions {
		if a.Rollout && a.Fleet == step.Fleet && a.Service == step.Service && slices.Contains(step.Slots, a.Slot) {
			out = append(out, a)
		}
	}
	return out
}

// gatesOf returns the health gates of a planned rollout batch.
func (b *builder) gatesOf(step RolloutStep) []int {
	var ids []int
	for _, a := range b.batchActions(step) {
		if a.Op == OpWaitUp {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// blockStalled says why a service's rollout goes no further.
func (b *builder) blockStalled(sc serviceCtx, rec RolloutRecord) {
	kept := ""
	if rec.Status == RolloutPaused {
		kept = "; its failed new replicas are left as they are"
	}
	b.fail(sc.fleet.Name, sc.svc.Name, "", fmt.Sprintf("rollout of %s %s: %s; not retried until a new commit or a manual sync%s",
		ShortHash(rec.Target), rec.Status, rec.Reason, kept), fault.RolloutFailed, "")
}

// EffectiveOrder is the update order a service gets: start-first only when
// old and new replicas can run side by side, i.e. it publishes no fixed
// host port and sets no container_name. A service behind fleetd's ingress
// is start-first (its TCP ports are the ingress's) unless a UDP port or a
// container_name forces stop-first.
func EffectiveOrder(svc fleets.Service) (order, forced string) {
	order = svc.Update.Order
	if svc.Ingress != nil {
		order = fleets.OrderStartFirst // the ingress binds the ports
	}
	if order != fleets.OrderStartFirst {
		return fleets.OrderStopFirst, ""
	}
	if svc.Spec.ContainerName != "" {
		return fleets.OrderStopFirst, "container_name is set"
	}
	for _, p := range svc.Spec.Ports {
		if p.Published != "" && p.Published != "0" {
			return fleets.OrderStopFirst, "publishes fixed host port " + p.Published
		}
	}
	return order, ""
}

// takenOver returns a fixed host port the service's replicas published
// themselves (from, their spec) that the ingress now binds for it: the
// ingress cannot listen until they stop, so that rollout is stop-first.
// It is pure.
func takenOver(svc fleets.Service, from fleets.Spec) string {
	if svc.Ingress == nil {
		return ""
	}
	for _, p := range from.Ports {
		for _, q := range svc.Ingress.Ports {
			if p.Published != "" && p.Published == q.Published && p.Protocol == q.Protocol {
				return p.Published
			}
		}
	}
	return ""
}

// startFirst replaces one container start-first: the new one starts under a
// temporary name and must pass the gate before the old one is stopped,
// removed, and its name handed over.
func (b *builder) startFirst(sc serviceCtx, c containerItems, cause string) {
	f, svc := sc.fleet, sc.svc
	temp := c.name + tempSuffix
	if old := b.container(c.id); old != nil && old.Name == temp {
		b.gate(sc, c.name, b.replaceUnderSlotName(sc, c, cause))
		return
	}
	inst := b.instance(f, svc, c.slot, temp, c.name)
	create := b.add(Action{Op: OpCreate, Fleet: f.Name, Service: svc.Name, Target: temp, Cause: cause,
		After: append(slices.Clone(sc.deps), sc.image, b.freedBy[temp]), Instance: inst, ImageFrom: sc.image})
	start := b.add(Action{Op: OpStart, Fleet: f.Name, Service: svc.Name, Target: temp, Cause: "new replica, start-first", After: []int{create}})
	gate := b.routed(sc, temp, b.gate(sc, temp, b.postStart(sc, temp, start)))
	b.handOver(sc, c.id, c.name, temp, b.running(c.id), gate)
}

// resume finishes a replacement a killed fleetd left behind. A replacement
// that already runs passes the gate again before the old one goes.
func (b *builder) resume(sc serviceCtx, r resumption) {
	if tmp := b.container(r.c.id); tmp != nil && tmp.State == "running" {
		gate := b.routed(sc, r.temp, b.gate(sc, r.temp, 0))
		b.handOver(sc, r.oldID, r.replaces, r.temp, r.oldRunning, gate)
		return
	}
	b.gate(sc, r.replaces, b.finishReplace(sc, r.oldID, r.replaces, r.temp, r.oldRunning, 0))
}

// handOver stops and removes the old container after the new one passed
// its gate, then gives the new one the old name.
func (b *builder) handOver(sc serviceCtx, oldID, name, temp string, oldRunning bool, after int) {
	b.markStarted(sc, name, b.retire(sc, oldID, name, temp, oldRunning, after))
}

// gate adds the health gate of a new replica: up (healthy, or running
// after the readiness delay) and still up after monitor.
func (b *builder) gate(sc serviceCtx, name string, after int) int {
	svc := sc.svc
	return b.add(Action{Op: OpWaitUp, Fleet: sc.fleet.Name, Service: svc.Name, Target: name,
		Cause: fmt.Sprintf("health gate: up within %s, then monitored %s", svc.HealthTimeout, svc.Update.Monitor), After: []int{after},
		Timeout: svc.HealthTimeout, Readiness: svc.Readiness, Monitor: svc.Update.Monitor})
}

// routed puts a new replica of an ingress service into the ingress's pool
// once it passed its gate (action after), before an old one is drained;
// it returns the action the hand-over waits for.
func (b *builder) routed(sc serviceCtx, name string, after int) int {
	if sc.svc.Ingress == nil {
		return after
	}
	return b.add(Action{Op: OpRoute, Fleet: sc.fleet.Name, Service: sc.svc.Name, Target: name,
		Cause: "into the ingress's pool, having passed its gate", After: []int{after}})
}

// drained takes a running replica of an ingress service out of the
// ingress's pool before it is stopped: no new requests, and the ones it
// has finish, up to the service's drain. It returns the action the stop
// waits for (after, for other services).
func (b *builder) drained(fleet string, svc fleets.Service, id, name string, after int) int {
	if svc.Ingress == nil {
		return after
	}
	return b.add(Action{Op: OpDrain, Fleet: fleet, Service: svc.Name, Target: name, ContainerID: id,
		Cause: fmt.Sprintf("out of the ingress's pool; its requests finish (up to %s)", svc.Ingress.Drain),
		After: []int{after}, Timeout: svc.Ingress.Drain})
}

// inSlot marks every action plan adds as part of the rollout of slot, so
// that Advance can count failures per replica.
func (b *builder) inSlot(slot int, plan func()) {
	first := len(b.actions)
	plan()
	for i := first; i < len(b.actions); i++ {
		b.actions[i].Slot = slot
		b.actions[i].Rollout = true
	}
}

// previousSpec is the spec the stale containers were created from (their
// spec label), for a rollback. Containers that disagree leave it empty.
func (b *builder) previousSpec(stale []containerItems) (string, *fleets.Spec) {
	for _, c := range stale {
		ctr := b.container(c.id)
		if ctr == nil {
			continue
		}
		spec, err := fleets.DecodeSpec(ctr.Labels[fleets.LabelSpec])
		if err != nil {
			continue
		}
		if c.has(drift.Image) && !c.has(drift.SpecChange) {
			// The tag moved (a pull): the previous spec names the same
			// tag, so a rollback pins the digest the old replica runs.
			if pinned := b.pinned(spec.Image, ctr.ImageID); pinned != "" {
				spec.Image = pinned
			}
		}
		return ctr.Labels[fleets.LabelSpecHash], &spec
	}
	return "", nil
}

// pinned returns the local repo digest ("name@sha256:…") of tag ref's
// repository that image imageID carries, or "" when it has none (built
// or loaded here).
func (b *builder) pinned(ref, imageID string) string {
	repo := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo = ref[:i]
	}
	for _, key := range slices.Sorted(maps.Keys(b.obs.Images)) {
		if strings.HasPrefix(key, repo+"@") && b.obs.Images[key] == imageID {
			return key
		}
	}
	return ""
}

func (b *builder) noteNext(t time.Time) {
	if b.nextAt.IsZero() || t.Before(b.nextAt) {
		b.nextAt = t
	}
}

func rolloutCause(c containerItems, n, total int, step RolloutStep) string {
	it, ok := c.kinds[drift.SpecChange]
	if !ok {
		it = c.kinds[drift.Image]
	}
	what := "rollout"
	if step.Rollback {
		what = "rollback"
	}
	return fmt.Sprintf("%s; %s %d/%d, %s%s", causeOf(it), what, n, total, step.Order, forcedNote(step.Forced))
}

// finishRollouts closes rollouts whose replicas all run their target
// already (the last batch ran, or a killed fleetd finished it, or a
// start-first rollback only had to drop the new replicas): a step without
// slots lets Advance record the outcome.
func (b *builder) finishRollouts(desired []fleets.Fleet, items []drift.Item) {
	planned := map[string]bool{}
	for _, st := range b.rollouts {
		planned[rolloutKey(st.Fleet, st.Service)] = true
	}
	stale := map[string]bool{}
	for _, it := range items {
		if it.Kind == drift.SpecChange || it.Kind == drift.Image || it.Kind == drift.Missing {
			stale[rolloutKey(it.Fleet, it.Service)] = true
		}
	}
	for _, f := range desired {
		if !b.pol.InScope(f.Name) {
			continue
		}
		for _, svc := range f.Services {
			key := rolloutKey(f.Name, svc.Name)
			rec, ok := b.pol.Rollouts[key]
			if !ok || planned[key] || stale[key] || !svc.Targets || !f.Targets {
				continue
			}
			rollback := rec.Status == RolloutRollingBack && rec.From == svc.Hash
			running := rec.Status == RolloutRunning && rec.Target == svc.Hash
			if rollback || running {
				b.rollouts = append(b.rollouts, RolloutStep{Fleet: f.Name, Service: svc.Name, Target: svc.Hash,
					Replicas: svc.Replicas, Policy: svc.Update, Rollback: rollback})
			}
		}
	}
}
