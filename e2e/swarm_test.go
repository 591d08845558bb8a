package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/dockertest"
)

// swarmCompose is a swarm fleet of replicas tasks of the test image (its
// own healthcheck probes every second).
func swarmCompose(image, version string, replicas int) string {
	return fmt.Sprintf(`x-fleetd: {engine: swarm}
services:
  web:
    image: %s
    environment: {VERSION: %s}
    deploy:
      replicas: %d
      placement: {max_replicas_per_node: 1}
      update_config: {parallelism: 1, order: stop-first, monitor: 1s, failure_action: rollback}
      restart_policy: {condition: any, delay: 0s}
`, image, version, replicas)
}

// tasksAt reports how many of the service's tasks run the version, on how
// many nodes.
func tasksAt(t testing.TB, cli *client.Client, service, version string) (running int, nodes int) {
	t.Helper()
	svc, _, err := cli.ServiceInspectWithRaw(t.Context(), service, dswarm.ServiceInspectOptions{})
	if err != nil {
		return 0, 0
	}
	if envOf(svc.Spec.TaskTemplate.ContainerSpec.Env, "VERSION") != "VERSION="+version {
		return 0, 0
	}
	tasks, err := cli.TaskList(t.Context(), dswarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service), filters.Arg("desired-state", "running"))})
	if err != nil {
		return 0, 0
	}
	on := map[string]bool{}
	for _, task := range tasks {
		if task.Status.State == dswarm.TaskStateRunning && envOf(task.Spec.ContainerSpec.Env, "VERSION") == "VERSION="+version {
			running++
			on[task.NodeID] = true
		}
	}
	return running, len(on)
}

// mutatingSwarmCalls are an agent's calls that change the swarm's
// services, networks, secrets or configs, leaving out its lease (config
// updates and reads by ID: the election itself).
func mutatingSwarmCalls(p *dockerProxy, since time.Time) []dockerCall {
	var out []dockerCall
	for _, c := range p.since(since) {
		if !c.mutating() || (strings.HasPrefix(c.Path, "/configs/") && strings.HasSuffix(c.Path, "/update")) {
			continue
		}
		for _, kind := range []string{"/services", "/networks", "/secrets", "/configs"} {
			if strings.HasPrefix(c.Path, kind) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// TestDaemonSwarm runs one fleetd agent per manager of a three-node swarm
// (each through a recording proxy to its own engine), with a swarm fleet
// in Git: exactly one agent acts, the others stand by; a push converges
// three tasks on three nodes; SIGKILL of the active agent hands the lease
// to another within the lease duration, and no two agents' mutating calls
// ever overlap; an idle pass costs a handful of requests.
func TestDaemonSwarm(t *testing.T) {
	main := setup(t)
	t.Parallel()
	s := dockertest.StartSwarm(t, 3, time.Second)
	ref, _ := dockertest.TestImage(t, main, "v1")
	s.LoadImage(t, main, ref)
	g := newGitServer(t)
	fleet := dockertest.Name(t, "sw")
	service := fleet + "_web"
	lease := "swarm: {enabled: true, lease: {duration: 6s, renew_deadline: 4s, retry_period: 500ms}, rollout_timeout: 2m, resolve_images: false}\n"
	start := time.Now()
	c1 := g.commit("", "a swarm fleet", map[string]string{fleet + "/compose.yaml": swarmCompose(ref, "v1", 3)})
	var daemons []*daemon
	var proxies []*dockerProxy
	for _, e := range s.Engines {
		p := newDockerProxyTo(t, e.Host())
		proxies = append(proxies, p)
		daemons = append(daemons, startDaemon(t, daemonOpts{url: g.url(), interval: "1s", resync: "10s", proxy: p, extra: lease}))
	}
	cli := s.Engines[0].Client(t)
	first := waitFor(t, 2*time.Minute, "3 tasks of v1 on 3 nodes", func() (bool, string) {
		n, on := tasksAt(t, cli, service, "v1")
		return n == 3 && on == 3, fmt.Sprintf("%d running on %d nodes", n, on)
	})
	t.Logf("agents started → 3 tasks on 3 nodes: %s (commit %s)", secs(time.Since(start)), c1[:7])
	_ = first

	// Exactly one agent acts; the others stand by, naming it.
	var active int
	waitFor(t, time.Minute, "one active agent, two standing by", func() (bool, string) {
		ready, standby := 0, 0
		var states []string
		for i, d := range daemons {
			c := fleetOf(d.status(), fleet).Condition(agent.Ready)
			states = append(states, c.Status+"/"+c.Reason)
			switch {
			case c.Status == "True":
				ready++
				active = i
			case c.Reason == "Standby":
				standby++
			}
		}
		return ready == 1 && standby == 2, strings.Join(states, " ")
	})

	// A push: converged on every node.
	pushed := time.Now()
	c2 := g.commit("", "v2", map[string]string{fleet + "/compose.yaml": swarmCompose(ref, "v2", 3)})
	waitFor(t, 2*time.Minute, "3 tasks of v2 on 3 nodes", func() (bool, string) {
		n, on := tasksAt(t, cli, service, "v2")
		return n == 3 && on == 3, fmt.Sprintf("%d running on %d nodes", n, on)
	})
	t.Logf("push → 3 replicas of the new revision running on 3 nodes: %s (poll 1s, stop-first, parallelism 1, monitor 1s, one task per node)", secs(time.Since(pushed)))

	// An idle pass of the active agent, once it has seen the rollout end
	// (Swarm's updater completes a monitor period after the last task).
	waitFor(t, time.Minute, "v2 applied", func() (bool, string) {
		st := daemons[active].status()
		return appliedOf(st, fleet) == c2, appliedOf(st, fleet)
	})
	idleFrom := time.Now()
	time.Sleep(21 * time.Second) // two resyncs
	var pass, leaseCalls int
	paths := map[string]int{}
	for _, c := range proxies[active].since(idleFrom) {
		if strings.HasPrefix(c.Path, "/configs/") {
			leaseCalls++
		} else {
			pass++
			paths[c.String()]++
		}
	}
	t.Logf("idle requests by path: %v", paths)
	t.Logf("idle, 21 s with resync every 10 s: the active agent made %d swarm requests (≈ %d per pass) and %d lease requests (retry 500ms)", pass, pass/2, leaseCalls)
	if calls := mutatingSwarmCalls(proxies[active], idleFrom); len(calls) != 0 {
		t.Errorf("mutating calls while idle: %v", calls)
	}

	// SIGKILL of the active agent: another takes over.
	killed := time.Now()
	t.Logf("SIGKILL at %s", killed.UTC().Format("15:04:05.000"))
	_ = daemons[active].cmd.Process.Signal(syscall.SIGKILL)
	<-daemons[active].exited
	var next int
	took := waitFor(t, time.Minute, "another agent acting", func() (bool, string) {
		var states []string
		for i, d := range daemons {
			if i == active {
				continue
			}
			c := fleetOf(d.status(), fleet).Condition(agent.Ready)
			states = append(states, c.Status+"/"+c.Reason)
			if c.Status == "True" && d.status().LastSync.After(killed) {
				next = i
				return true, ""
			}
		}
		return false, strings.Join(states, " ")
	})
	t.Logf("active agent SIGKILLed → another agent acts (applied as the holder) after %s (lease duration 6s)", secs(took))

	// The new holder acts: a push converges through it.
	c3 := g.commit("", "v3", map[string]string{fleet + "/compose.yaml": swarmCompose(ref, "v3", 3)})
	waitFor(t, 2*time.Minute, "3 tasks of v3", func() (bool, string) {
		n, on := tasksAt(t, cli, service, "v3")
		return n == 3 && on >= 2, fmt.Sprintf("%d running on %d nodes", n, on)
	})

	// No overlap of mutating calls between agents.
	var all []dockerCall
	who := map[time.Time]int{}
	for i, p := range proxies {
		for _, c := range mutatingSwarmCalls(p, start) {
			all = append(all, c)
			who[c.Start] = i
		}
	}
	slices.SortFunc(all, func(a, b dockerCall) int { return a.Start.Compare(b.Start) })
	per := map[int]int{}
	for i, c := range all {
		per[who[c.Start]]++
		for _, d := range all[:i] {
			if who[d.Start] != who[c.Start] && c.Start.Before(d.End) {
				t.Errorf("mutating calls of two agents overlap: agent %d %s at %s–%s, agent %d %s at %s–%s",
					who[d.Start], d, d.Start.Format("15:04:05.000"), d.End.Format("15:04:05.000"),
					who[c.Start], c, c.Start.Format("15:04:05.000"), c.End.Format("15:04:05.000"))
			}
		}
	}
	if per[active] == 0 || per[next] == 0 {
		t.Errorf("mutating calls per agent %v: want some by the first holder (%d) and by the next (%d)", per, active, next)
	}
	t.Logf("mutating swarm calls per agent %v; none overlapping", per)
	// fleetd diff against a manager: in sync once the rollout ended.
	waitFor(t, time.Minute, "v3 applied", func() (bool, string) {
		st := daemons[next].status()
		return appliedOf(st, fleet) == c3, appliedOf(st, fleet)
	})
	env := []string{"DOCKER_HOST=" + s.Engines[1].Host()}
	if r := fleetd(t, env, "diff", "--repo", g.work); r.code != 0 {
		t.Fatalf("diff after the rollout: %s", r)
	}
	// A scale by hand, with the agents running: the service's event wakes
	// the holder, which heals it without waiting for the resync.
	one := uint64(1)
	scale := func() time.Time {
		t.Helper()
		svc, _, err := cli.ServiceInspectWithRaw(t.Context(), service, dswarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Spec.Mode.Replicated.Replicas = &one
		if _, err := cli.ServiceUpdate(t.Context(), svc.ID, svc.Version, svc.Spec, dswarm.ServiceUpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	scaled := scale()
	waitFor(t, time.Minute, "the scale by hand undone", func() (bool, string) {
		svc, _, err := cli.ServiceInspectWithRaw(t.Context(), service, dswarm.ServiceInspectOptions{})
		if err != nil {
			return false, err.Error()
		}
		return *svc.Spec.Mode.Replicated.Replicas == 3, fmt.Sprint(*svc.Spec.Mode.Replicated.Replicas)
	})
	t.Logf("docker service scale by hand → the spec corrected by the holder after %s (resync every 10 s: woken by the service's event)", secs(time.Since(scaled)))
	waitFor(t, time.Minute, "3 tasks again", func() (bool, string) {
		n, _ := tasksAt(t, cli, service, "v3")
		return n == 3, fmt.Sprint(n)
	})

	// SIGTERM of the holder releases the lease: the last agent takes over
	// at once, not after the lease's duration.
	third := 3 - active - next
	holderOf := func() string {
		c, _, err := cli.ConfigInspectWithRaw(t.Context(), "fleetd-lease-"+instanceFor(t))
		if err != nil {
			return "error: " + err.Error()
		}
		return c.Spec.Labels["io.fleetd.lease.holder"]
	}
	holder := holderOf()
	stopped := time.Now()
	daemons[next].stop()
	handover := waitFor(t, time.Minute, "the lease taken by the last agent", func() (bool, string) {
		h := holderOf()
		return h != "" && h != holder && !strings.HasPrefix(h, "error"), h
	})
	t.Logf("holder stopped with SIGTERM (lease released) → the lease held by the last agent %s after the SIGTERM (lease duration 6s)", secs(time.Since(stopped)))
	if handover >= 6*time.Second {
		t.Errorf("a released lease took %s to change hands, as long as an expired one", handover)
	}
	waitFor(t, time.Minute, "the last agent acting", func() (bool, string) {
		st := daemons[third].status()
		c := fleetOf(st, fleet).Condition(agent.Ready)
		return c.Status == "True" && st.LastSync.After(stopped), c.Status + "/" + c.Reason
	})
	daemons[third].stop()

	// No agent left (the last one released the lease): fleetd diff names a
	// scale by hand, plan --live plans its undoing, fleetd apply takes the
	// lease, heals it, and gives the lease back.
	scale()
	r := fleetd(t, env, "diff", "--repo", g.work, "--format", "json")
	if r.code != 2 || !strings.Contains(r.stdout, `"kind": "modified"`) || !strings.Contains(r.stdout, `"field": "mode"`) {
		t.Fatalf("diff after a scale by hand: %s", r)
	}
	r = fleetd(t, env, "plan", "--live", "--repo", g.work)
	if r.code != 2 || !strings.Contains(r.stdout, "swarm fleet "+fleet+":\n  update-service "+service+" (modified)") {
		t.Fatalf("plan --live after a scale by hand: %s", r)
	}
	r = fleetd(t, env, "apply", "--repo", g.work)
	if r.code != 0 || !strings.Contains(r.stdout, "swarm fleet "+fleet+": updated 1 service") {
		t.Fatalf("apply of the swarm fleet: %s", r)
	}
	if n, _ := tasksAt(t, cli, service, "v3"); n != 3 {
		t.Errorf("%d tasks after fleetd apply, want 3", n)
	}
	if h := holderOf(); h != "" {
		t.Errorf("the lease is held by %q after fleetd apply, want it released", h)
	}
}
