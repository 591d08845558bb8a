package reconcile_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// genFleets builds 1–3 fleets of 1–3 services with 0–4 replicas; some
// services depend on an earlier one.
func genFleets(r *rand.Rand) []fleets.Fleet {
	var out []fleets.Fleet
	for i := range 1 + r.IntN(3) {
		name := fmt.Sprintf("f%d", i)
		var svcs []fleets.Service
		for j := range 1 + r.IntN(3) {
			svcs = append(svcs, service(name, fmt.Sprintf("s%d", j), r.IntN(5), func(s *fleets.Service) {
				s.Spec.Image = fmt.Sprintf("img:%d", r.IntN(3))
				if j > 0 && r.IntN(3) == 0 {
					cond := []string{fleets.ConditionStarted, fleets.ConditionHealthy}[r.IntN(2)]
					s.DependsOn = []fleets.Dependency{{Service: fmt.Sprintf("s%d", r.IntN(j)), Condition: cond, Required: true}}
				}
				if r.IntN(3) == 0 {
					s.Spec.Healthcheck = &fleets.Healthcheck{Test: []string{"CMD", "true"}}
				}
			}))
		}
		out = append(out, fleet(name, svcs...))
	}
	return out
}

// changeFleets is the next revision: services change spec or replicas,
// appear or go; fleets go.
func changeFleets(r *rand.Rand, in []fleets.Fleet) []fleets.Fleet {
	var out []fleets.Fleet
	for _, f := range in {
		if r.IntN(6) == 0 {
			continue // fleet removed
		}
		f.Services = slices.Clone(f.Services)
		for i := range f.Services {
			s := f.Services[i]
			s.Spec.Environment = cloneMap(s.Spec.Environment)
			switch r.IntN(5) {
			case 0:
				s.Spec.Environment["K"] = strconv.Itoa(r.IntN(3))
			case 1:
				s.Spec.Image = fmt.Sprintf("img:%d", r.IntN(3))
			case 2:
				s.Replicas = r.IntN(5)
			}
			f.Services[i] = rehash(s)
		}
		if r.IntN(5) == 0 {
			f.Services = append(f.Services, service(f.Name, "s9", r.IntN(3)))
		}
		if r.IntN(5) == 0 && len(f.Services) > 1 {
			gone := f.Services[len(f.Services)-1].Name
			f.Services = f.Services[:len(f.Services)-1]
			for i := range f.Services { // nobody depends on a removed service
				f.Services[i].DependsOn = slices.DeleteFunc(slices.Clone(f.Services[i].DependsOn),
					func(d fleets.Dependency) bool { return d.Service == gone })
			}
		}
		out = append(out, f)
	}
	return out
}

// mutateOutOfBand changes the engine the ways a person or the daemon
// would, including unmanaged containers squatting on names fleetd wants.
func mutateOutOfBand(r *rand.Rand, e *enginetest.Fake, wanted []string) {
	for range r.IntN(6) {
		names := e.Names()
		free := func(n string) bool { return !slices.Contains(names, n) }
		if r.IntN(5) == 0 {
			name := fmt.Sprintf("stranger%d", r.IntN(3))
			if r.IntN(2) == 0 {
				name = wanted[r.IntN(len(wanted))]
			}
			if free(name) {
				e.AddUnmanaged(name, map[string]string{fleets.LabelFleet: "f0"})
			}
			continue
		}
		if r.IntN(12) == 0 {
			e.AddImage(fmt.Sprintf("img:%d", r.IntN(3)), "") // the tag moves
			continue
		}
		var managed []string
		for _, n := range names {
			if c, _ := e.Container(n); c.Managed() {
				managed = append(managed, n)
			}
		}
		if len(managed) == 0 {
			continue
		}
		name := managed[r.IntN(len(managed))]
		c, _ := e.Container(name)
		switch r.IntN(10) {
		case 0:
			e.Kill(name, 137)
		case 1:
			e.Stop(name)
		case 2:
			if c.State == "running" {
				e.Pause(name)
			}
		case 3:
			if c.State == "running" {
				e.SetHealth(name, "unhealthy", "boom")
			}
		case 4:
			to := "renamed" + strconv.Itoa(r.IntN(3))
			if r.IntN(2) == 0 {
				to = wanted[r.IntN(len(wanted))]
			}
			if free(to) {
				e.Rename(name, to)
			}
		case 5:
			for _, n := range c.Networks {
				e.Disconnect(name, n)
			}
		case 6:
			e.SetResources(name, fleets.Resources{Memory: 1 << 30, PidsLimit: 50})
		case 7:
			e.SetRestart(name, "no")
		case 8:
			e.Remove(name)
		case 9:
			e.OOMKill(name)
		}
	}
}

// wantedNames are the container names of every slot of fleets, plus one
// more per service.
func wantedNames(fs ...[]fleets.Fleet) []string {
	var out []string
	for _, desired := range fs {
		for _, f := range desired {
			for _, s := range f.Services {
				for slot := 1; slot <= s.Replicas+1; slot++ {
					out = append(out, drift.ContainerName(f.Name, s, slot))
				}
			}
		}
	}
	return out
}

func TestPlanProperties(t *testing.T) {
	seeds := uint64(300)
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			before := genFleets(r)
			desired := changeFleets(r, before)
			e := newFake(t)
			converge(t, e, before...)
			mutateOutOfBand(r, e, wantedNames(before, desired))
			obs := observe(t, e)

			guarded := reconcile.Plan(desired, obs, policy())
			checkPlanInvariants(t, obs, guarded)
			pol := policy()
			pol.AllowMassPrune = true
			p := reconcile.Plan(desired, obs, pol)
			checkPlanInvariants(t, obs, p)

			rep := reconcile.Execute(t.Context(), e, p, reconcile.ExecOptions{})
			if !rep.OK() {
				t.Fatalf("execute failed:\nplan:\n%s\nreport:\n%s\ndrift before:\n%s", p, reportText(rep), drift.Text(p.Drift))
			}
			after := observe(t, e)
			checkUnmanagedUntouched(t, obs, after)
			again := reconcile.Plan(desired, after, pol)
			if !again.Empty() {
				t.Fatalf("not converged after one pass:\nfirst plan:\n%s\ndrift before:\n%s\nsecond plan:\n%s", p, drift.Text(p.Drift), again)
			}
			checkOnlyBlockedDrift(t, again)
		})
	}
}

var knownOps = []reconcile.Op{
	reconcile.OpEnsureNetwork, reconcile.OpEnsureVolume, reconcile.OpPull, reconcile.OpBuild,
	reconcile.OpCreate, reconcile.OpStart, reconcile.OpWaitHealthy, reconcile.OpWaitExit,
	reconcile.OpStop, reconcile.OpRemove, reconcile.OpRename, reconcile.OpRestart,
	reconcile.OpUnpause, reconcile.OpConnect, reconcile.OpUpdate, reconcile.OpRemoveNetwork, reconcile.OpWaitUp, reconcile.OpWaitRecovered,
	reconcile.OpPostStart, reconcile.OpPreStop,
}

// checkPlanInvariants: the plan is a DAG in plan order, never touches an
// object fleetd does not own, never removes a volume, and creates each
// name at most once.
func checkPlanInvariants(t *testing.T, obs drift.Observed, p reconcile.ActionPlan) {
	t.Helper()
	checkDAG(t, p)
	unmanagedByID, unmanagedByName := map[string]bool{}, map[string]bool{}
	for _, c := range obs.Containers {
		if !c.Managed() {
			unmanagedByID[c.ID], unmanagedByName[c.Name] = true, true
		}
	}
	unmanagedNet := map[string]bool{}
	for _, n := range obs.Networks {
		unmanagedNet[n.Name] = !n.Managed()
	}
	created := map[string]bool{}
	for _, a := range p.Actions {
		fail := func(why string) { t.Fatalf("action %d %s %s %s:\n%s", a.ID, a.Op, a.Target, why, p) }
		if !slices.Contains(knownOps, a.Op) {
			fail("has an unknown op (volumes are never removed)")
		}
		if unmanagedByID[a.ContainerID] {
			fail("acts on an unmanaged container")
		}
		switch a.Op {
		case reconcile.OpCreate:
			if created[a.Target] {
				fail("creates a name twice")
			}
			created[a.Target] = true
			if unmanagedByName[a.Target] {
				fail("creates over an unmanaged container")
			}
		case reconcile.OpRemoveNetwork:
			if unmanagedNet[a.Target] {
				fail("removes an unmanaged network")
			}
		case reconcile.OpEnsureNetwork, reconcile.OpEnsureVolume, reconcile.OpPull, reconcile.OpBuild:
		default:
			if a.ContainerID == "" && unmanagedByName[a.Target] {
				fail("names an unmanaged container")
			}
			if a.Op == reconcile.OpRename && unmanagedByName[a.NewName] {
				fail("renames onto an unmanaged container's name")
			}
		}
	}
}

// checkUnmanagedUntouched: every unmanaged container is still there, with
// its name and state.
func checkUnmanagedUntouched(t *testing.T, before, after drift.Observed) {
	t.Helper()
	for _, c := range before.Containers {
		if c.Managed() {
			continue
		}
		i := slices.IndexFunc(after.Containers, func(a drift.Container) bool { return a.ID == c.ID })
		if i < 0 || after.Containers[i].Name != c.Name || after.Containers[i].State != c.State {
			t.Fatalf("unmanaged container %s changed", c.Name)
		}
	}
}

// checkOnlyBlockedDrift: drift left after converging belongs to a fleet or
// service the plan says is blocked by a conflict.
func checkOnlyBlockedDrift(t *testing.T, p reconcile.ActionPlan) {
	t.Helper()
	for _, it := range p.Drift {
		blocked := slices.ContainsFunc(p.Blocked, func(b reconcile.Blocked) bool {
			return b.Error && b.Fleet == it.Fleet && (b.Service == "" || b.Service == it.Service)
		})
		if !blocked {
			t.Fatalf("drift left that no conflict explains: %s/%s %s %s\n%s", it.Fleet, it.Service, it.Container, it.Kind, p)
		}
	}
}
