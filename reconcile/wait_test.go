package reconcile_test

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

func TestWaitTargets(t *testing.T) {
	f := fleet("web", service("web", "api", 2), service("web", "migrate", 1), service("web", "gone", 0))
	f.Services[0].HealthTimeout = 90 * time.Second
	f.Services[0].DependsOn = []fleets.Dependency{{Service: "migrate", Condition: fleets.ConditionCompleted}}
	ctr := func(name, svc, hash string) drift.Container {
		return drift.Container{ID: "id-" + name, Name: name, Labels: map[string]string{fleets.LabelFleet: "web", fleets.LabelService: svc, fleets.LabelSpecHash: hash}}
	}
	obs := drift.Observed{Containers: []drift.Container{
		ctr("web-api-2", "api", f.Services[0].Hash),
		ctr("web-api-1", "api", f.Services[0].Hash),
		ctr("web-api-3", "api", "an older spec"), // not the desired spec: a rollout's business
		ctr("web-migrate-1", "migrate", f.Services[1].Hash),
	}}
	got := reconcile.WaitTargets([]fleets.Fleet{f}, obs, 0)
	if len(got) != 2 || got[0].Container != "web-api-1" || got[1].Container != "web-api-2" || got[0].Timeout != 90*time.Second {
		t.Fatalf("WaitTargets = %+v; want web-api-1 and web-api-2 with the service's 90s (a job run to completion is not waited for)", got)
	}
	if got := reconcile.WaitTargets([]fleets.Fleet{f}, obs, 5*time.Second); got[0].Timeout != 5*time.Second {
		t.Errorf("--wait-timeout not applied: %+v", got[0])
	}

	// The failed service gets a paused record of its spec: the next apply
	// leaves its replicas as they are; a service with a record keeps it.
	now := time.Unix(1000, 0)
	kept := reconcile.Rollouts{"web/other": {Fleet: "web", Service: "other", Target: "x", Status: reconcile.RolloutRolledBack}}
	out := reconcile.FirstDeployFailed(kept, got[:1], map[string]string{"web/api": "unhealthy: exit 1"}, now)
	rec := out["web/api"]
	if rec.Status != reconcile.RolloutPaused || rec.Target != f.Services[0].Hash || !rec.Stalled() || rec.Reason != "not healthy after apply: unhealthy: exit 1" {
		t.Errorf("record %+v", rec)
	}
	if len(out) != 2 || len(kept) != 1 {
		t.Errorf("records %v (input %v): want the other kept and the input untouched", out, kept)
	}
}
