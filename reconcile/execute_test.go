package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// TestExecuteConverges: Plan, Execute on the fake, and the host is in sync
// with an empty second plan.
func TestExecuteConverges(t *testing.T) {
	v2 := withService(web(2), "api", func(s *fleets.Service) { s.Spec.Image = "app:v2"; s.Spec.Environment["LOG_LEVEL"] = "debug" })
	webWorker := fleet("web", service("web", "api", 2), service("web", "worker", 1))
	built := fleet("web", service("web", "api", 2, func(s *fleets.Service) {
		s.Spec.Image = "fleetd-build/web-api:3f2a"
		s.PullPolicy = "build"
		s.Build = &fleets.Build{ContextDir: "web/app", Dockerfile: "Dockerfile", ContextHash: "3f2a"}
	}))
	tests := []struct {
		name    string
		before  []fleets.Fleet
		oob     func(e *enginetest.Fake)
		desired []fleets.Fleet
	}{
		{name: "deploy", desired: fl(shop(), web(2), cache())},
		{name: "build", desired: fl(built)},
		{name: "scale up", before: fl(web(2)), desired: fl(web(4))},
		{name: "scale down", before: fl(web(4)), desired: fl(web(1))},
		{name: "spec change", before: fl(web(2), shop()), desired: fl(v2, shop())},
		{name: "spec change of a dependency", before: fl(shop()),
			desired: fl(withService(shop(), "db", func(s *fleets.Service) { s.Spec.Environment["LOG_LEVEL"] = "debug" }))},
		{name: "image drift", before: fl(web(2)), oob: func(e *enginetest.Fake) { e.AddImage("app:v1", "sha256:feedface") }, desired: fl(web(2))},
		{name: "heals", before: fl(web(4), shop()), desired: fl(web(4), shop()), oob: func(e *enginetest.Fake) {
			e.Kill("web-api-1", 137)
			e.Pause("web-api-2")
			e.SetHealth("web-api-3", "unhealthy", "boom")
			e.Rename("web-api-4", "mine")
			e.Disconnect("shop-api-1", "shop_frontend")
			e.SetResources("shop-api-2", fleets.Resources{Memory: 1 << 30, PidsLimit: 100})
			e.SetRestart("shop-api-2", "no")
			e.OOMKill("shop-db-1")
		}},
		{name: "removed containers", before: fl(web(3)), desired: fl(web(3)),
			oob: func(e *enginetest.Fake) { e.Remove("web-api-1"); e.Rename("web-api-2", "web-api-1") }},
		{name: "orphan service", before: fl(webWorker, cache()), desired: fl(web(2), cache())},
		{name: "fleet removed", before: fl(web(1), shop()), desired: fl(shop())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFake(t)
			bystander := e.AddUnmanaged("bystander", map[string]string{fleets.LabelFleet: "web"})
			if tt.before != nil {
				converge(t, e, tt.before...)
			}
			if tt.oob != nil {
				tt.oob(e)
			}
			p, rep := apply(t, e, tt.desired, policy())
			if !rep.OK() {
				t.Fatalf("plan:\n%s\nreport:\n%s", p, reportText(rep))
			}
			assertConverged(t, e, tt.desired)
			assertUntouched(t, e, "bystander", bystander)
		})
	}
}

// assertUntouched fails unless the unmanaged container is still there,
// running, and no call named it.
func assertUntouched(t testing.TB, e *enginetest.Fake, name, id string) {
	t.Helper()
	c, ok := e.Container(name)
	if !ok || c.ID != id || c.State != "running" {
		t.Fatalf("unmanaged container %s changed: %+v", name, c)
	}
	for _, call := range e.Calls() {
		if f := strings.Fields(call); len(f) > 1 && (f[1] == name || f[1] == id) {
			t.Fatalf("call on an unmanaged container: %s", call)
		}
	}
}

// TestExecuteFailureSkipsDependents: a failing create skips only what waits
// for it; rerunning after the failure clears converges.
func TestExecuteFailureSkipsDependents(t *testing.T) {
	e := newFake(t)
	desired := fl(shop(), cache())
	boom := errors.New("boom")
	e.FailOn("CreateContainer", "shop-db-1", boom)
	p, rep := apply(t, e, desired, policy())

	var failed, skipped []string
	for _, r := range rep.Results {
		name := fmt.Sprintf("%s %s", r.Action.Op, r.Action.Target)
		switch r.Status {
		case reconcile.Failed:
			failed = append(failed, name)
			if !errors.Is(r.Err, boom) {
				t.Errorf("%s: err = %v, want boom", name, r.Err)
			}
		case reconcile.Skipped:
			skipped = append(skipped, name)
		}
	}
	wantSkipped := []string{
		"start shop-db-1", "wait-healthy shop-db-1",
		"create shop-api-1", "start shop-api-1", "create shop-api-2", "start shop-api-2",
	}
	if !slices.Equal(failed, []string{"create shop-db-1"}) || !slices.Equal(skipped, wantSkipped) {
		t.Fatalf("failed %q, skipped %q; want only shop-db-1's create failed and its dependents skipped\nplan:\n%s", failed, skipped, p)
	}
	if got := len(rep.Failed()); got != 1 {
		t.Errorf("Report.Failed() has %d results, want 1", got)
	}
	// cache converged despite shop's failure.
	obs := observe(t, e)
	if items := drift.Diff(fl(cache()), obs); len(items) > 0 {
		t.Fatalf("cache not converged:\n%s", drift.Text(items))
	}

	e.ClearFailures()
	converge(t, e, desired...)
}

// TestExecuteCrashResume kills fleetd after every prefix of a plan and
// checks that one more Plan and Execute converge without leftovers.
func TestExecuteCrashResume(t *testing.T) {
	noHeal := func(f fleets.Fleet) fleets.Fleet { f.Policy.SelfHeal = false; return f }
	v2 := func(f fleets.Fleet) fleets.Fleet {
		return withService(f, "api", func(s *fleets.Service) { s.Spec.Image = "app:v2"; s.Spec.Environment["LOG_LEVEL"] = "debug" })
	}
	v3 := func(f fleets.Fleet) fleets.Fleet {
		return withService(v2(f), "api", func(s *fleets.Service) { s.Spec.Environment["LOG_LEVEL"] = "warn" })
	}
	scenarios := []struct {
		name            string
		before, desired []fleets.Fleet
		// then, when set, is what the restarted fleetd is asked for (the
		// spec changed again while it was down).
		then []fleets.Fleet
	}{
		{name: "deploy", desired: fl(shop(), web(2), cache())},
		{name: "deploy, self_heal off", desired: fl(noHeal(shop()), noHeal(web(2)))},
		{name: "replace", before: fl(web(2), shop()), desired: fl(v2(web(2)), v2(shop()))},
		{name: "replace, self_heal off", before: fl(noHeal(web(2))), desired: fl(noHeal(v2(web(2))))},
		{name: "replace and scale down", before: fl(web(3)), desired: fl(v2(web(1)))},
		{name: "replace, then the spec changes again", before: fl(web(2), shop()), desired: fl(v2(web(2)), v2(shop())),
			then: fl(v3(web(2)), v3(shop()))},
	}
	for _, sc := range scenarios {
		then := sc.then
		if then == nil {
			then = sc.desired
		}
		// n is the length of the interrupted plan.
		e := newFake(t)
		if sc.before != nil {
			converge(t, e, sc.before...)
		}
		n := len(reconcile.Plan(sc.desired, observe(t, e), policy()).Actions)
		for k := range n {
			t.Run(fmt.Sprintf("%s/prefix %d of %d", sc.name, k, n), func(t *testing.T) {
				e, bystander := crashSetup(t, sc.before)
				executePrefix(t, e, reconcile.Plan(sc.desired, observe(t, e), policy()), k)
				resumeAndCheck(t, e, then, bystander)
			})
			t.Run(fmt.Sprintf("%s/cancel after %d of %d", sc.name, k, n), func(t *testing.T) {
				e, bystander := crashSetup(t, sc.before)
				p := reconcile.Plan(sc.desired, observe(t, e), policy())
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var mu sync.Mutex
				finished := 0
				if k == 0 {
					cancel()
				}
				reconcile.Execute(ctx, e, p, reconcile.ExecOptions{Progress: func(reconcile.Result) {
					mu.Lock()
					defer mu.Unlock()
					if finished++; finished == k {
						cancel()
					}
				}})
				resumeAndCheck(t, e, then, bystander)
			})
		}
	}
}

func crashSetup(t *testing.T, before []fleets.Fleet) (*enginetest.Fake, string) {
	e := newFake(t)
	bystander := e.AddUnmanaged("bystander", map[string]string{fleets.LabelFleet: "web"})
	if before != nil {
		converge(t, e, before...)
	}
	return e, bystander
}

// resumeAndCheck is the restarted fleetd: observe, plan, execute once.
// Then every wanted slot holds exactly one container with the desired
// hash and name, nothing else is managed, and the bystander is untouched.
func resumeAndCheck(t *testing.T, e *enginetest.Fake, desired []fleets.Fleet, bystander string) {
	t.Helper()
	p, rep := apply(t, e, desired, policy())
	if !rep.OK() {
		t.Fatalf("resuming failed:\nplan:\n%s\nreport:\n%s", p, reportText(rep))
	}
	want := map[string]string{} // container name → hash
	for _, f := range desired {
		for _, s := range f.Services {
			for slot := 1; slot <= s.Replicas; slot++ {
				want[drift.ContainerName(f.Name, s, slot)] = s.Hash
			}
		}
	}
	obs := observe(t, e)
	for _, c := range obs.Containers {
		if !c.Managed() {
			continue
		}
		hash, ok := want[c.Name]
		switch {
		case !ok:
			t.Errorf("leftover container %s after resuming with plan:\n%s", c.Name, p)
		case c.Labels[fleets.LabelSpecHash] != hash:
			t.Errorf("%s has hash %.8s, want %.8s", c.Name, c.Labels[fleets.LabelSpecHash], hash)
		case c.State != "running":
			t.Errorf("%s is %s", c.Name, c.State)
		}
		delete(want, c.Name)
	}
	for name := range want {
		t.Errorf("slot %s is empty after resuming with plan:\n%s", name, p)
	}
	assertConverged(t, e, desired)
	assertUntouched(t, e, "bystander", bystander)
}
