package reconcile_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// withHooks gives f's api service two post_start hooks and one pre_stop
// hook; their environment is never shown.
func withHooks(f fleets.Fleet) fleets.Fleet {
	return withService(f, "api", func(s *fleets.Service) {
		s.PostStart = []fleets.Hook{
			{Command: []string{"chown", "-R", "1001", "/data"}, User: "root"},
			{Command: []string{"/app", "-warm", "hello world"}, Environment: map[string]string{"WARM": "s3cr3t-value"}},
		}
		s.PreStop = []fleets.Hook{{Command: []string{"/app", "-drain"}, WorkingDir: "/srv"}}
	})
}

func TestPlanHooks(t *testing.T) {
	hooked := withHooks(web(2))
	one := withHooks(web(1))
	v2 := withService(one, "api", func(s *fleets.Service) { s.Spec.Image = "app:v2" })
	v2StartFirst := withService(v2, "api", func(s *fleets.Service) { s.Update.Order = fleets.OrderStartFirst })
	// shop's api waits for db healthy: db's hooks come before that wait.
	shopHooked := withService(shop(), "db", func(s *fleets.Service) {
		s.PostStart = []fleets.Hook{{Command: []string{"psql", "-c", "select 1"}}}
	})
	withWorker := withService(fleet("web", service("web", "api", 1), service("web", "worker", 1)), "worker", func(s *fleets.Service) {
		s.PreStop = []fleets.Hook{{Command: []string{"/worker", "-flush"}}}
	})
	workerElsewhere := withService(withWorker, "worker", func(s *fleets.Service) { s.Targets = false })
	cacheElsewhere := cacheHooked()
	cacheElsewhere.Targets = false
	secret := withService(web(1), "api", func(s *fleets.Service) {
		s.PostStart = []fleets.Hook{{Command: []string{"login", "--password", "hunter2"}, Privileged: true}}
	})
	runPlanCases(t, []planCase{
		{name: "deploy: post_start hooks after each start, in order", desired: fl(hooked), want: `fleet web
  1   ensure-network  web_default  network missing
  2   pull            app:v1       image not present
  3   create          web-api-1    missing [after 1 2]
  4   start           web-api-1    new container [after 3]
  5   post-start      web-api-1    post_start hook 1/2: chown -R 1001 /data (user root) [after 4]
  6   post-start      web-api-1    post_start hook 2/2: /app -warm "hello world" [after 5]
  7   create          web-api-2    missing [after 1 2]
  8   start           web-api-2    new container [after 7]
  9   post-start      web-api-2    post_start hook 1/2: chown -R 1001 /data (user root) [after 8]
  10  post-start      web-api-2    post_start hook 2/2: /app -warm "hello world" [after 9]
`,
			check: func(t *testing.T, p reconcile.ActionPlan) {
				js, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(p.String()+string(js), "s3cr3t") {
					t.Errorf("a hook's environment value is shown:\n%s\n%s", p, js)
				}
			}},
		{name: "a dependent's wait comes after the hooks", desired: fl(shopHooked), want: `fleet shop
  1   ensure-network  shop_backend   network missing
  2   ensure-volume   shop_data      volume missing
  3   pull            postgres:16    image not present
  4   create          shop-db-1      missing [after 1 2 3]
  5   start           shop-db-1      new container [after 4]
  6   post-start      shop-db-1      post_start hook 1/1: psql -c "select 1" [after 5]
  7   wait-healthy    shop-db-1      a dependent waits for service_healthy [after 6]
  8   ensure-network  shop_frontend  network missing
  9   pull            app:v1         image not present
  10  create          shop-api-1     missing [after 1 7 8 9]
  11  start           shop-api-1     new container [after 10]
  12  create          shop-api-2     missing [after 1 7 8 9]
  13  start           shop-api-2     new container [after 12]
`},
		{name: "a changed hook recreates nothing", before: fl(web(2)), desired: fl(hooked), want: "nothing to do\n"},
		{name: "scale down: pre_stop before the stop", before: fl(hooked), desired: fl(one), want: `fleet web
  1  pre-stop  web-api-2  pre_stop hook 1/1: /app -drain (in /srv)
  2  stop      web-api-2  extra (slot 2 beyond replicas 1) [after 1]
  3  remove    web-api-2  extra (slot 2 beyond replicas 1) [after 2]
`},
		{name: "stop-first rollout: the old one's pre_stop, the new one's post_start before its gate", before: fl(one), desired: fl(v2), want: `fleet web
  1   pull        app:v2                      image not present
  2   create      web-api-1-next              spec (image: app:v1 → app:v2); rollout 1/1, stop-first [after 1]
  3   pre-stop    web-api-1                   pre_stop hook 1/1: /app -drain (in /srv) [after 2]
  4   stop        web-api-1                   replaced by web-api-1-next [after 3]
  5   remove      web-api-1                   replaced by web-api-1-next [after 4]
  6   rename      web-api-1-next → web-api-1  takes the place of the replaced container [after 5]
  7   start       web-api-1                   replacement [after 6]
  8   post-start  web-api-1                   post_start hook 1/2: chown -R 1001 /data (user root) [after 7]
  9   post-start  web-api-1                   post_start hook 2/2: /app -warm "hello world" [after 8]
  10  wait-up     web-api-1                   health gate: up within 5s, then monitored 0s [after 9]
`},
		{name: "a rollout that adds pre_stop with the new image: the old container, created without it, is stopped without it", before: fl(web(1)), desired: fl(v2), want: `fleet web
  1  pull        app:v2                      image not present
  2  create      web-api-1-next              spec (image: app:v1 → app:v2); rollout 1/1, stop-first [after 1]
  3  stop        web-api-1                   replaced by web-api-1-next [after 2]
  4  remove      web-api-1                   replaced by web-api-1-next [after 3]
  5  rename      web-api-1-next → web-api-1  takes the place of the replaced container [after 4]
  6  start       web-api-1                   replacement [after 5]
  7  post-start  web-api-1                   post_start hook 1/2: chown -R 1001 /data (user root) [after 6]
  8  post-start  web-api-1                   post_start hook 2/2: /app -warm "hello world" [after 7]
  9  wait-up     web-api-1                   health gate: up within 5s, then monitored 0s [after 8]
`},
		{name: "start-first rollout: the new one's post_start before its gate, the old one's pre_stop before its stop", before: fl(one), desired: fl(v2StartFirst), want: `fleet web
  1   pull        app:v2                      image not present
  2   create      web-api-1-next              spec (image: app:v1 → app:v2); rollout 1/1, start-first [after 1]
  3   start       web-api-1-next              new replica, start-first [after 2]
  4   post-start  web-api-1-next              post_start hook 1/2: chown -R 1001 /data (user root) [after 3]
  5   post-start  web-api-1-next              post_start hook 2/2: /app -warm "hello world" [after 4]
  6   wait-up     web-api-1-next              health gate: up within 5s, then monitored 0s [after 5]
  7   pre-stop    web-api-1                   pre_stop hook 1/1: /app -drain (in /srv) [after 6]
  8   stop        web-api-1                   replaced by web-api-1-next [after 7]
  9   remove      web-api-1                   replaced by web-api-1-next [after 8]
  10  rename      web-api-1-next → web-api-1  takes the place of the replaced container [after 9]
`},
		{name: "heal: a stopped container's start runs post_start", before: fl(hooked), desired: fl(hooked), want: `fleet web
  1  start       web-api-1  stopped (Exited (137))
  2  post-start  web-api-1  post_start hook 1/2: chown -R 1001 /data (user root) [after 1]
  3  post-start  web-api-1  post_start hook 2/2: /app -warm "hello world" [after 2]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Kill("web-api-1", 137) }},
		{name: "heal: an unhealthy container's restart runs post_start, and no pre_stop", before: fl(hooked), desired: fl(hooked), want: `fleet web
  1  restart     web-api-2  unhealthy (Up (unhealthy); last check: connection refused)
  2  post-start  web-api-2  post_start hook 1/2: chown -R 1001 /data (user root) [after 1]
  3  post-start  web-api-2  post_start hook 2/2: /app -warm "hello world" [after 2]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.SetHealth("web-api-2", "unhealthy", "connection refused") }},
		{name: "orphan of a service that no longer targets the host: its pre_stop runs", before: fl(withWorker), desired: fl(workerElsewhere), want: `fleet web
  1  pre-stop  web-worker-1  pre_stop hook 1/1: /worker -flush
  2  stop      web-worker-1  orphan (service worker does not target this host) [after 1]
  3  remove    web-worker-1  orphan (service worker does not target this host) [after 2]
`},
		{name: "orphan of a service that left the spec: no hook known", before: fl(withWorker), desired: fl(web(1)), want: `fleet web
  1  stop    web-worker-1  orphan (service worker is not in fleet web)
  2  remove  web-worker-1  orphan (service worker is not in fleet web) [after 1]
`},
		{name: "prune guard: the pre_stop hooks go with the refused stops", before: fl(web(1), cacheHooked()), desired: fl(web(1), cacheElsewhere),
			want: `refused: prune guard: the revision removes 2 of the host's 3 managed containers (limit 50%); rerun with --allow-mass-prune if this is intended
`},
		{name: "prune guard lifted: the pre_stop hooks run", before: fl(web(1), cacheHooked()), desired: fl(web(1), cacheElsewhere),
			pol: func(p *reconcile.Policy) { p.AllowMassPrune = true }, want: `fleet cache
  1  pre-stop        cache-redis-1  pre_stop hook 1/1: redis-cli shutdown save
  2  stop            cache-redis-1  orphan (fleet cache does not target this host) [after 1]
  3  remove          cache-redis-1  orphan (fleet cache does not target this host) [after 2]
  4  pre-stop        cache-redis-2  pre_stop hook 1/1: redis-cli shutdown save
  5  stop            cache-redis-2  orphan (fleet cache does not target this host) [after 4]
  6  remove          cache-redis-2  orphan (fleet cache does not target this host) [after 5]
  7  remove-network  cache_default  network left the spec and is empty [after 3 6]
`},
		{name: "a command that looks secret is redacted, the environment never shown", desired: fl(secret), want: `fleet web
  1  ensure-network  web_default  network missing
  2  pull            app:v1       image not present
  3  create          web-api-1    missing [after 1 2]
  4  start           web-api-1    new container [after 3]
  5  post-start      web-api-1    post_start hook 1/1: <redacted> (privileged) [after 4]
`},
	})
}

// cacheHooked is a fleet of two redis replicas with a pre_stop hook.
func cacheHooked() fleets.Fleet {
	return fleet("cache", service("cache", "redis", 2, func(s *fleets.Service) {
		s.Spec.Image = "redis:7"
		s.PreStop = []fleets.Hook{{Command: []string{"redis-cli", "shutdown", "save"}}}
	}))
}

// Hooks run through the engine in plan order: post_start after each
// start, pre_stop before each stop. A failed post_start fails the start
// (the gate and the rest of the rollout are skipped, the replica counts as
// failed, the container keeps running); a failed pre_stop fails the stop
// (the container keeps running, its removal is skipped); a container that
// stopped before its pre_stop hook ran is stopped and removed all the same.
func TestExecuteHooks(t *testing.T) {
	hookErr := errors.New("post_start hook 1/2 exited with code 3: chown: /data: read-only file system")
	stopErr := errors.New("pre_stop hook 1/1 exited with code 1: drain refused")
	t.Run("deploy and scale down", func(t *testing.T) {
		e := newFake(t)
		converge(t, e, withHooks(web(2)))
		var ran []string
		for _, r := range e.HookRuns() {
			ran = append(ran, r.Container+": "+r.Name+" "+strings.Join(r.Hook.Command, " "))
		}
		slices.Sort(ran)
		want := []string{
			"web-api-1: post_start hook 1/2 chown -R 1001 /data", "web-api-1: post_start hook 2/2 /app -warm hello world",
			"web-api-2: post_start hook 1/2 chown -R 1001 /data", "web-api-2: post_start hook 2/2 /app -warm hello world",
		}
		if !slices.Equal(ran, want) {
			t.Errorf("hooks run:\n%s\nwant:\n%s", strings.Join(ran, "\n"), strings.Join(want, "\n"))
		}
		if r := e.HookRuns()[0]; r.Hook.User != "root" {
			t.Errorf("first hook ran as %q, want root", r.Hook.User)
		}
		e.ResetCalls()
		converge(t, e, withHooks(web(1)))
		if calls := e.Calls(); !inOrder(calls, "ExecHook web-api-2", "StopContainer web-api-2", "RemoveContainer web-api-2") {
			t.Errorf("scale down: pre_stop hook, stop and remove not in order:\n%s", strings.Join(calls, "\n"))
		}
	})
	t.Run("failed post_start fails the replica", func(t *testing.T) {
		e := newFake(t)
		converge(t, e, withHooks(web(1)))
		v2 := withService(withHooks(web(1)), "api", func(s *fleets.Service) {
			s.Spec.Image = "app:v2"
			s.Update.Order = fleets.OrderStartFirst
		})
		e.FailOn("ExecHook", "web-api-1-next", hookErr)
		p, rep := apply(t, e, fl(v2), policy())
		if got := statuses(rep, reconcile.OpPostStart, reconcile.OpWaitUp); got != "post-start failed, post-start skipped, wait-up skipped" {
			t.Errorf("post-start and gate: %s\n%s", got, reportText(rep))
		}
		rollouts, _ := reconcile.Advance(nil, p, rep, now)
		rec := rollouts["web/api"]
		if rec.Status != reconcile.RolloutPaused || !strings.Contains(rec.Reason, "exited with code 3") {
			t.Errorf("rollout record %+v, want paused naming the hook's failure", rec)
		}
		if c := findObserved(t, e, "web-api-1-next"); c.State != "running" {
			t.Errorf("the replica whose hook failed is %s, want it left running, as docker compose leaves it", c.State)
		}
		if c := findObserved(t, e, "web-api-1"); c.State != "running" || c.Labels[fleets.LabelSpecHash] != withHooks(web(1)).Services[0].Hash {
			t.Errorf("the old replica is %s with spec %s, want it left running", c.State, c.Labels[fleets.LabelSpecHash])
		}
	})
	t.Run("failed pre_stop fails the stop", func(t *testing.T) {
		e := newFake(t)
		converge(t, e, withHooks(web(2)))
		e.FailOn("ExecHook", "web-api-2", stopErr)
		_, rep := apply(t, e, fl(withHooks(web(1))), policy())
		if got := statuses(rep, reconcile.OpPreStop, reconcile.OpStop, reconcile.OpRemove); got != "pre-stop failed, stop skipped, remove skipped" {
			t.Errorf("scale down: %s\n%s", got, reportText(rep))
		}
		if f := rep.Failed(); len(f) != 1 || !strings.Contains(f[0].Error, "drain refused") {
			t.Errorf("failures %+v, want the hook's", f)
		}
		if c := findObserved(t, e, "web-api-2"); c.State != "running" {
			t.Errorf("the container whose pre_stop failed is %s, want it left running", c.State)
		}
	})
	t.Run("pre_stop of a container that stopped meanwhile", func(t *testing.T) {
		e := newFake(t)
		converge(t, e, withHooks(web(2)))
		p := reconcile.Plan(fl(withHooks(web(1))), observe(t, e), policy())
		e.Stop("web-api-2") // after the observation the plan was made from
		rep := reconcile.Execute(t.Context(), e, p, reconcile.ExecOptions{})
		if !rep.OK() {
			t.Fatalf("scale down:\n%s", reportText(rep))
		}
		assertConverged(t, e, fl(withHooks(web(1))))
	})
}

// statuses lists the outcomes of the actions with the given ops, in plan
// order.
func statuses(rep reconcile.Report, ops ...reconcile.Op) string {
	var out []string
	for _, r := range rep.Results {
		if slices.Contains(ops, r.Action.Op) {
			out = append(out, string(r.Action.Op)+" "+string(r.Status))
		}
	}
	return strings.Join(out, ", ")
}

// inOrder reports whether calls holds each of want (as a prefix of a
// call), in that order.
func inOrder(calls []string, want ...string) bool {
	for _, c := range calls {
		if len(want) > 0 && strings.HasPrefix(c, want[0]) {
			want = want[1:]
		}
	}
	return len(want) == 0
}

// findObserved returns the observed container named name.
func findObserved(t *testing.T, e *enginetest.Fake, name string) drift.Container {
	t.Helper()
	for _, c := range observe(t, e).Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return drift.Container{}
}
