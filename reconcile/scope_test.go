package reconcile_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// A plan scoped to one fleet acts on that fleet only, while drift,
// conflicts and the prune guard still see the whole host.
func TestPlanScope(t *testing.T) {
	e := newFake(t)
	var all []fleets.Fleet
	for _, name := range []string{"a", "b", "c", "d"} {
		all = append(all, fleet(name, service(name, "web", 1)))
	}
	converge(t, e, all...)
	e.Stop("a-web-1")
	e.Stop("b-web-1")
	pol := policy()
	pol.Scope = []string{"b"}
	p := reconcile.Plan(all, observe(t, e), pol)
	if len(p.Actions) == 0 {
		t.Fatalf("scoped to b: no action\n%s", p)
	}
	for _, a := range p.Actions {
		if a.Fleet != "b" {
			t.Errorf("scoped to b, the plan acts on %s: %s %s", a.Fleet, a.Op, a.Target)
		}
	}
	stopped := 0
	for _, it := range p.Drift {
		if it.Kind == drift.Stopped {
			stopped++
		}
	}
	if stopped != 2 {
		t.Errorf("drift of the whole host: %d stopped, want 2 (a and b)", stopped)
	}

	// Three of the four fleets leave: each fleet's own prune removes a
	// quarter of the host, the host-wide guard counts three quarters.
	pol.Scope = []string{"a"}
	p = reconcile.Plan(all[3:], observe(t, e), pol)
	if !strings.Contains(p.Refused, "3 of the host's 4") {
		t.Errorf("a scoped prune slipped past the guard: refused %q\n%s", p.Refused, p)
	}
	for _, a := range p.Actions {
		if a.Op == reconcile.OpRemove || a.Op == reconcile.OpRemoveNetwork {
			t.Errorf("refused, yet %s %s", a.Op, a.Target)
		}
	}
	// Allowed, it removes a's container and network only.
	pol.AllowMassPrune = true
	p = reconcile.Plan(all[3:], observe(t, e), pol)
	var removed []string
	for _, a := range p.Actions {
		if a.Op == reconcile.OpRemove || a.Op == reconcile.OpRemoveNetwork {
			removed = append(removed, fmt.Sprintf("%s %s", a.Op, a.Target))
		}
	}
	if got := strings.Join(removed, ", "); got != "remove a-web-1, remove-network a_default" {
		t.Errorf("scoped prune removes %q, want a's container and network", got)
	}
}
