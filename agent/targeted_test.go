package agent

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// TestHealIsTargeted: an apply woken only by an event about the fleet's
// own containers, while the fleet was converged, observes that fleet's
// containers only (Apply.Targeted); anything else that woke it, or is
// left of its last apply, makes it observe the whole host.
func TestHealIsTargeted(t *testing.T) {
	die := EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"}
	c2 := Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2), web("b", 1)}}
	for _, tc := range []struct {
		name string
		// run starts after a's first apply succeeded (b's is in flight, its
		// done never comes) and returns the effects of the input that
		// starts the apply of a to judge.
		run   func(s *sim) []Effect
		fleet fleets.Fleet
		want  bool
	}{
		{name: "converged: the die event of one container", want: true,
			run: func(s *sim) []Effect { return s.in(die) }},
		{name: "a stop event, a second heal", want: true,
			run: func(s *sim) []Effect {
				s.in(EngineEvent{Type: "container", Action: "stop", Name: "a-web-1", Fleet: "a"})
				s.done("a")
				return s.in(die)
			}},
		{name: "a container removed by hand: still a heal, Converge looks wider", want: true,
			run: func(s *sim) []Effect {
				return s.in(EngineEvent{Type: "container", Action: "destroy", Name: "a-web-1", Fleet: "a"})
			}},
		{name: "an event during an apply of a new revision, applied cleanly", want: true,
			run: func(s *sim) []Effect {
				s.in(c2)
				s.in(die)
				return s.done("a")
			}},
		{name: "an event and a new revision during an apply", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.in(c2)
				return s.done("a")
			}},
		{name: "drift left by the last apply", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.in(ApplyDone{Fleet: "a", Revision: "c1", Left: []drift.Item{{Kind: drift.Stopped, Fleet: "a", Service: "web", Container: "a-web-1"}}})
				return s.in(die)
			}},
		{name: "a retryable fault: its retry", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.done("a", timeout)
				s.in(die) // waits for the backoff
				return s.after(10 * time.Minute)
			}},
		{name: "after a retryable fault was retried cleanly", want: true,
			run: func(s *sim) []Effect {
				s.in(die)
				s.done("a", timeout)
				s.after(10 * time.Minute)
				s.done("a")
				return s.in(die)
			}},
		{name: "a rollout under way", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.in(ApplyDone{Fleet: "a", Revision: "c1", Rollouts: []reconcile.RolloutRecord{{Fleet: "a", Service: "web", Status: reconcile.RolloutRunning}}})
				return s.in(die)
			}},
		{name: "a rollout's delayed batch due later", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.in(ApplyDone{Fleet: "a", Revision: "c1", NextAt: s.now.Add(time.Hour)})
				return s.in(die)
			}},
		{name: "stalled", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.done("a", conflict) // on a-web-1: an event about it is also WakeObject
				return s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-2", Fleet: "a"})
			}},
		{name: "a resync asked during an apply", want: false,
			run: func(s *sim) []Effect {
				s.in(die)
				s.in(Surveyed{Drifted: []string{"a"}})
				return s.done("a")
			}},
		{name: "the revision only reported (outside a sync window)", want: false,
			run: func(s *sim) []Effect {
				s.in(c2)
				s.in(ApplyDone{Fleet: "a", Revision: "c2", ReportOnly: true})
				return s.in(die)
			}},
		{name: "a swarm fleet", want: false,
			fleet: func() fleets.Fleet { f := web("a", 1); f.Engine = fleets.EngineSwarm; return f }(),
			run:   func(s *sim) []Effect { return s.in(die) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			a := tc.fleet
			if a.Name == "" {
				a = web("a", 1)
			}
			s.boot(a, web("b", 1))
			s.done("a")
			var got *Apply
			for _, e := range tc.run(s) {
				if ap, ok := e.(Apply); ok && ap.Fleet == "a" {
					got = &ap
				}
			}
			if got == nil {
				t.Fatalf("the die event started no apply of a: %v", s.fx)
			}
			if got.Targeted != tc.want {
				t.Errorf("Targeted %v, want %v (fleet %+v)", got.Targeted, tc.want, s.s.Fleets["a"])
			}
			if got.Targeted && (got.Full || len(got.Desired) != 2) {
				t.Errorf("a targeted apply %+v: want the whole desired state, no full inspect", got)
			}
		})
	}
}
