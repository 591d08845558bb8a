package agent

import (
	"context"
	"maps"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/reconcile"
)

// apply runs one Apply effect: it converges one fleet through package
// reconcile (which plans and judges) and summarizes the outcome. Rollout
// events are told as they happen.
func (sh *shell) apply(ctx context.Context, e Apply) ApplyDone {
	start := time.Now()
	rev, err := sh.treeOf(ctx, e.Revision)
	if err != nil {
		d := ApplyDone{Fleet: e.Fleet, Revision: e.Revision.Commit, ReportOnly: e.ReportOnly, Took: time.Since(start)}
		d.Faults = []Fault{{Class: fault.Retryable, Reason: fault.Failed, Message: "check out revision " + reconcile.ShortHash(e.Revision.Commit) + ": " + err.Error()}}
		return d
	}
	pol := reconcile.Policy{Now: start, Revision: rev.Commit, RepoDir: rev.Dir, AllowMassPrune: sh.cfg.AllowMassPrune,
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
			Exec:          reconcile.ExecOptions{Parallelism: sh.cfg.Parallelism},
			InspectAll:    e.Full,
			ReturnOnDelay: true,
			OnEvent:       func(ev reconcile.Event) { sh.rolloutEvent(ev, e, rev) },
			Save:          func(r reconcile.Rollouts) error { return sh.saveRollouts(e.Fleet, r) },
		})
		sh.setHeals(e.Fleet, out.Heals)
		if serr := sh.saveRollouts(e.Fleet, out.Rollouts); serr != nil && err == nil {
			sh.cfg.Log.Error("save state", "fleet", e.Fleet, "err", serr)
		}
	}
	d := summarize(e, out, err)
	d.Took = time.Since(start)
	result := "ok"
	if len(d.Faults) > 0 {
		result = "failed"
	}
	sh.metric(func(m Metrics) { m.ObserveReconcile(e.Fleet, result, d.Took) })
	return d
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
