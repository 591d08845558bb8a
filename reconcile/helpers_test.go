package reconcile_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
	"github.com/fleetd/fleetd/reconcile"
)

// now is the planning time of every test: the fake's clock starts in 2025,
// and heal backoffs are computed against this.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var (
	service = fleetstest.Service
	rehash  = fleetstest.Rehash
	fleet   = fleetstest.Fleet
)

// withService returns a copy of f with the named service replaced by mod's
// result (rehashed).
func withService(f fleets.Fleet, name string, mod func(*fleets.Service)) fleets.Fleet {
	f.Services = slices.Clone(f.Services)
	for i := range f.Services {
		if f.Services[i].Name == name {
			s := f.Services[i]
			s.Spec.Environment = cloneMap(s.Spec.Environment)
			mod(&s)
			f.Services[i] = rehash(s)
			return f
		}
	}
	panic("no service " + name)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// shop is a two-service fleet: a database with a healthcheck and a named
// volume on the backend network, and an API with two replicas on both
// networks that waits for the database to be healthy.
func shop() fleets.Fleet {
	db := service("shop", "db", 1, func(s *fleets.Service) {
		s.Spec.Image = "postgres:16"
		s.Spec.Networks = []fleets.NetworkAttachment{{Network: "shop_backend", Aliases: []string{"db"}}}
		s.Spec.Mounts = []fleets.Mount{{Type: "volume", Source: "shop_data", Target: "/var/lib/postgresql/data"}}
		s.Spec.Healthcheck = &fleets.Healthcheck{Test: []string{"CMD", "pg_isready"}, Interval: time.Second}
	})
	api := service("shop", "api", 2, func(s *fleets.Service) {
		s.Spec.Networks = []fleets.NetworkAttachment{
			{Network: "shop_backend", Aliases: []string{"api"}},
			{Network: "shop_frontend", Aliases: []string{"api"}},
		}
		s.DependsOn = []fleets.Dependency{{Service: "db", Condition: fleets.ConditionHealthy, Required: true}}
	})
	return fleets.Fleet{
		Name:     "shop",
		Targets:  true,
		Policy:   fleets.Policy{SelfHeal: true, Prune: true},
		Services: []fleets.Service{api, db},
		Networks: []fleets.Network{{Key: "backend", Name: "shop_backend"}, {Key: "frontend", Name: "shop_frontend"}},
		Volumes:  []fleets.Volume{{Key: "data", Name: "shop_data"}},
	}
}

// web is a one-service fleet with n replicas of app:v1.
func web(n int) fleets.Fleet { return fleet("web", service("web", "api", n)) }

// newFake returns an empty engine whose registry holds the images the
// tests use.
func newFake(t testing.TB) *enginetest.Fake {
	e := enginetest.New(t)
	for _, ref := range []string{"app:v1", "app:v2", "postgres:16", "redis:7", "img:0", "img:1", "img:2"} {
		e.AddRemoteImage(ref, imageID(ref))
	}
	return e
}

// imageID is a fixed, readable image ID: the ref in hex, so that plan
// goldens do not depend on the fake's ID sequence.
func imageID(ref string) string {
	return fmt.Sprintf("sha256:%-064x", ref)[:7] + strings.ReplaceAll(fmt.Sprintf("%-64x", ref), " ", "0")
}

func policy() reconcile.Policy { return reconcile.Policy{Now: now, Revision: "c0ffee"} }

func observe(t testing.TB, e *enginetest.Fake) drift.Observed {
	t.Helper()
	obs, err := e.Observe(t.Context(), drift.ObserveOptions{InspectAll: true})
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// apply plans desired against the fake and executes the plan; it returns
// the plan and the report.
func apply(t testing.TB, e *enginetest.Fake, desired []fleets.Fleet, pol reconcile.Policy) (reconcile.ActionPlan, reconcile.Report) {
	t.Helper()
	p := reconcile.Plan(desired, observe(t, e), pol)
	checkDAG(t, p)
	rep := reconcile.Execute(t.Context(), e, p, reconcile.ExecOptions{})
	return p, rep
}

// converge applies desired and fails the test unless every action
// succeeded and the host is in sync afterwards.
func converge(t testing.TB, e *enginetest.Fake, desired ...fleets.Fleet) {
	t.Helper()
	p, rep := apply(t, e, desired, policy())
	if !rep.OK() {
		t.Fatalf("converging failed:\nplan:\n%s\nreport:\n%s", p, reportText(rep))
	}
	assertConverged(t, e, desired)
}

// assertConverged fails unless the host shows no drift and a second plan
// is empty.
func assertConverged(t testing.TB, e *enginetest.Fake, desired []fleets.Fleet) {
	t.Helper()
	obs := observe(t, e)
	if items := drift.Diff(desired, obs); len(items) > 0 {
		t.Fatalf("not converged:\n%s\ncalls:\n%s", drift.Text(items), strings.Join(e.Calls(), "\n"))
	}
	if p := reconcile.Plan(desired, obs, policy()); p.String() != "nothing to do\n" {
		t.Fatalf("second plan is not empty:\n%s", p)
	}
}

func reportText(rep reconcile.Report) string {
	var b strings.Builder
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "%d %s %s: %s %s\n", r.Action.ID, r.Action.Op, r.Action.Target, r.Status, r.Error)
	}
	return b.String()
}

// checkDAG fails unless every action's ID is its position and it waits
// only for earlier actions.
func checkDAG(t testing.TB, p reconcile.ActionPlan) {
	t.Helper()
	for i, a := range p.Actions {
		if a.ID != i+1 {
			t.Fatalf("action %d has ID %d:\n%s", i+1, a.ID, p)
		}
		for _, dep := range a.After {
			if dep < 1 || dep >= a.ID {
				t.Fatalf("action %d waits for %d:\n%s", a.ID, dep, p)
			}
		}
		if a.ImageFrom != 0 && (a.ImageFrom >= a.ID || !slices.Contains(a.After, a.ImageFrom)) {
			t.Fatalf("action %d takes its image from %d, which it does not wait for:\n%s", a.ID, a.ImageFrom, p)
		}
	}
}

// executePrefix executes only the first k actions of p, as a fleetd killed
// after them would have, and fails the test unless they all succeeded.
func executePrefix(t testing.TB, e *enginetest.Fake, p reconcile.ActionPlan, k int) {
	t.Helper()
	p.Actions = p.Actions[:k]
	if rep := reconcile.Execute(t.Context(), e, p, reconcile.ExecOptions{}); !rep.OK() {
		t.Fatalf("executing the first %d actions:\n%s", k, reportText(rep))
	}
}

// interrupt converges before, then plans desired and executes its first k
// actions.
func interrupt(t testing.TB, e *enginetest.Fake, before, desired []fleets.Fleet, k int) {
	t.Helper()
	converge(t, e, before...)
	executePrefix(t, e, reconcile.Plan(desired, observe(t, e), policy()), k)
}
