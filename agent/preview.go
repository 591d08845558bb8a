package agent

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// Preview is what applying every fleet would do now: the plan over the
// newest state's desired fleets and a fresh observation of the host, as
// `fleetd plan --live` prints it, with known secret values masked. It
// changes nothing; swarm fleets are left to the swarm's own plan.
func (a *Agent) Preview(ctx context.Context) (string, error) {
	a.mu.Lock()
	s := a.view
	a.mu.Unlock()
	obs, err := a.eng.Observe(ctx, drift.ObserveOptions{InspectAll: true})
	if err != nil {
		return "", fmt.Errorf("observe: %w", err)
	}
	pol := reconcile.Policy{Now: time.Now(), AllowMassPrune: a.cfg.AllowMassPrune, Rollouts: a.allRollouts(), Heals: a.allHeals()}
	if s.Revision != nil {
		pol.Revision, pol.RepoDir, pol.CheckoutDir = s.Revision.Commit, s.Revision.Dir, s.Revision.Root
	}
	m := &machine{s: s}
	return redactorOf(s).String(reconcile.Plan(m.desired(), obs, pol).String()), nil
}

// allRollouts returns a copy of every fleet's rollout records.
func (a *Agent) allRollouts() reconcile.Rollouts {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	return maps.Clone(a.file.Rollouts)
}

// allHeals returns every fleet's self-heal history, by container.
func (a *Agent) allHeals() map[string]reconcile.HealRecord {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	out := map[string]reconcile.HealRecord{}
	for _, h := range a.heals {
		maps.Copy(out, h)
	}
	return out
}
