package swarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// bed is a three-manager swarm with the test image on every node, and a
// swarm fleet in a repository of the test's own.
type bed struct {
	t     *testing.T
	swarm *dockertest.Swarm
	cli   *client.Client // manager 1
	d     *Docker
	repo  string
	image string
	fleet string
	// failureAction is update_config.failure_action (default rollback).
	failureAction string
	// global makes the service global instead of replicated.
	global bool
	// ext is a secret the swarm held before fleetd (external: true).
	ext string
}

func newBed(t *testing.T) *bed {
	t.Helper()
	cli := dockertest.Client(t)
	image, _ := dockertest.TestImage(t, cli, "sw1")
	s := dockertest.StartSwarm(t, 3, time.Second)
	s.LoadImage(t, cli, image)
	b := &bed{t: t, swarm: s, image: image, repo: t.TempDir(), fleet: dockertest.Name(t, "shop")}
	b.cli = s.Engines[0].Client(t)
	b.d = New(b.cli, "it")
	b.ext = dockertest.Name(t, "ca")
	if _, err := b.cli.SecretCreate(t.Context(), dswarm.SecretSpec{Annotations: dswarm.Annotations{Name: b.ext}, Data: []byte("by hand")}); err != nil {
		t.Fatal(err)
	}
	return b
}

// write writes the fleet's compose file, with its secret's contents.
func (b *bed) write(replicas int, secret string, env ...string) {
	b.t.Helper()
	vars := "VERSION: one"
	for _, kv := range env {
		vars += ", " + strings.Replace(kv, "=", ": ", 1)
	}
	dir := filepath.Join(b.repo, b.fleet)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	mode := fmt.Sprintf("replicas: %d", replicas)
	if b.global {
		mode = "mode: global"
	}
	compose := fmt.Sprintf(`x-fleetd: {engine: swarm}
services:
  web:
    image: %s
    environment: {%s}
    networks: [front]
    secrets: [token, ca]
    configs: [{source: settings, target: /etc/settings.json}]
    deploy:
      %s
      update_config: {parallelism: 1, order: start-first, failure_action: %s, monitor: 2s}
      restart_policy: {condition: any, delay: 0s}
networks:
  front: {}
secrets:
  token: {file: ./token}
  ca: {external: true, name: %s}
configs:
  settings: {content: '{"debug": true}'}
`, b.image, vars, mode, cmp.Or(b.failureAction, "rollback"), b.ext)
	for name, data := range map[string]string{"compose.yaml": compose, "token": secret} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *bed) load() fleets.Fleet {
	b.t.Helper()
	list, err := fleets.Load(b.t.Context(), b.repo, fleets.Host{Name: "agent"})
	if err != nil {
		b.t.Fatal(err)
	}
	return list[0]
}

func (b *bed) stack() Stack {
	b.t.Helper()
	f := b.load()
	nodes, err := b.d.nodes(b.t.Context())
	if err != nil {
		b.t.Fatal(err)
	}
	st, err := Translate(Input{Fleet: f, Instance: "it", Nodes: placementHosts(nodes)})
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

// converge plans and executes until nothing is left to do, and returns
// the plans it ran.
func (b *bed) converge(st Stack) []Plan {
	b.t.Helper()
	var plans []Plan
	for range 3 {
		obs, err := b.d.Observe(b.t.Context(), st.Namespace)
		if err != nil {
			b.t.Fatal(err)
		}
		plan := PlanStack(st, obs, Policy{SelfHeal: true, Prune: true})
		if len(plan.Blocked) > 0 {
			b.t.Fatalf("blocked: %v", plan.Blocked)
		}
		if len(plan.Actions) == 0 {
			return plans
		}
		plans = append(plans, plan)
		if err := b.d.Execute(b.t.Context(), plan, func() bool { return true }); err != nil {
			b.t.Fatal(err)
		}
		for _, a := range plan.Actions {
			if a.Op != OpCreateService && a.Op != OpUpdateService {
				continue
			}
			o, err := b.d.WaitRollout(b.t.Context(), a, 2*time.Minute)
			if err != nil || o.Failed() {
				b.t.Fatalf("rollout of %s: %+v, %v", a.Name, o, err)
			}
		}
	}
	b.t.Fatalf("not converged after 3 passes: %v", plans)
	return nil
}

// running returns the nodes of the service's running tasks.
func (b *bed) running(cli *client.Client, service string) []string {
	b.t.Helper()
	tasks, err := cli.TaskList(b.t.Context(), dswarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service), filters.Arg("desired-state", "running"))})
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, t := range tasks {
		if t.Status.State == dswarm.TaskStateRunning {
			out = append(out, t.NodeID)
		}
	}
	return out
}

func ops(plans []Plan) string {
	var out []string
	for _, p := range plans {
		for _, a := range p.Actions {
			out = append(out, a.Op+" "+a.Name)
		}
	}
	return strings.Join(out, "\n")
}

// TestSwarmConverge runs a swarm fleet on three engines: deploy, a clean
// diff right after, out-of-band scaling detected (field named) and undone,
// a stale version refused, a rotated secret replacing the old one, and a
// lost node's task rescheduled on the others.
func TestSwarmConverge(t *testing.T) {
	b := newBed(t)
	b.write(3, "first-token")
	st := b.stack()
	web := st.Services[0].Name

	start := time.Now()
	plans := b.converge(st)
	deployed := time.Since(start)
	want := strings.Join([]string{
		"create-network " + b.fleet + "_front",
		"create-secret " + st.Secrets[0].Name,
		"create-config " + st.Configs[0].Name,
		"create-service " + web,
	}, "\n")
	if got := ops(plans); got != want {
		t.Fatalf("first deploy ran:\n%s\nwant:\n%s", got, want)
	}
	nodes := b.running(b.cli, web)
	spread := map[string]bool{}
	for _, n := range nodes {
		spread[n] = true
	}
	if len(nodes) != 3 || len(spread) != 3 {
		t.Fatalf("running tasks on nodes %v: want 3 on 3 nodes", nodes)
	}
	t.Logf("deploy to converged (3 replicas on 3 nodes, healthy): %s", deployed.Round(time.Millisecond))

	obs, err := b.d.Observe(t.Context(), st.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if items := Diff(st, obs); len(items) > 0 {
		t.Fatalf("drift right after the deploy: %v", items)
	}
	// The external secret is used by name, neither created nor owned.
	if refs := obs.Services[web].Spec.TaskTemplate.ContainerSpec.Secrets; !slices.ContainsFunc(refs, func(r *dswarm.SecretReference) bool {
		return r.SecretName == b.ext && r.SecretID != ""
	}) {
		t.Fatalf("the service does not use the external secret %s: %+v", b.ext, refs)
	}

	// docker service scale, by hand.
	svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	one := uint64(1)
	spec := svc.Spec
	spec.Mode.Replicated.Replicas = &one
	if _, err := b.cli.ServiceUpdate(t.Context(), svc.ID, svc.Version, spec, dswarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	obs, err = b.d.Observe(t.Context(), st.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	items := Diff(st, obs)
	if len(items) == 0 || items[0].Kind != drift.Modified || len(items[0].Fields) != 1 || items[0].Fields[0].Field != "mode" {
		t.Fatalf("out-of-band scale: drift %v, want one modified field, mode", items)
	}
	t.Logf("drift after docker service scale: %+v", items[0])
	if p := PlanStack(st, obs, Policy{SelfHeal: false}); len(p.Actions) != 0 || len(p.Reported) == 0 {
		t.Errorf("self_heal off: %+v, want the drift reported and no action", p)
	}

	// A stale version is refused, never overwritten.
	stale := PlanStack(st, obs, Policy{SelfHeal: true})
	svc, _, _ = b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	spec = svc.Spec
	spec.Labels["touched"] = "by hand"
	if _, err := b.cli.ServiceUpdate(t.Context(), svc.ID, svc.Version, spec, dswarm.ServiceUpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = b.d.Execute(t.Context(), stale, func() bool { return true })
	if f := fault.Of(err); f == nil || f.Reason != fault.VersionConflict || f.Class != fault.Retryable {
		t.Fatalf("update with a stale version: %v, want a retryable VersionConflict", err)
	}
	plans = b.converge(st)
	if got := ops(plans); got != "update-service "+web {
		t.Fatalf("heal ran %q", got)
	}
	if n := len(b.running(b.cli, web)); n != 3 {
		t.Fatalf("%d running after the heal, want 3", n)
	}

	// A rotated secret: a new secret, the service moved to it, the old removed.
	old := st.Secrets[0].Name
	b.write(3, "second-token")
	st = b.stack()
	plans = b.converge(st)
	want = strings.Join([]string{"create-secret " + st.Secrets[0].Name, "update-service " + web, "remove-secret " + old}, "\n")
	if got := ops(plans); got != want {
		t.Fatalf("secret rotation ran:\n%s\nwant:\n%s", got, want)
	}

	// A lost node: its task runs elsewhere. The node is one that runs a
	// task (not the manager the test talks to).
	var lost *dockertest.Engine
	var lostID string
	for _, e := range b.swarm.Engines[1:] {
		if id := nodeID(t, b.cli, e.Name); slices.Contains(b.running(b.cli, web), id) {
			lost, lostID = e, id
		}
	}
	if lost == nil {
		t.Fatalf("no task on the other managers: %v", b.running(b.cli, web))
	}
	killed := time.Now()
	lost.Kill()
	deadline := killed.Add(90 * time.Second)
	var back time.Duration
	for time.Now().Before(deadline) {
		nodes := b.running(b.cli, web)
		if len(nodes) == 3 && !slices.Contains(nodes, lostID) {
			back = time.Since(killed)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if back == 0 {
		t.Fatalf("replicas not back to 3 on the other nodes 90 s after a node's engine was killed: %v", b.running(b.cli, web))
	}
	t.Logf("node engine killed → 3 replicas running on the others: %s (dispatcher heartbeat 1 s)", back.Round(time.Millisecond))
}

func nodeID(t *testing.T, cli *client.Client, hostname string) string {
	t.Helper()
	nodes, err := cli.NodeList(t.Context(), dswarm.NodeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Description.Hostname == hostname {
			return n.ID
		}
	}
	t.Fatalf("no node %s", hostname)
	return ""
}

// killable is a lease backend whose agent can be killed: from then on it
// makes no call, as a SIGKILLed process would (no release).
type killable struct {
	LeaseBackend
	dead atomic.Bool
}

var errDead = errors.New("agent killed")

func (k *killable) Read(ctx context.Context) (LeaseRecord, error) {
	if k.dead.Load() {
		return LeaseRecord{}, errDead
	}
	return k.LeaseBackend.Read(ctx)
}

func (k *killable) Write(ctx context.Context, r LeaseRecord) (uint64, error) {
	if k.dead.Load() {
		return 0, errDead
	}
	return k.LeaseBackend.Write(ctx, r)
}

// call is one mutating Docker API call of an agent, as its request log
// would show it.
type call struct {
	agent      string
	start, end time.Time
}

// TestSwarmLeaseFailover runs one agent per manager, each campaigning for
// the lease in the swarm and, while Leading says so, making a mutating
// call (a service label update through its own manager) every 100 ms.
// Exactly one agent acts; when it is killed (no release) another acts
// within the lease duration; the mutating calls of two agents never
// overlap in time.
func TestSwarmLeaseFailover(t *testing.T) {
	s := dockertest.StartSwarm(t, 3, time.Second)
	p := LeaseParams{Duration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 500 * time.Millisecond}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	probe := dockertest.Name(t, "lease-probe")
	img, _ := dockertest.TestImage(t, dockertest.Client(t), "sw1")
	zero := uint64(0)
	if _, err := s.Engines[0].Client(t).ServiceCreate(t.Context(), dswarm.ServiceSpec{
		Annotations:  dswarm.Annotations{Name: probe},
		TaskTemplate: dswarm.TaskSpec{ContainerSpec: &dswarm.ContainerSpec{Image: img}},
		Mode:         dswarm.ServiceMode{Replicated: &dswarm.ReplicatedService{Replicas: &zero}},
	}, dswarm.ServiceCreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var calls []call
	type agent struct {
		id    string
		c     *Campaign
		store *killable
		stop  context.CancelFunc
		done  sync.WaitGroup
	}
	var agents []*agent
	for i, e := range s.Engines {
		a := &agent{id: fmt.Sprintf("agent%d", i+1)}
		ecli := e.Client(t)
		a.store = &killable{LeaseBackend: New(ecli, "lease-it").Lease()}
		a.c = NewCampaign(a.store, a.id, p, time.Now)
		ctx, cancel := context.WithCancel(context.Background())
		a.stop = cancel
		t.Cleanup(cancel)
		a.done.Add(2)
		go func() { defer a.done.Done(); a.c.Run(ctx) }()
		go func() {
			defer a.done.Done()
			for ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				if a.store.dead.Load() || !a.c.Leading() {
					continue
				}
				c := call{agent: a.id, start: time.Now()}
				svc, _, err := ecli.ServiceInspectWithRaw(ctx, probe, dswarm.ServiceInspectOptions{})
				if err == nil {
					svc.Spec.Labels = map[string]string{"writer": a.id}
					_, err = ecli.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, dswarm.ServiceUpdateOptions{})
				}
				c.end = time.Now()
				if err == nil {
					mu.Lock()
					calls = append(calls, c)
					mu.Unlock()
				}
			}
		}()
		agents = append(agents, a)
	}
	leaders := func() []*agent {
		var out []*agent
		for _, a := range agents {
			if !a.store.dead.Load() && a.c.Leading() {
				out = append(out, a)
			}
		}
		return out
	}
	waitLeader := func(within time.Duration) (*agent, time.Duration) {
		start := time.Now()
		for time.Since(start) < within {
			if l := leaders(); len(l) == 1 {
				return l[0], time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no single leader within %s", within)
		return nil, 0
	}
	first, _ := waitLeader(30 * time.Second)
	time.Sleep(3 * time.Second) // it renews and acts for a while
	if l := leaders(); len(l) != 1 || l[0] != first {
		t.Fatalf("leaders %v, want %s alone", l, first.id)
	}
	first.store.dead.Store(true) // SIGKILL: no release, no further call
	next, took := waitLeader(3 * p.Duration)
	if next == first {
		t.Fatal("the killed agent still leads")
	}
	t.Logf("active agent killed → %s acts after %s (lease duration %s, renew deadline %s, retry %s)",
		next.id, took.Round(time.Millisecond), p.Duration, p.RenewDeadline, p.RetryPeriod)
	if took > p.Duration+p.RetryPeriod {
		t.Errorf("takeover took %s, more than the lease duration %s + one retry period", took, p.Duration)
	}
	time.Sleep(2 * time.Second)
	for _, a := range agents {
		a.stop()
		a.done.Wait()
	}

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(calls, func(a, b call) int { return a.start.Compare(b.start) })
	by := map[string]int{}
	for i, c := range calls {
		by[c.agent]++
		for _, d := range calls[:i] {
			if d.agent != c.agent && c.start.Before(d.end) {
				t.Errorf("mutating calls overlap: %s %s–%s and %s %s–%s", d.agent, d.start.Format("15:04:05.000"), d.end.Format("15:04:05.000"),
					c.agent, c.start.Format("15:04:05.000"), c.end.Format("15:04:05.000"))
			}
		}
	}
	if by[first.id] == 0 || by[next.id] == 0 || len(by) != 2 {
		t.Errorf("mutating calls per agent %v: want some by %s, then some by %s, none by others", by, first.id, next.id)
	}
	t.Logf("mutating calls: %v; gap between the last of %s and the first of %s: %s", by, first.id, next.id, gap(calls, first.id, next.id))
}

func gap(calls []call, a, b string) time.Duration {
	var lastA, firstB time.Time
	for _, c := range calls {
		if c.agent == a && c.end.After(lastA) {
			lastA = c.end
		}
		if c.agent == b && firstB.IsZero() {
			firstB = c.start
		}
	}
	return firstB.Sub(lastA).Round(time.Millisecond)
}

// TestSwarmRunnerRollback: a revision whose tasks crash is rolled back by
// Swarm's updater and reported as a failed rollout (not a success); the
// service goes back to the last good spec fleetd recorded, marked so that
// the failed spec is not tried again until a manual sync retries it.
func TestSwarmRunnerRollback(t *testing.T) {
	b := newBed(t)
	r := NewRunner(b.d, nil, 2*time.Minute)
	b.write(2, "token")
	res, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Changes, "created 1 service") || len(res.Left) != 0 {
		t.Fatalf("first apply: changes %q, left %+v", res.Changes, res.Left)
	}
	web := b.fleet + "_web"

	b.write(2, "token", "CRASH_AFTER=1s")
	var events []reconcile.Event
	start := time.Now()
	res, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2", OnEvent: func(e reconcile.Event) { events = append(events, e) }})
	f := fault.Of(err)
	if f == nil || f.Reason != fault.RolloutFailed || f.Class != fault.Permanent {
		t.Fatalf("a crashing revision: %v, want a permanent RolloutFailed", err)
	}
	t.Logf("crashing revision reported failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if len(events) != 1 || events[0].Kind != reconcile.EventRolloutRolledBack {
		t.Fatalf("events %+v, want one rolled-back", events)
	}
	svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := strings.Join(svc.Spec.TaskTemplate.ContainerSpec.Env, " "); strings.Contains(env, "CRASH_AFTER") || svc.Spec.Labels[LabelFailed] == "" {
		t.Fatalf("after the failure: env %q, failed label %q: want the last good spec, marked", env, svc.Spec.Labels[LabelFailed])
	}
	version := svc.Version.Index

	_, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2"})
	if f := fault.Of(err); f == nil || f.Reason != fault.RolloutFailed {
		t.Fatalf("the failed revision again: %v, want RolloutFailed without a new try", err)
	}
	svc, _, _ = b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if svc.Version.Index != version {
		t.Fatal("the failed spec was tried again without a new commit or a manual sync")
	}

	b.write(2, "token", "MODE=two")
	res, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c3"})
	if err != nil || !strings.Contains(res.Changes, "updated 1 service") {
		t.Fatalf("a good revision after the failed one: %q, %v", res.Changes, err)
	}

	// The fleet leaves Git: its service is the only one fleetd owns on the
	// swarm, so the prune guard refuses, until mass prunes are allowed.
	gone := fleets.Fleet{Name: b.fleet, Engine: fleets.EngineSwarm, Policy: fleets.Policy{Prune: true}}
	if _, err := r.Converge(t.Context(), gone, reconcile.SwarmOptions{Revision: "c4"}); fault.Of(err) == nil || fault.Of(err).Reason != fault.PruneRefused {
		t.Fatalf("removing every swarm service: %v, want PruneRefused", err)
	}
	if _, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{}); err != nil {
		t.Fatalf("the guard let the service go: %v", err)
	}
	r.AllowMassPrune = true
	res, err = r.Converge(t.Context(), gone, reconcile.SwarmOptions{Revision: "c4"})
	if err != nil || !strings.Contains(res.Changes, "removed 1 service") {
		t.Fatalf("allowed mass prune: %q, %v", res.Changes, err)
	}

	standby := NewRunner(b.d, NewCampaign(nil, "other", DefaultLeaseParams, time.Now), time.Minute)
	if _, err := standby.Converge(t.Context(), b.load(), reconcile.SwarmOptions{}); fault.Of(err) == nil || fault.Of(err).Reason != fault.NotLeader {
		t.Fatalf("a runner without the lease: %v, want NotLeader", err)
	}
}

// TestSwarmDrainFromGit drains a node by committing nodes.yaml: its task
// moves to the other nodes, and the running count never drops below what
// the update policy allows (start-first: none down), thanks to the surge.
// Then Git makes the service global, which Swarm cannot do in place:
// fleetd replaces the service.
func TestSwarmDrainFromGit(t *testing.T) {
	b := newBed(t)
	r := NewRunner(b.d, nil, 2*time.Minute)
	r.NoResolve = true
	b.write(3, "token")
	opts := reconcile.SwarmOptions{Revision: "c1", Dir: b.repo}
	if _, err := r.Converge(t.Context(), b.load(), opts); err != nil {
		t.Fatal(err)
	}
	web := b.fleet + "_web"
	drained := b.swarm.Engines[2]
	id := nodeID(t, b.cli, drained.Name)
	if !slices.Contains(b.running(b.cli, web), id) {
		t.Fatalf("no task on %s before the drain: %v", drained.Name, b.running(b.cli, web))
	}

	stop := make(chan struct{})
	minRunning := make(chan int)
	go func() {
		low := 3
		for {
			select {
			case <-stop:
				minRunning <- low
				return
			case <-time.After(50 * time.Millisecond):
			}
			tasks, err := b.cli.TaskList(context.Background(), dswarm.TaskListOptions{Filters: filters.NewArgs(
				filters.Arg("service", web), filters.Arg("desired-state", "running"))})
			if err != nil {
				continue
			}
			n := 0 // the drained node's task counts while it still runs
			for _, task := range tasks {
				if task.Status.State == dswarm.TaskStateRunning {
					n++
				}
			}
			low = min(low, n)
		}
	}()
	if err := os.WriteFile(filepath.Join(b.repo, fleets.NodesFile), []byte("nodes:\n  "+drained.Name+": {availability: drain, labels: {zone: b}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2", Dir: b.repo})
	if err != nil || !strings.Contains(res.Changes, "updated 1 node (surged "+web+" +1)") {
		t.Fatalf("drain: %q, %v", res.Changes, err)
	}
	var moved time.Duration
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		nodes := b.running(b.cli, web)
		if len(nodes) == 3 && !slices.Contains(nodes, id) {
			moved = time.Since(start)
			break
		}
	}
	close(stop)
	low := <-minRunning
	if moved == 0 {
		t.Fatalf("the drained node's task did not move within a minute: %v", b.running(b.cli, web))
	}
	t.Logf("node drained from Git → its task running on another node after %s; running tasks never below %d of 3", moved.Round(time.Millisecond), low)
	if low < 3 {
		t.Errorf("running tasks dropped to %d during the drain; the update policy (start-first) allows none down", low)
	}
	svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if err != nil || *svc.Spec.Mode.Replicated.Replicas != 3 {
		t.Fatalf("after the drain the service is not scaled back to 3: %v", err)
	}
	n, _, err := b.cli.NodeInspectWithRaw(t.Context(), id)
	if err != nil || n.Spec.Availability != dswarm.NodeAvailabilityDrain || n.Spec.Labels["zone"] != "b" {
		t.Fatalf("node after the drain: %+v, %v", n.Spec, err)
	}
	// By hand: made active again; the next apply reports and corrects it.
	n.Spec.Availability = dswarm.NodeAvailabilityActive
	if err := b.cli.NodeUpdate(t.Context(), id, n.Version, n.Spec); err != nil {
		t.Fatal(err)
	}
	res, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2", Dir: b.repo})
	if err != nil || len(res.Drifted) != 1 || res.Drifted[0].Object != ObjNode || res.Drifted[0].Kind != drift.Modified {
		t.Fatalf("node changed by hand: drifted %+v, %v", res.Drifted, err)
	}
	n, _, _ = b.cli.NodeInspectWithRaw(t.Context(), id)
	if n.Spec.Availability != dswarm.NodeAvailabilityDrain {
		t.Errorf("availability %s after the correction, want drain", n.Spec.Availability)
	}

	// Git makes the service global: Swarm cannot change a mode in place,
	// so fleetd replaces the service; it runs on the two active nodes.
	b.global = true
	b.write(3, "token")
	res, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c3", Dir: b.repo})
	if err != nil || res.Changes != "replaced 1 service" {
		t.Fatalf("replicated → global: %q, %v", res.Changes, err)
	}
	svc, _, err = b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if err != nil || svc.Spec.Mode.Global == nil {
		t.Fatalf("the service is not global: %+v, %v", svc.Spec.Mode, err)
	}
	if nodes := b.running(b.cli, web); len(nodes) != 2 || slices.Contains(nodes, id) {
		t.Errorf("global service runs on %v, want the two active nodes", nodes)
	}
	if res, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c3", Dir: b.repo}); err != nil || res.Changes != "" {
		t.Errorf("after the replacement: %q, %v; want nothing to do", res.Changes, err)
	}
}

// TestSwarmPinsDigests: with a registry every node reaches, a tag is
// resolved to its digest once per revision and every node runs those
// bytes; pushing new bytes under the same tag changes nothing until the
// next revision, which pins the new digest. (The test bed's engines never
// pull for a task, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1: each node pulls
// the tag beforehand, and a task finds the pinned digest among them.)
func TestSwarmPinsDigests(t *testing.T) {
	b := newBed(t)
	first := b.swarm.Engines[0]
	reg := dockertest.StartRegistryOn(t, first.RootAddr())
	ecli := first.Client(t)
	v1 := dockertest.Push(t, ecli, b.image, reg, "shop/web:live")
	pullEverywhere := func() {
		for _, e := range b.swarm.Engines {
			dockertest.Pull(t, e.Client(t), v1)
		}
	}
	pullEverywhere()
	other, _ := dockertest.TestImage(t, dockertest.Client(t), "sw2")
	first.LoadImage(t, dockertest.Client(t), other)

	r := NewRunner(b.d, nil, 2*time.Minute)
	b.image = v1 // the fleet names the registry's tag
	b.write(3, "token")
	if _, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c1"}); err != nil {
		t.Fatal(err)
	}
	web := b.fleet + "_web"
	image := func() string {
		svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Spec.TaskTemplate.ContainerSpec.Image
	}
	pinned := image()
	if !strings.HasPrefix(pinned, v1+"@sha256:") {
		t.Fatalf("service image %q: want %s pinned to a digest", pinned, v1)
	}
	if n := len(b.running(b.cli, web)); n != 3 {
		t.Fatalf("%d tasks running, want 3 (each node pulls the pinned digest)", n)
	}
	t.Logf("tag resolved once per revision: %s", pinned)

	// New bytes under the same tag: the same revision keeps its digest.
	dockertest.Push(t, ecli, other, reg, "shop/web:live")
	pullEverywhere()
	if _, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c1"}); err != nil {
		t.Fatal(err)
	}
	if got := image(); got != pinned {
		t.Fatalf("the same revision moved to %s", got)
	}
	// The next revision pins the new digest, and every task runs it.
	res, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2"})
	if err != nil || !strings.Contains(res.Changes, "updated 1 service") {
		svc, _, _ := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
		failing, _ := b.d.failing(t.Context(), svc.ID)
		t.Fatalf("next revision: %q, %v; tasks: %v", res.Changes, err, failing)
	}
	if got := image(); got == pinned || !strings.HasPrefix(got, v1+"@sha256:") {
		t.Fatalf("next revision runs %s; want the tag pinned to the new digest", got)
	}
}

// TestSwarmJudgesAfterTheFact: an agent that stopped mid-rollout never saw
// Swarm pause its update; the next holder judges it as a failed rollout
// (rolled back, marked, not tried again), instead of trying the spec again.
func TestSwarmJudgesAfterTheFact(t *testing.T) {
	b := newBed(t)
	b.failureAction = "pause"
	r := NewRunner(b.d, nil, 2*time.Minute)
	r.NoResolve = true
	b.write(2, "token")
	if _, err := r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c1"}); err != nil {
		t.Fatal(err)
	}
	web := b.fleet + "_web"
	// The crashing revision, executed by an agent that stops right after.
	b.write(2, "token", "CRASH_AFTER=1s")
	st := b.stack()
	obs, err := b.d.Observe(t.Context(), st.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.d.Execute(t.Context(), PlanStack(st, obs, Policy{SelfHeal: true}), func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	waitState := func(want dswarm.UpdateState) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
			if err == nil && svc.UpdateStatus != nil && svc.UpdateStatus.State == want {
				return
			}
		}
		t.Fatalf("the update never reached %s", want)
	}
	waitState(dswarm.UpdateStatePaused)
	crashing := func() int {
		tasks, err := b.cli.TaskList(t.Context(), dswarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", web))})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, task := range tasks {
			if strings.Contains(strings.Join(task.Spec.ContainerSpec.Env, " "), "CRASH_AFTER") {
				n++
			}
		}
		return n
	}
	before := crashing()
	for settled := 0; settled < 3; { // Swarm may still be winding the failed tasks down
		time.Sleep(time.Second)
		if n := crashing(); n != before {
			before, settled = n, 0
		} else {
			settled++
		}
	}
	var events []reconcile.Event
	_, err = r.Converge(t.Context(), b.load(), reconcile.SwarmOptions{Revision: "c2", OnEvent: func(e reconcile.Event) { events = append(events, e) }})
	if f := fault.Of(err); f == nil || f.Reason != fault.RolloutFailed {
		t.Fatalf("the next holder's apply: %v, want RolloutFailed", err)
	}
	svc, _, err := b.cli.ServiceInspectWithRaw(t.Context(), web, dswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Labels[LabelFailed] == "" || strings.Contains(strings.Join(svc.Spec.TaskTemplate.ContainerSpec.Env, " "), "CRASH_AFTER") {
		t.Fatalf("after judging: failed label %q, env %v; want marked, and the good spec running", svc.Spec.Labels[LabelFailed], svc.Spec.TaskTemplate.ContainerSpec.Env)
	}
	if len(events) != 1 || events[0].Kind != reconcile.EventRolloutRolledBack {
		t.Errorf("events %+v, want one rolled-back", events)
	}
	if after := crashing(); after != before {
		t.Errorf("the failed spec was tried again: %d tasks of it, %d before", after, before)
	}
}
