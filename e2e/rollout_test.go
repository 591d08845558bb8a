package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// The services of the rollout tests use the harness's healthcheck: a probe
// a second, so that a new replica is healthy about a second after it starts
// and a broken one is unhealthy three failed probes later; its generous
// probe timeout keeps healthy replicas from flapping on a loaded machine
// (with timeout 5s and 2 retries they did, at a load average of 40).

// svcSpec is the one service ("web") of a rollout test's fleet.
type svcSpec struct {
	fleet    string
	image    string
	replicas int
	env      []string // "KEY: value" lines
	ports    []string // compose port strings
	update   string   // update_config as a YAML flow mapping
	rollback string   // rollback_config as a YAML flow mapping
	// probeEvery is the healthcheck interval (default: the suite's).
	probeEvery time.Duration
}

func (s svcSpec) compose() string {
	var b strings.Builder
	health := healthcheck
	if s.probeEvery > 0 {
		health = healthcheckEvery(s.probeEvery)
	}
	fmt.Fprintf(&b, "name: %s\nservices:\n  web:\n    image: %s\n    pull_policy: never\n%s\n", s.fleet, s.image, health)
	if len(s.env) > 0 {
		b.WriteString("    environment:\n")
		for _, e := range s.env {
			fmt.Fprintf(&b, "      %s\n", e)
		}
	}
	if len(s.ports) > 0 {
		fmt.Fprintf(&b, "    ports: [%q]\n", strings.Join(s.ports, `", "`))
	}
	fmt.Fprintf(&b, "    deploy:\n      replicas: %d\n", s.replicas)
	if s.update != "" {
		fmt.Fprintf(&b, "      update_config: %s\n", s.update)
	}
	if s.rollback != "" {
		fmt.Fprintf(&b, "      rollback_config: %s\n", s.rollback)
	}
	return b.String()
}

// names are the containers of the service, one per slot.
func (s svcSpec) names() []string {
	var ns []string
	for i := 1; i <= s.replicas; i++ {
		ns = append(ns, fmt.Sprintf("%s-web-%d", s.fleet, i))
	}
	return ns
}

// deploy writes the spec, applies it, and waits until every replica is
// healthy (a sampler started afterwards must not count the deploy's own
// health checks starting up).
func deploy(t testing.TB, cli *client.Client, r *repo, s svcSpec) {
	t.Helper()
	r.write(t, s.fleet, s.compose())
	r.apply(t)
	waitHealthy(t, cli, s.fleet, s.replicas)
}

// healthyReplicas counts the fleet's web containers that run and that
// Docker reports healthy.
func healthyReplicas(ctx context.Context, cli *client.Client, fleet string) (int, error) {
	list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "io.fleetd.fleet="+fleet),
		filters.Arg("label", "io.fleetd.service=web"),
	)})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range list {
		if c.State == "running" && strings.Contains(c.Status, "(healthy)") {
			n++
		}
	}
	return n, nil
}

// waitHealthy waits until the fleet has n healthy web replicas.
func waitHealthy(t testing.TB, cli *client.Client, fleet string, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := healthyReplicas(t.Context(), cli, fleet)
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet %s: %d healthy replicas after 90s, want %d (err %v)", fleet, got, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sampler polls the number of healthy replicas of a fleet every 200ms
// until stopped, and keeps the samples.
type sampler struct {
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []int
	errs    []error
}

func startSampler(t *testing.T, cli *client.Client, fleet string) *sampler {
	ctx, cancel := context.WithCancel(t.Context())
	s := &sampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			n, err := healthyReplicas(ctx, cli, fleet)
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if err != nil {
				s.errs = append(s.errs, err)
			} else {
				s.samples = append(s.samples, n)
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// finish stops the sampler and checks that every sample saw at least min
// healthy replicas.
func (s *sampler) finish(t *testing.T, min int) {
	t.Helper()
	s.stop()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		t.Errorf("sampler: %d list errors, first: %v", len(s.errs), s.errs[0])
	}
	if len(s.samples) < 10 {
		t.Fatalf("sampler: only %d samples", len(s.samples))
	}
	low := slices.Min(s.samples)
	t.Logf("sampler: %d samples, healthy replicas min %d, max %d", len(s.samples), low, slices.Max(s.samples))
	if low < min {
		t.Errorf("sampler saw %d healthy replicas, want at least %d at every sample: %v", low, min, s.samples)
	}
}

// lines returns the lines of out that contain sub.
func lines(out, sub string) []string {
	var ls []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, sub) {
			ls = append(ls, l)
		}
	}
	return ls
}

// changeLine matches apply's line for an action that creates or starts a
// container ("done     create          fleet/web ...").
var changeLine = regexp.MustCompile(`(?m)^\S+\s+(create|start)\s`)

// planCreate matches a create action in plan's text.
var planCreate = regexp.MustCompile(`(?m)^\s+\d+\s+create\s`)

// wantVersion checks that the fleet runs exactly the service's containers,
// one per slot, each healthy and answering version.
func wantVersion(t testing.TB, cli *client.Client, s svcSpec, version string) map[string]container.Summary {
	t.Helper()
	got := wantContainers(t, cli, s.fleet, s.names()...)
	for name, c := range got {
		if !strings.Contains(c.Status, "(healthy)") {
			t.Errorf("%s: status %q, want healthy", name, c.Status)
		}
		if v := appVersion(t, cli, c.ID, s.fleet+"_default"); v != version {
			t.Errorf("%s answers %q, want %s", name, v, version)
		}
	}
	return got
}

// rolloutRecord reads the service's rollout record from the instance's
// state file ($FLEETD_STATE_DIR/<instance>/state.json).
func rolloutRecord(t *testing.T, fleet string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateRoot, instanceFor(t), "state.json"))
	if err != nil {
		t.Fatalf("rollout state: %v", err)
	}
	var state struct {
		Rollouts map[string]map[string]any `json:"rollouts"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		t.Fatalf("rollout state: %v\n%s", err, b)
	}
	return state.Rollouts[fleet+"/web"]
}

// testRollingUpdate rolls a 4-replica service from v1 to v2 at parallelism
// 2 with order, sampling the healthy replicas throughout.
func testRollingUpdate(t *testing.T, order string, minHealthy int) {
	t.Parallel()
	cli := setup(t)
	v1, _ := dockertest.TestImage(t, cli, "v1")
	v2, _ := dockertest.TestImage(t, cli, "v2")
	s := svcSpec{fleet: dockertest.Name(t, "roll-"+order), image: v1, replicas: 4,
		update: fmt.Sprintf("{parallelism: 2, order: %s, monitor: 2s}", order)}
	r := newRepo(t)
	deploy(t, cli, r, s)
	before := wantVersion(t, cli, s, "v1")

	s.image = v2
	r.write(t, s.fleet, s.compose())
	smp := startSampler(t, cli, s.fleet)
	res := r.apply(t)
	smp.finish(t, minHealthy)
	t.Logf("%s", res)

	if b := lines(res.stdout, "rollout batch"); len(b) != 2 {
		t.Errorf("want two rollout batch lines, got %d: %q", len(b), b)
	}
	for _, want := range []string{"rolling out", "over 4 replicas: 2 at a time, " + order, "rolled out"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("apply output lacks %q", want)
		}
	}
	if strings.Contains(res.stdout, "forced") {
		t.Errorf("order %s was forced, want as asked", order)
	}
	after := wantVersion(t, cli, s, "v2")
	for name, c := range after {
		if c.ID == before[name].ID {
			t.Errorf("%s was not replaced", name)
		}
	}
	r.inSync(t)
}

// TestRolloutStartFirst: v1 → v2 of 4 replicas, 2 at a time, start-first:
// two batches, every replica ends on v2, and capacity never drops below 4.
func TestRolloutStartFirst(t *testing.T) { testRollingUpdate(t, "start-first", 4) }

// TestRolloutStopFirst: the same stop-first; capacity drops by at most the
// parallelism.
func TestRolloutStopFirst(t *testing.T) { testRollingUpdate(t, "stop-first", 4-2) }

// TestRolloutRollback: v2 → a build that crashes a second after it starts,
// with failure_action rollback: fleetd rolls back by itself, says why, and
// does not try the same spec again until --retry.
func TestRolloutRollback(t *testing.T) {
	t.Parallel()
	cli := setup(t)
	v2, _ := dockertest.TestImage(t, cli, "v2")
	v3, _ := dockertest.TestImage(t, cli, "v3")
	s := svcSpec{fleet: dockertest.Name(t, "rollback"), image: v2, replicas: 3,
		update:   "{parallelism: 2, order: stop-first, monitor: 2s, failure_action: rollback}",
		rollback: "{parallelism: 2, monitor: 1s}"}
	r := newRepo(t)
	deploy(t, cli, r, s)
	wantVersion(t, cli, s, "v2")

	good := s
	s.image, s.env = v3, []string{"CRASH_AFTER: 1s"}
	r.write(t, s.fleet, s.compose())
	res := r.run(t, "apply")
	t.Logf("%s", res)
	if res.code != 1 {
		t.Errorf("apply of the broken build: exit %d, want 1", res.code)
	}
	for _, want := range []string{"rolling back to", "rolled back to", "exited with code 3"} {
		if len(lines(res.stdout, want)) == 0 {
			t.Errorf("apply output lacks %q", want)
		}
	}
	rolled := lines(res.stdout, "rolled back to")
	if len(rolled) == 0 || !strings.Contains(rolled[0], "code 3") {
		t.Errorf("the rolled back line does not give the reason (exit code 3): %q", rolled)
	}
	wantVersion(t, cli, good, "v2")
	if rec := rolloutRecord(t, s.fleet); rec["status"] != "rolled-back" {
		t.Errorf("rollout record %v, want status rolled-back", rec)
	}

	t.Run("not retried", func(t *testing.T) {
		before := wantVersion(t, cli, good, "v2")
		res := r.run(t, "apply")
		t.Logf("%s", res)
		if res.code != 1 || changeLine.MatchString(res.stdout) || !strings.Contains(res.stdout, "not retried") {
			t.Errorf("second apply of the broken revision: want exit 1, no create or start, \"not retried\"\n%s", res)
		}
		after := wantVersion(t, cli, good, "v2")
		for name, c := range after {
			if c.ID != before[name].ID {
				t.Errorf("%s was replaced", name)
			}
		}
	})

	t.Run("retry", func(t *testing.T) {
		res := r.run(t, "apply", "--retry")
		t.Logf("%s", res)
		if res.code != 1 || !changeLine.MatchString(res.stdout) || !strings.Contains(res.stdout, "rolling out") || !strings.Contains(res.stdout, "rolled back to") {
			t.Errorf("apply --retry: want another attempt, rolled back again, exit 1\n%s", res)
		}
		wantVersion(t, cli, good, "v2")
	})
}

// TestRolloutPause: v2 → a build that never turns healthy, one replica at a
// time, failure_action pause: the rollout stops after the first batch with
// exactly one replica replaced, and plan --live says it is paused.
func TestRolloutPause(t *testing.T) {
	t.Parallel()
	cli := setup(t)
	v2, _ := dockertest.TestImage(t, cli, "v2")
	v3, v3ID := dockertest.TestImage(t, cli, "v3")
	s := svcSpec{fleet: dockertest.Name(t, "pause"), image: v2, replicas: 3,
		update: "{parallelism: 1, monitor: 2s, failure_action: pause}"}
	r := newRepo(t)
	deploy(t, cli, r, s)
	before := wantVersion(t, cli, s, "v2")

	s.image, s.env = v3, []string{`HEALTHY: "false"`}
	r.write(t, s.fleet, s.compose())
	res := r.run(t, "apply")
	t.Logf("%s", res)
	if res.code != 1 {
		t.Errorf("apply of the broken build: exit %d, want 1", res.code)
	}
	if b := lines(res.stdout, "rollout batch"); len(b) != 1 {
		t.Errorf("want one rollout batch, got %q", b)
	}
	paused := lines(res.stdout, "paused with old and new replicas running")
	if len(paused) != 1 || !strings.Contains(paused[0], "unhealthy") {
		t.Errorf("want one paused event naming the health check failure, got %q", paused)
	}

	after := wantContainers(t, cli, s.fleet, s.names()...)
	touched := 0
	for name, c := range after {
		if c.ID == before[name].ID {
			if v := appVersion(t, cli, c.ID, s.fleet+"_default"); v != "v2" {
				t.Errorf("untouched %s answers %q, want v2", name, v)
			}
			continue
		}
		touched++
		if c.ImageID != v3ID {
			t.Errorf("replaced %s runs image %s, want %s (%s)", name, c.ImageID, v3ID, v3)
		}
	}
	if touched != 1 || after[s.fleet+"-web-1"].ID == before[s.fleet+"-web-1"].ID {
		t.Errorf("%d replicas replaced, want exactly slot 1", touched)
	}
	if rec := rolloutRecord(t, s.fleet); rec["status"] != "paused" {
		t.Errorf("rollout record %v, want status paused", rec)
	}

	plan := r.run(t, "plan", "--live")
	t.Logf("%s", plan)
	left := lines(plan.stdout, "left alone:")
	if len(left) != 1 || !strings.Contains(left[0], s.fleet+"/web") || !strings.Contains(left[0], "paused") {
		t.Errorf("plan --live: want the service left alone as paused\n%s", plan)
	}
	// The rollout is not taken further, and the broken new replica is left
	// as it is for inspection: no restart.
	if planCreate.MatchString(plan.stdout) || plan.code == 1 {
		t.Errorf("plan --live of a paused rollout plans another replica or fails\n%s", plan)
	}
	if len(left) == 1 && !strings.Contains(left[0], "new replicas are left as they are") || strings.Contains(plan.stdout, "restart ") {
		t.Errorf("plan --live heals the paused rollout's new replica\n%s", plan)
	}
}

// TestRolloutSIGKILL kills apply in the middle of a start-first rollout and
// runs it again: the rollout completes with one container per slot, no
// -next leftover, all on the new version.
func TestRolloutSIGKILL(t *testing.T) {
	t.Parallel()
	cli := setup(t)
	v1, _ := dockertest.TestImage(t, cli, "v1")
	v2, _ := dockertest.TestImage(t, cli, "v2")
	s := svcSpec{fleet: dockertest.Name(t, "rollkill"), image: v1, replicas: 3,
		update: "{parallelism: 2, order: start-first, monitor: 2s}"}
	r := newRepo(t)
	deploy(t, cli, r, s)

	steps := []struct {
		name    string
		change  func()
		version string
		kill    func(events.Message) bool
	}{
		{"first next starts", func() { s.image = v2 }, "v2", func(m events.Message) bool {
			return m.Action == events.ActionStart && strings.HasSuffix(m.Actor.Attributes["name"], "-next")
		}},
		{"first hand-over", func() { s.env = []string{"VERSION: v2b"} }, "v2b", func(m events.Message) bool {
			return m.Action == events.ActionRename
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change()
			r.write(t, s.fleet, s.compose())
			if !killedApply(t, cli, r, s.fleet, killPoint{match: st.kill}) {
				t.Fatal("apply finished before the kill point")
			}
			var leftovers []string
			for name := range containers(t, cli, s.fleet) {
				leftovers = append(leftovers, name)
			}
			slices.Sort(leftovers)
			t.Logf("containers after the kill: %v", leftovers)

			res := r.apply(t)
			t.Logf("%s", res)
			wantVersion(t, cli, s, st.version)
			r.inSync(t)
		})
	}
}

// TestRolloutFixedPort: a service that publishes a fixed host port cannot
// run two replicas side by side, so its start-first is forced to stop-first;
// plan says so and the update succeeds.
func TestRolloutFixedPort(t *testing.T) {
	t.Parallel()
	cli := setup(t)
	v1, _ := dockertest.TestImage(t, cli, "v1")
	v2, _ := dockertest.TestImage(t, cli, "v2")
	port := strconv.Itoa(dockertest.FreePort(t))
	s := svcSpec{fleet: dockertest.Name(t, "fixedport"), image: v1, replicas: 1,
		ports: []string{"127.0.0.1:" + port + ":8080"}, update: "{order: start-first, monitor: 1s}"}
	r := newRepo(t)
	deploy(t, cli, r, s)

	s.image = v2
	r.write(t, s.fleet, s.compose())
	plan := r.run(t, "plan", "--live")
	t.Logf("%s", plan)
	want := "stop-first (forced: publishes fixed host port " + port + ")"
	if plan.code != 2 || !strings.Contains(plan.stdout, want) {
		t.Errorf("plan --live: want exit 2 and %q\n%s", want, plan)
	}
	res := r.apply(t)
	t.Logf("%s", res)
	if !strings.Contains(res.stdout, want) || !strings.Contains(res.stdout, "rolled out") {
		t.Errorf("apply: want %q and rolled out", want)
	}
	for name, c := range wantVersion(t, cli, s, "v2") {
		if v := publishedVersion(t, cli, c.ID); v != "v2" {
			t.Errorf("%s answers %q on 127.0.0.1:%s, want v2", name, v, port)
		}
	}
}
