package agent

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// world is the shell around Next in the property test: it holds the
// effects in flight and answers them at random, like the real adapters
// would, and checks the invariants after every input.
type world struct {
	t   *testing.T
	rng *rand.Rand
	sim *sim
	rev int
	// in flight
	applies   map[string]Apply
	fetching  bool
	watching  bool
	surveying bool
	resumes   []Resume
	// for the trigger check: when each fleet was last woken by an event
	// about its own containers or a sync, and when an apply of it last
	// started.
	woken   map[string]time.Time
	started map[string]time.Time
}

var propFleets = []string{"a", "b", "c", "d"}

func (w *world) feed(in Input) {
	w.t.Helper()
	before := w.sim.s
	fx := w.sim.in(in)
	for _, e := range fx {
		switch e := e.(type) {
		case Apply:
			if _, busy := w.applies[e.Fleet]; busy {
				w.t.Fatalf("second apply of %s while one runs (after %T)", e.Fleet, in)
			}
			if !w.sim.s.Engine.Up {
				w.t.Fatalf("apply of %s while the engine is not up", e.Fleet)
			}
			w.applies[e.Fleet] = e
			w.started[e.Fleet] = w.sim.now
		case Fetch:
			if w.fetching {
				w.t.Fatalf("second fetch in flight")
			}
			w.fetching = true
		case Watch:
			w.watching = true
		case Resume:
			w.resumes = append(w.resumes, e)
		case Survey:
			if w.surveying {
				w.t.Fatalf("second survey in flight")
			}
			w.surveying = true
		}
	}
	if n := len(w.applies); n != w.sim.s.Running || n > w.sim.rules.WithDefaults().Parallel {
		w.t.Fatalf("%d applies in flight, state says %d, bound %d", n, w.sim.s.Running, w.sim.rules.WithDefaults().Parallel)
	}
	if done, ok := in.(ApplyDone); ok {
		f, still := w.sim.s.Fleets[done.Fleet]
		permanentOnly := len(done.Faults) > 0 && !slices.ContainsFunc(done.Faults, func(x Fault) bool { return x.Class != fault.Permanent })
		if still && permanentOnly && !f.RetryAt.IsZero() {
			w.t.Fatalf("a permanent fault of %s armed a retry at %s", done.Fleet, f.RetryAt)
		}
	}
	_ = before
}

func (w *world) step() {
	switch r := w.rng.IntN(100); {
	case r < 25:
		name := propFleets[w.rng.IntN(len(propFleets))]
		if w.rng.IntN(4) == 0 {
			w.feed(EngineEvent{Type: "container", Action: "destroy", Name: name + "-web-1"}) // a squatter leaves
			return
		}
		if f, ok := w.sim.s.Fleets[name]; ok && f.live() {
			w.woken[name] = w.sim.now
		}
		w.feed(EngineEvent{Type: "container", Action: "die", Name: name + "-web-1", Fleet: name})
	case r < 55:
		if len(w.applies) == 0 {
			w.feed(TimerFired{})
			return
		}
		names := sortedKeys(w.applies)
		name := names[w.rng.IntN(len(names))]
		delete(w.applies, name)
		w.feed(ApplyDone{Fleet: name, Revision: w.sim.s.Fleets[name].Rev.Commit, Faults: w.randomFaults(name)})
	case r < 70:
		w.sim.now = w.sim.now.Add(time.Duration(w.rng.IntN(120)) * time.Second)
		w.feed(TimerFired{})
	case r < 75:
		w.feed(FetchRequested{})
	case r < 78:
		for _, name := range propFleets {
			if f, ok := w.sim.s.Fleets[name]; ok && f.live() {
				w.woken[name] = w.sim.now
			}
		}
		w.feed(SyncRequested{})
	case r < 88:
		if !w.fetching {
			w.feed(FetchRequested{})
			return
		}
		w.fetching = false
		if w.rng.IntN(5) == 0 {
			w.feed(FetchFailed{Err: "unreachable"})
			return
		}
		w.feed(w.randomRevision())
	case r < 94:
		if w.watching {
			w.watching = false
			if w.rng.IntN(3) == 0 {
				w.feed(EngineLost{Err: "refused"})
			} else {
				w.feed(EngineUp{})
			}
			return
		}
		if w.sim.s.Engine.Up && w.rng.IntN(2) == 0 {
			w.feed(EngineLost{Err: "EOF"})
		}
	default:
		if w.surveying {
			w.surveying = false
			w.feed(Surveyed{Drifted: []string{propFleets[w.rng.IntN(len(propFleets))]}})
			return
		}
		if len(w.resumes) > 0 {
			r := w.resumes[0]
			w.resumes = w.resumes[1:]
			var fs []fleets.Fleet
			for _, name := range r.Fleets {
				fs = append(fs, web(name, 1))
			}
			w.feed(Resumed{Rev: rev(r.Commit), For: r.Fleets, Fleets: fs})
		}
	}
}

func (w *world) randomFaults(name string) []Fault {
	switch w.rng.IntN(6) {
	case 0:
		return []Fault{{Class: fault.Permanent, Reason: fault.Conflict, Object: name + "-web-1", Message: "conflict"}}
	case 1:
		return []Fault{{Class: fault.Retryable, Reason: fault.Timeout, Message: "timed out"}}
	case 2:
		if w.rng.IntN(3) == 0 {
			return []Fault{{Class: fault.Retryable, Reason: fault.EngineUnreachable, Message: "down"}}
		}
	case 3:
		return []Fault{{Class: fault.Permanent, Reason: fault.ImageNotFound, Object: "app:v9", Message: "no image"}, {Class: fault.Retryable, Reason: fault.PullFailed, Message: "pull"}}
	}
	return nil
}

func (w *world) randomRevision() Fetched {
	w.rev++
	in := Fetched{Rev: rev(fmt.Sprintf("c%d", w.rev)), Changed: true, Loaded: true}
	for _, name := range propFleets {
		switch w.rng.IntN(6) {
		case 0: // left the spec
		case 1:
			in.Problems = append(in.Problems, fleets.Problem{Fleet: name, Message: "bad"})
		default:
			in.Fleets = append(in.Fleets, web(name, 1+w.rng.IntN(3)))
		}
	}
	if w.rng.IntN(15) == 0 {
		in.Problems = append(in.Problems, fleets.Problem{File: "x", Message: "global"})
	}
	return in
}

// drain answers everything in flight with success and lets time pass
// until the agent is idle; it fails if it never is.
func (w *world) drain() {
	w.t.Helper()
	for i := 0; i < 2000; i++ {
		switch {
		case w.watching:
			w.watching = false
			w.feed(EngineUp{})
		case w.fetching:
			w.fetching = false
			w.feed(Fetched{Rev: *orRev(w.sim.s.Revision)})
		case w.surveying:
			w.surveying = false
			w.feed(Surveyed{})
		case len(w.resumes) > 0:
			r := w.resumes[0]
			w.resumes = w.resumes[1:]
			w.feed(Resumed{Rev: rev(r.Commit), For: r.Fleets, Err: "gone"})
		case len(w.applies) > 0:
			name := sortedKeys(w.applies)[0]
			delete(w.applies, name)
			w.feed(ApplyDone{Fleet: name, Revision: w.sim.s.Fleets[name].Rev.Commit})
		default:
			pending := false
			for _, f := range w.sim.s.Fleets {
				pending = pending || (f.Pending != 0 && f.live())
			}
			if !pending {
				return
			}
			if w.sim.s.TimerAt.IsZero() {
				w.t.Fatalf("fleets pending, nothing in flight, and no timer: %+v", w.sim.s.Fleets)
			}
			w.sim.now = w.sim.s.TimerAt
			w.feed(TimerFired{})
		}
	}
	w.t.Fatalf("the agent never became idle")
}

func orRev(r *reconcile.Revision) *reconcile.Revision {
	if r == nil {
		x := rev("c0")
		return &x
	}
	return r
}

// TestMachineProperties drives Next with random inputs and checks, for
// every sequence: at most one apply per fleet and at most Parallel in
// flight; no apply while the engine is not up; a permanent fault never
// arms a retry; and no trigger is lost: once everything in flight is
// answered and the timers have fired, every fleet woken by an event about
// its containers or a sync was applied after it.
func TestMachineProperties(t *testing.T) {
	for seed := range uint64(400) {
		w := &world{t: t, rng: rand.New(rand.NewPCG(seed, 7)), sim: newSim(t),
			applies: map[string]Apply{}, woken: map[string]time.Time{}, started: map[string]time.Time{}}
		w.sim.rules.Parallel = 2
		w.feed(Start{Fleets: map[string]SavedFleet{"a": {Commit: "c0"}}})
		for range 150 {
			w.step()
		}
		w.drain()
		for name, at := range w.woken {
			f, ok := w.sim.s.Fleets[name]
			if !ok || !f.live() {
				continue // pruned and forgotten, or no model any more
			}
			if w.started[name].Before(at) {
				t.Fatalf("seed %d: %s woken at %s, last applied at %s: a trigger was lost", seed, name, at, w.started[name])
			}
		}
	}
}
