package agent

import (
	"cmp"
	"context"
	"maps"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// apply runs one Apply effect: it converges one fleet through package
// reconcile (which plans and judges) and summarizes the outcome. Rollout
// events are told as they happen.
func (sh *shell) apply(ctx context.Context, e Apply) ApplyDone {
	start := time.Now()
	rev, err := sh.treeOf(ctx, e.Revision)
	if err == nil && e.Model != nil && e.Model.Engine == fleets.EngineSwarm {
		return sh.applySwarm(ctx, e, rev, start)
	}
	if err != nil {
		d := ApplyDone{Fleet: e.Fleet, Revision: e.Revision.Commit, ReportOnly: e.ReportOnly, Took: time.Since(start)}
		d.Faults = []Fault{{Class: fault.Retryable, Reason: fault.Failed, Message: "check out revision " + reconcile.ShortHash(e.Revision.Commit) + ": " + err.Error()}}
		return d
	}
	pol := reconcile.Policy{Now: start, Revision: rev.Commit, RepoDir: rev.Dir, CheckoutDir: rev.Root, AllowMassPrune: sh.cfg.AllowMassPrune,
		Rollouts: sh.rollouts(e.Fleet), Heals: sh.healsOf(e.Fleet), Scope: []string{e.Fleet}}
	if e.Retry {
		pol.Rollouts = reconcile.Retry(pol.Rollouts)
	}
	var out reconcile.Outcome
	if e.ReportOnly {
		var obs drift.Observed
		obs, err = sh.eng.Observe(ctx, drift.ObserveOptions{InspectAll: e.Full})
		if err == nil {
			out.Last = reconcile.Plan(e.Desired, obs, pol)
		}
		out.Rollouts = pol.Rollouts
	} else {
		out, err = reconcile.Converge(ctx, sh.eng, e.Desired, pol, reconcile.ConvergeOptions{
			Exec:          reconcile.ExecOptions{Parallelism: sh.cfg.Parallelism, Router: sh.cfg.Router},
			InspectAll:    e.Full,
			Targeted:      e.Targeted,
			ReturnOnDelay: true,
			OnEvent:       func(ev reconcile.Event) { sh.rolloutEvent(ev, e, rev) },
			Save:          func(r reconcile.Rollouts) error { return sh.saveRollouts(e.Fleet, r) },
		})
		sh.setHeals(e.Fleet, out.Heals)
		if serr := sh.saveRollouts(e.Fleet, out.Rollouts); serr != nil && err == nil {
			sh.cfg.Log.Error("save state", "fleet", e.Fleet, "err", serr)
		}
	}
	var standby string
	if e.Model == nil && err == nil && sh.cfg.Swarm != nil && !e.ReportOnly {
		// A fleet that left the spec may have run on the swarm: its
		// services, networks, secrets and configs go too. The active
		// agent prunes them; a standby one keeps the fleet until the swarm
		// holds nothing of it (or it takes the lease).
		_, serr := sh.cfg.Swarm.Converge(ctx, fleets.Fleet{Name: e.Fleet, Engine: fleets.EngineSwarm, Policy: fleets.Policy{Prune: true}},
			reconcile.SwarmOptions{Revision: rev.Commit, Desired: e.Desired})
		if f := fault.Of(serr); serr != nil && f.Reason == fault.NotLeader {
			standby = cmp.Or(f.Object, "another agent")
		} else {
			err = serr
		}
	}
	d := summarize(e, out, err)
	d.Standby = standby
	return sh.done(e, d, start)
}

// done times an apply and counts it in the metrics.
func (sh *shell) done(e Apply, d ApplyDone, start time.Time) ApplyDone {
	d.Took = time.Since(start)
	result := "ok"
	if len(d.Faults) > 0 {
		result = "failed"
	}
	if d.Standby != "" {
		result = "standby"
	}
	sh.metric(func(m Metrics) { m.ObserveReconcile(e.Fleet, result, d.Took) })
	return d
}

// applySwarm runs one Apply effect of a swarm fleet through the swarm
// engine, which acts only while this agent holds the swarm's lease.
func (sh *shell) applySwarm(ctx context.Context, e Apply, rev reconcile.Revision, start time.Time) ApplyDone {
	if sh.cfg.Swarm == nil {
		// Not this agent's business: the agents of the swarm's managers
		// (swarm.enabled) run it. Said as standby, not as a fault.
		d := ApplyDone{Fleet: e.Fleet, Revision: e.Revision.Commit, ReportOnly: e.ReportOnly, Standby: "the agents of the swarm's managers (swarm.enabled is off here)"}
		return sh.done(e, d, start)
	}
	res, err := sh.cfg.Swarm.Converge(ctx, *e.Model, reconcile.SwarmOptions{
		Revision: rev.Commit, Dir: rev.Dir, ReportOnly: e.ReportOnly, Retry: e.Retry, Desired: e.Desired,
		OnEvent: func(ev reconcile.Event) { sh.rolloutEvent(ev, e, rev) },
	})
	return sh.done(e, summarizeSwarm(e, res, err), start)
}

// rolloutEvent tells a rollout event as it happens (Advance decided it).
func (sh *shell) rolloutEvent(e reconcile.Event, eff Apply, rev reconcile.Revision) {
	switch e.Kind {
	case reconcile.EventRolloutSucceeded:
		sh.metric(func(m Metrics) { m.ObserveRollout("succeeded") })
	case reconcile.EventRolloutRolledBack:
		sh.metric(func(m Metrics) { m.ObserveRollout("rolled-back") })
	case reconcile.EventRolloutPaused:
		sh.metric(func(m Metrics) { m.ObserveRollout("paused") })
	}
	e.Host, e.Revision = sh.cfg.Rules.Host, &rev
	if eff.Model != nil {
		e.SlackChannel = eff.Model.Policy.Notify.SlackChannel
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	sh.tell(e)
}

// healsOf returns a copy of one fleet's self-heal history.
func (a *Agent) healsOf(fleet string) map[string]reconcile.HealRecord {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	return maps.Clone(a.heals[fleet])
}

func (a *Agent) setHeals(fleet string, h map[string]reconcile.HealRecord) {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	a.heals[fleet] = h
}
