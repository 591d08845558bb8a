package swarm

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
)

// observed is what a swarm holds right after the stack was deployed as is.
func observed(st Stack) Observed {
	obs := Observed{Services: map[string]ObservedService{}, Networks: map[string]ObservedObject{},
		Secrets: map[string]ObservedObject{}, Configs: map[string]ObservedObject{}, NetworkNames: map[string]string{}}
	for _, n := range st.Networks {
		obs.Networks[n.Name] = ObservedObject{ID: "net-" + n.Name, Owned: true, Fleet: st.Namespace}
		obs.NetworkNames["net-"+n.Name] = n.Name
	}
	for _, f := range st.Secrets {
		obs.Secrets[f.Name] = ObservedObject{ID: "sec-" + f.Name, Owned: true, Fleet: st.Namespace}
	}
	for _, f := range st.Configs {
		obs.Configs[f.Name] = ObservedObject{ID: "cfg-" + f.Name, Owned: true, Fleet: st.Namespace}
	}
	for _, s := range st.Services {
		spec := s.Spec
		// As Swarm stores it: networks by ID, file IDs filled, zero
		// pointers where nothing was said.
		spec.TaskTemplate.Networks = nil
		for _, n := range s.Spec.TaskTemplate.Networks {
			n.Target = "net-" + n.Target
			spec.TaskTemplate.Networks = append(spec.TaskTemplate.Networks, n)
		}
		cs := *spec.TaskTemplate.ContainerSpec
		cs.Isolation = "default"
		spec.TaskTemplate.ContainerSpec = &cs
		zero := uint64(0)
		rp := *spec.TaskTemplate.RestartPolicy
		if rp.MaxAttempts == nil {
			rp.MaxAttempts = &zero
		}
		spec.TaskTemplate.RestartPolicy = &rp
		obs.Services[s.Name] = ObservedService{ID: "svc-" + s.Name, Version: 7, Owned: true, Fleet: st.Namespace, Spec: spec, Running: 3, Desired: 3}
	}
	return obs
}

func shop(t *testing.T) Stack {
	t.Helper()
	st, err := Translate(Input{Fleet: loadFleets(t, "testdata/fleets")["shop"], Instance: "ci", Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDiffDeployedIsClean(t *testing.T) {
	st := shop(t)
	if items := Diff(st, observed(st)); len(items) > 0 {
		t.Fatalf("drift against what was deployed: %+v", items)
	}
}

func TestDiffOutOfBand(t *testing.T) {
	st := shop(t)
	obs := observed(st)
	svc := obs.Services["shop_api"]
	cs := *svc.Spec.TaskTemplate.ContainerSpec
	cs.Env = []string{"MODE=debug-with-s3cret", "PORT=8080"}
	svc.Spec.TaskTemplate.ContainerSpec = &cs
	obs.Services["shop_api"] = svc
	items := Diff(st, obs)
	if len(items) != 1 || items[0].Kind != drift.Modified || items[0].Service != "api" || items[0].Object != ObjService {
		t.Fatalf("items %+v, want one modified service api", items)
	}
	f := items[0].Fields
	if len(f) != 1 || f[0].Field != "container.Env.MODE" || f[0].Want != drift.Redacted || f[0].Have != drift.Redacted {
		t.Fatalf("fields %+v, want container.Env.MODE with both values redacted", f)
	}
	plan := PlanStack(st, obs, Policy{SelfHeal: true})
	if len(plan.Actions) != 1 || plan.Actions[0].Op != OpUpdateService || plan.Actions[0].Version != 7 || plan.Actions[0].ID != "svc-shop_api" {
		t.Fatalf("plan %+v, want one update of svc-shop_api at version 7", plan.Actions)
	}
	if plan := PlanStack(st, obs, Policy{SelfHeal: false}); len(plan.Actions) != 0 || len(plan.Reported) != 1 {
		t.Fatalf("self_heal off: plan %+v, want the drift reported only", plan)
	}
}

func TestPlanOrderAndOwnership(t *testing.T) {
	st := shop(t)
	obs := observed(st)
	// Git changed the secret: a new one is wanted, the old one is extra.
	old := st.Secrets[0].Name
	st.Secrets[0].Name = "shop_token_000000000000"
	cs := *st.Services[0].Spec.TaskTemplate.ContainerSpec
	cs.Secrets = []*swarm.SecretReference{{SecretName: st.Secrets[0].Name, File: cs.Secrets[0].File}}
	st.Services[0].Spec.TaskTemplate.ContainerSpec = &cs
	st.Services[0].Spec.Labels = maps.Clone(st.Services[0].Spec.Labels)
	st.Services[0].Hash, _ = SpecHash(st.Services[0].Spec)
	// Another tool's service holds a name of the fleet; an owned service
	// of another fleet and an unowned secret are none of its business.
	obs.Services["shop_worker"] = ObservedService{ID: "x", Owned: false}
	st.Services = append(st.Services, Service{Name: "shop_worker", Key: "worker", Spec: st.Services[0].Spec, Hash: "h"})
	obs.Secrets["shop_other"] = ObservedObject{ID: "y", Owned: false}
	obs.Services["shop2_api"] = ObservedService{ID: "z", Owned: true, Fleet: "shop2"}
	// Fleet "shop_x" (service "cache") is named like a service of shop.
	obs.Services["shop_x_cache"] = ObservedService{ID: "w", Owned: true, Fleet: "shop_x"}
	st.Services = append(st.Services, Service{Name: "shop_x_cache", Key: "x_cache", Spec: st.Services[0].Spec, Hash: "h2"})

	plan := PlanStack(st, obs, Policy{SelfHeal: true, Prune: true})
	var ops []string
	for _, a := range plan.Actions {
		ops = append(ops, a.Op+" "+a.Name)
	}
	want := "create-secret shop_token_000000000000\nupdate-service shop_api\nremove-secret " + old
	if got := strings.Join(ops, "\n"); got != want {
		t.Errorf("actions:\n%s\nwant:\n%s", got, want)
	}
	if len(plan.Blocked) != 2 || plan.Blocked[0].Container != "shop_worker" || plan.Blocked[1].Container != "shop_x_cache" ||
		plan.Blocked[1].Detail != "belongs to fleet shop_x" {
		t.Errorf("blocked %+v, want the unowned shop_worker and shop_x's shop_x_cache", plan.Blocked)
	}
	if plan := PlanStack(st, obs, Policy{SelfHeal: true, Prune: false}); len(plan.Actions) != 2 {
		t.Errorf("prune off: %d actions, want the create and the update only", len(plan.Actions))
	}
}

func TestRolloutOutcome(t *testing.T) {
	three := uint64(3)
	svc := func(state swarm.UpdateState, started time.Time, running uint64) *swarm.Service {
		s := &swarm.Service{ServiceStatus: &swarm.ServiceStatus{RunningTasks: running, DesiredTasks: 3}}
		s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &three}
		if state != "" {
			s.UpdateStatus = &swarm.UpdateStatus{State: state, StartedAt: &started}
		}
		return s
	}
	before, after := t0, t0.Add(time.Second)
	upd := Action{Op: OpUpdateService, Name: "f_web", PrevUpdate: before}
	cases := []struct {
		name   string
		a      Action
		s      *swarm.Service
		waited time.Duration
		state  swarm.UpdateState
		done   bool
	}{
		{"create, tasks running", Action{Op: OpCreateService, Name: "f_web"}, svc("", time.Time{}, 3), time.Second, "", true},
		{"create, tasks starting", Action{Op: OpCreateService, Name: "f_web"}, svc("", time.Time{}, 1), time.Second, "", false},
		{"update, the updater not started yet", upd, svc(swarm.UpdateStateCompleted, before, 3), time.Second, "", false},
		{"update in place (no updater within the grace)", upd, svc(swarm.UpdateStateCompleted, before, 3), 4 * time.Second, "", true},
		{"update at work", upd, svc(swarm.UpdateStateUpdating, after, 2), 10 * time.Second, swarm.UpdateStateUpdating, false},
		{"update completed", upd, svc(swarm.UpdateStateCompleted, after, 3), time.Second, swarm.UpdateStateCompleted, true},
		{"update paused", upd, svc(swarm.UpdateStatePaused, after, 2), time.Second, swarm.UpdateStatePaused, true},
		{"rolled back", upd, svc(swarm.UpdateStateRollbackCompleted, after, 3), time.Second, swarm.UpdateStateRollbackCompleted, true},
		{"timed out", upd, svc(swarm.UpdateStateUpdating, after, 2), 2 * time.Minute, "timeout", true},
		{"gone, waiting", upd, nil, time.Second, "timeout", false},
	}
	for _, c := range cases {
		o, done := RolloutOutcome(c.a, c.s, c.waited, time.Minute)
		if done != c.done || (done && o.State != c.state) {
			t.Errorf("%s: %+v, done %v; want state %q, done %v", c.name, o, done, c.state, c.done)
		}
		if done && o.Failed() != (c.state != swarm.UpdateStateCompleted && c.state != "") {
			t.Errorf("%s: Failed() = %v", c.name, o.Failed())
		}
	}
}

// Swarm cannot change a service between replicated and global mode in
// place: the plan replaces it, by ID, and says so.
func TestPlanReplacesAcrossModes(t *testing.T) {
	st := shop(t)
	obs := observed(st)
	st.Services[0].Spec.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	plan := PlanStack(st, obs, Policy{SelfHeal: true})
	if len(plan.Actions) != 1 || plan.Actions[0].Op != OpReplaceService || plan.Actions[0].ID != "svc-"+st.Services[0].Name {
		t.Fatalf("plan %+v, want one replace-service of %s by ID", plan.Actions, st.Services[0].Name)
	}
	// The same mode with another count is an update in place.
	st = shop(t)
	n := uint64(9)
	st.Services[0].Spec.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}
	if plan := PlanStack(st, obs, Policy{SelfHeal: true}); len(plan.Actions) != 1 || plan.Actions[0].Op != OpUpdateService {
		t.Fatalf("plan %+v, want an update-service", plan.Actions)
	}
}
