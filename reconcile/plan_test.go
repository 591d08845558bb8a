package reconcile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// planCase is one planner golden: the fleets converged first (none: an
// empty host), out-of-band changes, then the plan for desired as text.
type planCase struct {
	name    string
	before  []fleets.Fleet
	oob     func(t *testing.T, e *enginetest.Fake)
	desired []fleets.Fleet
	pol     func(*reconcile.Policy)
	want    string
	check   func(t *testing.T, p reconcile.ActionPlan)
}

func runPlanCases(t *testing.T, cases []planCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake(t)
			if tc.before != nil {
				converge(t, e, tc.before...)
			}
			if tc.oob != nil {
				tc.oob(t, e)
			}
			pol := policy()
			if tc.pol != nil {
				tc.pol(&pol)
			}
			obs := observe(t, e)
			p := reconcile.Plan(tc.desired, obs, pol)
			checkDAG(t, p)
			if got := stableIDs(p.String(), obs); got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s\ndrift:\n%s", got, tc.want, drift.Text(p.Drift))
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// stableIDs replaces the short IDs of observed containers, which depend on
// the order the fake ran parallel actions in, with ID(<name>).
func stableIDs(text string, obs drift.Observed) string {
	for _, c := range obs.Containers {
		text = strings.ReplaceAll(text, c.ID[:12], "ID("+c.Name+")")
	}
	return text
}

func fl(fs ...fleets.Fleet) []fleets.Fleet { return fs }

func TestPlanDeploy(t *testing.T) {
	runPlanCases(t, []planCase{
		{name: "empty host: full deploy", desired: fl(shop()), want: `fleet shop
  1   ensure-network  shop_backend   network missing
  2   ensure-volume   shop_data      volume missing
  3   pull            postgres:16    image not present
  4   create          shop-db-1      missing [after 1 2 3]
  5   start           shop-db-1      new container [after 4]
  6   wait-healthy    shop-db-1      a dependent waits for service_healthy [after 5]
  7   ensure-network  shop_frontend  network missing
  8   pull            app:v1         image not present
  9   create          shop-api-1     missing [after 1 6 7 8]
  10  start           shop-api-1     new container [after 9]
  11  create          shop-api-2     missing [after 1 6 7 8]
  12  start           shop-api-2     new container [after 11]
`},
		{name: "in sync", before: fl(shop()), desired: fl(shop()), want: "nothing to do\n"},
		{name: "scale up 2 to 4", before: fl(web(2)), desired: fl(web(4)), want: `fleet web
  1  create  web-api-3  missing
  2  start   web-api-3  new container [after 1]
  3  create  web-api-4  missing
  4  start   web-api-4  new container [after 3]
`},
		{name: "scale down 4 to 2", before: fl(web(4)), desired: fl(web(2)), want: `fleet web
  1  stop    web-api-3  extra (slot 3 beyond replicas 2)
  2  remove  web-api-3  extra (slot 3 beyond replicas 2) [after 1]
  3  stop    web-api-4  extra (slot 4 beyond replicas 2)
  4  remove  web-api-4  extra (slot 4 beyond replicas 2) [after 3]
`},
		{name: "scale down 4 to 1 is not prune", before: fl(web(4)), desired: fl(web(1)), want: `fleet web
  1  stop    web-api-2  extra (slot 2 beyond replicas 1)
  2  remove  web-api-2  extra (slot 2 beyond replicas 1) [after 1]
  3  stop    web-api-3  extra (slot 3 beyond replicas 1)
  4  remove  web-api-3  extra (slot 3 beyond replicas 1) [after 3]
  5  stop    web-api-4  extra (slot 4 beyond replicas 1)
  6  remove  web-api-4  extra (slot 4 beyond replicas 1) [after 5]
`},
		{name: "spec change", before: fl(web(2)),
			desired: fl(withService(web(2), "api", func(s *fleets.Service) { s.Spec.Environment["LOG_LEVEL"] = "debug" })), want: `fleet web
  1   create   web-api-1-next              spec (environment.LOG_LEVEL: info → debug); rollout 1/2, stop-first
  2   stop     web-api-1                   replaced by web-api-1-next [after 1]
  3   remove   web-api-1                   replaced by web-api-1-next [after 2]
  4   rename   web-api-1-next → web-api-1  takes the place of the replaced container [after 3]
  5   start    web-api-1                   replacement [after 4]
  6   wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 5]
  7   create   web-api-2-next              spec (environment.LOG_LEVEL: info → debug); rollout 2/2, stop-first
  8   stop     web-api-2                   replaced by web-api-2-next [after 7]
  9   remove   web-api-2                   replaced by web-api-2-next [after 8]
  10  rename   web-api-2-next → web-api-2  takes the place of the replaced container [after 9]
  11  start    web-api-2                   replacement [after 10]
  12  wait-up  web-api-2                   health gate: up within 5s, then monitored 0s [after 11]
`},
		{name: "image drift", before: fl(web(1)),
			oob:     func(t *testing.T, e *enginetest.Fake) { e.AddImage("app:v1", "sha256:feedfacefeedfacefeedface") },
			desired: fl(web(1)), want: `fleet web
  1  create   web-api-1-next              image (image_id: 6170703a7631 → feedfacefeed); rollout 1/1, stop-first
  2  stop     web-api-1                   replaced by web-api-1-next [after 1]
  3  remove   web-api-1                   replaced by web-api-1-next [after 2]
  4  rename   web-api-1-next → web-api-1  takes the place of the replaced container [after 3]
  5  start    web-api-1                   replacement [after 4]
  6  wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 5]
`},
	})
}

func TestPlanHeal(t *testing.T) {
	noHeal := web(2)
	noHeal.Policy.SelfHeal = false
	suspended := withService(web(2), "api", func(s *fleets.Service) { s.Spec.Environment["LOG_LEVEL"] = "debug" })
	suspended.Policy.Suspend = true
	joins := withService(web(2), "api", func(s *fleets.Service) { s.Spec.Ipc = "service:db" })
	runPlanCases(t, []planCase{
		{name: "stopped: start", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  start  web-api-1  stopped (Exited (137))
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Kill("web-api-1", 137) }},
		{name: "paused: unpause", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  unpause         web-api-2  paused (Up (Paused))
  2  wait-recovered  web-api-2  health checks failed while it was paused [after 1]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Pause("web-api-2") }},
		{name: "unhealthy: restart", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  restart  web-api-2  unhealthy (Up (unhealthy); last check: connection refused)
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.SetHealth("web-api-2", "unhealthy", "connection refused") }},
		{name: "renamed: rename back", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  rename  mine → web-api-2  modified (name: mine → web-api-2)
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Rename("web-api-2", "mine") }},
		{name: "disconnected: connect", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  connect  web-api-1 → web_default  modified (networks.web_default: disconnected → connected)
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Disconnect("web-api-1", "web_default") }},
		{name: "docker update: update with the applied spec", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  update  web-api-1  modified (resources.memory: 1073741824 → 268435456; restart: no → unless-stopped)
`,
			oob: func(t *testing.T, e *enginetest.Fake) {
				e.SetResources("web-api-1", fleets.Resources{Memory: 1 << 30})
				e.SetRestart("web-api-1", "no")
			},
			check: func(t *testing.T, p reconcile.ActionPlan) {
				a := p.Actions[0]
				if a.Spec == nil || a.Spec.Resources.Memory != 256<<20 || a.Spec.Restart != "unless-stopped" || a.ContainerID == "" || !a.Heal {
					t.Errorf("update action = %+v, spec %+v; want the applied spec, the container ID and Heal", a, a.Spec)
				}
			}},
		{name: "joined a container that is gone: recreate", before: fl(joins), desired: fl(joins), want: `fleet web
  1  create  web-api-1-next              modified (peers.db: 0123456789ab gone → a running container of db); it joined a container that is gone, so the container is recreated to join its replacement
  2  stop    web-api-1                   replaced by web-api-1-next [after 1]
  3  remove  web-api-1                   replaced by web-api-1-next [after 2]
  4  rename  web-api-1-next → web-api-1  takes the place of the replaced container [after 3]
  5  start   web-api-1                   replacement [after 4]
`,
			oob: func(t *testing.T, e *enginetest.Fake) {
				e.SetLabel("web-api-1", fleets.LabelPeers, "db=0123456789abcdef")
			}},
		{name: "renamed onto a removed container's name: rename back before create", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  rename  web-api-1 → web-api-2  modified (name: web-api-1 → web-api-2)
  2  create  web-api-1              missing (name held by managed container ID(web-api-1)) [after 1]
  3  start   web-api-1              new container [after 2]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Remove("web-api-1"); e.Rename("web-api-2", "web-api-1") }},
		{name: "renamed onto a name another fleet now wants: the create waits for the rename back",
			before: fl(web(1), cache()), desired: fl(web(2), cache()), want: `fleet cache
  1  rename  web-api-2 → cache-redis-1  modified (name: web-api-2 → cache-redis-1)
fleet web
  2  create  web-api-2  missing (name held by managed container ID(web-api-2)) [after 1]
  3  start   web-api-2  new container [after 2]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Rename("cache-redis-1", "web-api-2") }},
		{name: "two containers swapped names: renames back, no cycle", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  rename  web-api-1 → web-api-2  modified (name: web-api-1 → web-api-2)
  2  rename  web-api-2 → web-api-1  modified (name: web-api-2 → web-api-1) [after 1]
`,
			oob: func(t *testing.T, e *enginetest.Fake) {
				e.Rename("web-api-1", "tmp")
				e.Rename("web-api-2", "web-api-1")
				e.Rename("tmp", "web-api-2")
			}},
		{name: "self_heal off: left alone", before: fl(noHeal), desired: fl(noHeal), want: `left alone: web/api web-api-1: self_heal is off: stopped
left alone: web/api web-api-2: self_heal is off: paused
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Stop("web-api-1"); e.Pause("web-api-2") }},
		{name: "self_heal off: a removed container is still created", before: fl(noHeal), desired: fl(noHeal), want: `fleet web
  1  create  web-api-1  missing
  2  start   web-api-1  new container [after 1]
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Remove("web-api-1") }},
		{name: "suspend: nothing done", before: fl(web(2)), desired: fl(suspended), want: `left alone: web: suspended: drift reported, nothing done
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Stop("web-api-1") }},
		{name: "heal backoff: left alone", before: fl(web(2)), desired: fl(web(2)), want: `fleet web
  1  start  web-api-2  stopped (Exited (0))
left alone: web/api web-api-1: heal backoff until 12:00:10: stopped
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.Stop("web-api-1"); e.Stop("web-api-2") },
			pol: func(p *reconcile.Policy) {
				p.Heals = map[string]reconcile.HealRecord{
					"web-api-1": {Attempts: 3, Last: now.Add(-30 * time.Second)}, // 40s backoff: 10s to go
					"web-api-2": {Attempts: 1, Last: now.Add(-10 * time.Second)}, // 10s backoff: due
				}
			}},
	})
}

// cache is a one-service fleet of redis.
func cache() fleets.Fleet {
	return fleet("cache", service("cache", "redis", 1, func(s *fleets.Service) { s.Spec.Image = "redis:7" }))
}

func TestPlanPrune(t *testing.T) {
	webWorker := fleet("web", service("web", "api", 2), service("web", "worker", 1))
	noPrune := web(2)
	noPrune.Policy.Prune = false
	elsewhere := web(2)
	elsewhere.Targets = false
	runPlanCases(t, []planCase{
		{name: "orphan service: stop and remove", before: fl(webWorker), desired: fl(web(2)), want: `fleet web
  1  stop    web-worker-1  orphan (service worker is not in fleet web)
  2  remove  web-worker-1  orphan (service worker is not in fleet web) [after 1]
`},
		{name: "orphan service with prune off: left alone", before: fl(webWorker), desired: fl(noPrune), want: `left alone: web/worker web-worker-1: prune is off: orphan left running
`},
		{name: "fleet removed: containers and empty network", before: fl(web(1), shop()), desired: fl(shop()), want: `fleet web
  1  stop            web-api-1    orphan (fleet web is not in the spec)
  2  remove          web-api-1    orphan (fleet web is not in the spec) [after 1]
  3  remove-network  web_default  network left the spec and is empty [after 2]
`},
		{name: "prune guard: more than half refused, deploys go ahead", before: fl(web(2), cache()),
			desired: fl(cache(), shop()), want: `fleet shop
  1   ensure-network  shop_backend   network missing
  2   ensure-volume   shop_data      volume missing
  3   pull            postgres:16    image not present
  4   create          shop-db-1      missing [after 1 2 3]
  5   start           shop-db-1      new container [after 4]
  6   wait-healthy    shop-db-1      a dependent waits for service_healthy [after 5]
  7   ensure-network  shop_frontend  network missing
  8   create          shop-api-1     missing [after 1 6 7]
  9   start           shop-api-1     new container [after 8]
  10  create          shop-api-2     missing [after 1 6 7]
  11  start           shop-api-2     new container [after 10]
refused: prune guard: the revision removes 2 of the host's 3 managed containers (limit 50%); rerun with --allow-mass-prune if this is intended
`},
		{name: "prune guard: every fleet refused", before: fl(web(1)), desired: fl(elsewhere), want: `refused: prune guard: the revision removes every fleet from this host (1 containers); rerun with --allow-mass-prune if this is intended
`},
		{name: "prune guard: AllowMassPrune", before: fl(web(2), cache()), desired: fl(cache(), shop()), want: `fleet shop
  1   ensure-network  shop_backend   network missing
  2   ensure-volume   shop_data      volume missing
  3   pull            postgres:16    image not present
  4   create          shop-db-1      missing [after 1 2 3]
  5   start           shop-db-1      new container [after 4]
  6   wait-healthy    shop-db-1      a dependent waits for service_healthy [after 5]
  7   ensure-network  shop_frontend  network missing
  8   create          shop-api-1     missing [after 1 6 7]
  9   start           shop-api-1     new container [after 8]
  10  create          shop-api-2     missing [after 1 6 7]
  11  start           shop-api-2     new container [after 10]
fleet web
  12  stop            web-api-1    orphan (fleet web is not in the spec)
  13  remove          web-api-1    orphan (fleet web is not in the spec) [after 12]
  14  stop            web-api-2    orphan (fleet web is not in the spec)
  15  remove          web-api-2    orphan (fleet web is not in the spec) [after 14]
  16  remove-network  web_default  network left the spec and is empty [after 13 15]
`,
			pol: func(p *reconcile.Policy) { p.AllowMassPrune = true }},
	})
}

func TestPlanBlocked(t *testing.T) {
	webWorker := fleet("web", service("web", "api", 2), service("web", "worker", 1))
	never := fleet("web", service("web", "api", 1, func(s *fleets.Service) { s.Spec.Image = "app:v3"; s.PullPolicy = "never" }))
	built := fleet("web", service("web", "api", 1, func(s *fleets.Service) {
		s.Spec.Image = "fleetd-build/web-api:3f2a"
		s.PullPolicy = "build"
		s.Build = &fleets.Build{ContextDir: "web/app", Dockerfile: "Dockerfile", ContextHash: "3f2a"}
	}))
	runPlanCases(t, []planCase{
		{name: "unmanaged container holds a wanted name", desired: fl(webWorker), want: `fleet web
  1  ensure-network  web_default   network missing
  2  pull            app:v1        image not present
  3  create          web-worker-1  missing [after 1 2]
  4  start           web-worker-1  new container [after 3]
left alone: web/api web-api-2: name conflict: an unmanaged container holds the name; fleetd will not remove it; fleetd never touches objects it did not create
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.AddUnmanaged("web-api-2", nil) }},
		{name: "unmanaged network holds a fleet network", desired: fl(web(1), cache()), want: `fleet cache
  1  ensure-network  cache_default  network missing
  2  pull            redis:7        image not present
  3  create          cache-redis-1  missing [after 1 2]
  4  start           cache-redis-1  new container [after 3]
left alone: web web_default: name conflict: an unmanaged network holds the name of network default; fleetd never touches objects it did not create
`,
			oob: func(t *testing.T, e *enginetest.Fake) { e.AddUnmanagedNetwork("web_default") }},
		{name: "pull_policy never, image missing", desired: fl(never), want: `left alone: web/api: image app:v3 is not present and pull_policy is never
`},
		{name: "build, image not present", desired: fl(built), want: `fleet web
  1  ensure-network  web_default                network missing
  2  build           fleetd-build/web-api:3f2a  image not built for this build context
  3  create          web-api-1                  missing [after 1 2]
  4  start           web-api-1                  new container [after 3]
`},
	})
}

func TestPlanResume(t *testing.T) {
	v2 := withService(web(1), "api", func(s *fleets.Service) { s.Spec.Image = "app:v2" })
	v3 := withService(v2, "api", func(s *fleets.Service) { s.Spec.Environment["LOG_LEVEL"] = "debug" })
	noHeal := func(f fleets.Fleet) fleets.Fleet { f.Policy.SelfHeal = false; return f }
	// The v1 → v2 plan: 1 pull, 2 create -next, 3 stop, 4 remove, 5 rename, 6 start.
	cases := []struct {
		name    string
		k       int // actions of the v1 → v2 plan done before the kill
		desired fleets.Fleet
		want    string
	}{
		{"killed after create: resume", 2, v2, `fleet web
  1  stop     web-api-1                   replaced by web-api-1-next
  2  remove   web-api-1                   replaced by web-api-1-next [after 1]
  3  rename   web-api-1-next → web-api-1  takes the place of the replaced container [after 2]
  4  start    web-api-1                   replacement [after 3]
  5  wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 4]
`},
		{"killed after stop: resume", 3, v2, `fleet web
  1  remove   web-api-1                   replaced by web-api-1-next
  2  rename   web-api-1-next → web-api-1  takes the place of the replaced container [after 1]
  3  start    web-api-1                   replacement [after 2]
  4  wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 3]
`},
		{"killed after remove: rename and start", 4, v2, `fleet web
  1  rename   web-api-1-next → web-api-1  takes the place of the replaced container
  2  start    web-api-1                   replacement [after 1]
  3  wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 2]
`},
		{"killed after rename: start", 5, v2, `fleet web
  1  start  web-api-1  created but never started
`},
		{"killed after rename, self_heal off: start", 5, noHeal(v2), `fleet web
  1  start  web-api-1  created but never started
`},
		{"killed after create, spec changed again: replace again", 2, v3, `fleet web
  1  remove   web-api-1-next              extra (duplicate in slot 1, held by web-api-1; replaces web-api-1 (rollout in progress))
  2  create   web-api-1-next              spec (environment.LOG_LEVEL: info → debug; image: app:v1 → app:v2); rollout 1/1, stop-first [after 1]
  3  stop     web-api-1                   replaced by web-api-1-next [after 2]
  4  remove   web-api-1                   replaced by web-api-1-next [after 3]
  5  rename   web-api-1-next → web-api-1  takes the place of the replaced container [after 4]
  6  start    web-api-1                   replacement [after 5]
  7  wait-up  web-api-1                   health gate: up within 5s, then monitored 0s [after 6]
`},
		{"killed after remove, spec changed again: replace the -next", 4, v3, `fleet web
  1  create   web-api-1       spec (environment.LOG_LEVEL: info → debug); rollout 1/1, stop-first
  2  remove   web-api-1-next  replaced by web-api-1 [after 1]
  3  start    web-api-1       replacement [after 2]
  4  wait-up  web-api-1       health gate: up within 5s, then monitored 0s [after 3]
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFake(t)
			interrupt(t, e, fl(web(1)), fl(v2), tc.k)
			p := reconcile.Plan(fl(tc.desired), observe(t, e), policy())
			checkDAG(t, p)
			if got := p.String(); got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s\ndrift:\n%s", got, tc.want, drift.Text(p.Drift))
			}
			for _, a := range p.Actions {
				if a.Op == reconcile.OpCreate && a.Target == "web-api-1-next" && tc.desired.Services[0].Hash == v2.Services[0].Hash {
					t.Errorf("resuming created another replacement:\n%s", p)
				}
			}
		})
	}
}
