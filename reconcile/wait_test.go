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
	out := reconcile.FirstDeployFailed(kept, got, map[string]bool{"web-api-1": true}, map[string]string{"web/api": "unhealthy: exit 1"}, now)
	rec := out["web/api"]
	if rec.Status != reconcile.RolloutPaused || rec.Target != f.Services[0].Hash || !rec.Stalled() || rec.Reason != "not healthy after apply: unhealthy: exit 1" {
		t.Errorf("record %+v", rec)
	}
	if len(out) != 2 || len(kept) != 1 {
		t.Errorf("records %v (input %v): want the other kept and the input untouched", out, kept)
	}
	// A container the apply did not create is not a failed deploy.
	if out := reconcile.FirstDeployFailed(nil, got[1:], map[string]bool{"web-api-1": true}, nil, now); len(out) != 0 {
		t.Errorf("a container that was there before got a record: %v", out)
	}
	// Suspended fleets are not waited for.
	f.Policy.Suspend = true
	if got := reconcile.WaitTargets([]fleets.Fleet{f}, obs, 0); len(got) != 0 {
		t.Errorf("a suspended fleet is waited for: %+v", got)
	}
	// Created: creates, and the names renames give them.
	o := reconcile.Outcome{Reports: []reconcile.Report{{Results: []reconcile.Result{
		{Status: reconcile.Done, Action: reconcile.Action{Op: reconcile.OpCreate, Target: "web-api-1-next"}},
		{Status: reconcile.Done, Action: reconcile.Action{Op: reconcile.OpRename, Target: "web-api-1-next", NewName: "web-api-1"}},
		{Status: reconcile.Failed, Action: reconcile.Action{Op: reconcile.OpCreate, Target: "web-api-2"}},
	}}}}
	if c := reconcile.Created(o); !c["web-api-1"] || c["web-api-2"] {
		t.Errorf("Created = %v", c)
	}
}
