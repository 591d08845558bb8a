package reconcile_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// observed records the options of every observation a Converge makes.
type observed struct {
	reconcile.Engine
	fleets []string // ObserveOptions.Fleet of each, in order
}

func (o *observed) Observe(ctx context.Context, opts drift.ObserveOptions) (drift.Observed, error) {
	o.fleets = append(o.fleets, opts.Fleet)
	return o.Engine.Observe(ctx, opts)
}

// A targeted Converge observes only its fleet's containers while what it
// plans is a heal, and the whole host as soon as it plans anything else:
// the outcome is the same as an untargeted one.
func TestConvergeTargeted(t *testing.T) {
	four := func() []fleets.Fleet {
		var all []fleets.Fleet
		for _, name := range []string{"a", "b", "c", "d"} {
			all = append(all, fleet(name, service(name, "web", 2)))
		}
		return all
	}
	for _, tc := range []struct {
		name string
		// oob changes the host by hand before the apply of fleet a.
		oob     func(e *enginetest.Fake)
		desired func([]fleets.Fleet) []fleets.Fleet
		// observations: ObserveOptions.Fleet of each observation.
		observations []string
		// check judges the outcome.
		check func(t *testing.T, e *enginetest.Fake, out reconcile.Outcome)
	}{{
		name:         "a stopped container is started, observing fleet a only",
		oob:          func(e *enginetest.Fake) { e.Stop("a-web-1") },
		observations: []string{"a", "a"},
		check: func(t *testing.T, e *enginetest.Fake, out reconcile.Outcome) {
			if len(out.Plans) != 1 || len(out.Plans[0].Actions) != 1 || out.Plans[0].Actions[0].Op != reconcile.OpStart {
				t.Errorf("want one plan that starts a-web-1, got %v", out.Plans)
			}
		},
	}, {
		name:         "nothing to do: one targeted observation",
		oob:          func(*enginetest.Fake) {},
		observations: []string{"a"},
	}, {
		name:         "a container removed by hand is recreated from a whole-host observation",
		oob:          func(e *enginetest.Fake) { e.Remove("a-web-2") },
		observations: []string{"a", "", ""},
	}, {
		name: "a squatter on a removed container's name is a conflict, as untargeted",
		oob: func(e *enginetest.Fake) {
			e.Remove("a-web-2")
			e.AddUnmanaged("a-web-2", nil)
		},
		observations: []string{"a", ""},
		check: func(t *testing.T, e *enginetest.Fake, out reconcile.Outcome) {
			if len(out.Last.Blocked) == 0 || !strings.Contains(out.Last.String(), "conflict") {
				t.Errorf("want the name conflict blocked, got\n%s", out.Last)
			}
		},
	}, {
		name:         "a prune is guarded over the whole host",
		oob:          func(*enginetest.Fake) {},
		desired:      func(all []fleets.Fleet) []fleets.Fleet { return all[3:] }, // a, b, c leave
		observations: []string{"a", ""},
		check: func(t *testing.T, e *enginetest.Fake, out reconcile.Outcome) {
			if !strings.Contains(out.Last.Refused, "6 of the host's 8") {
				t.Errorf("a targeted prune slipped past the guard: refused %q\n%s", out.Last.Refused, out.Last)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake(t)
			all := four()
			converge(t, e, all...)
			tc.oob(e)
			desired := all
			if tc.desired != nil {
				desired = tc.desired(all)
			}
			eng := &observed{Engine: e}
			pol := policy()
			pol.Scope = []string{"a"}
			out, err := reconcile.Converge(t.Context(), eng, desired, pol, reconcile.ConvergeOptions{Targeted: true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(eng.fleets, tc.observations) {
				t.Errorf("observations of fleet %q, want %q", eng.fleets, tc.observations)
			}
			if tc.check != nil {
				tc.check(t, e, out)
			}
			// Same end state as an untargeted Converge.
			if want := reconcile.Plan(desired, observe(t, e), pol); !want.Empty() && want.Refused == "" && len(want.Blocked) == 0 {
				t.Errorf("fleet a not converged after a targeted Converge:\n%s", want)
			}
		})
	}
}
