//go:build fleetdbench

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// TestDaemonBenchHealScale measures heals at the engine's floor and the
// agent at scale (issue 20) on a host with 200 fleets (FLEETD_BENCH_FLEETS)
// of 5 containers each, 1,000 containers (TestDaemonBenchHealOneFleet: 1
// fleet), no
// healthcheck, restart "no", no network (the engine's load stays low; a
// Linux bridge holds at most 1,024 ports). For each: k heals
// (FLEETD_BENCH_HEALS, default 20), each `docker stop` of another
// container, interleaved with a plain stop and start of a container of the
// same image outside fleetd, timed alike:
//
//   - heal: the stop returned -> the engine's start event;
//   - fleetd: the die event -> fleetd's start call (the recording proxy);
//   - engine start: fleetd's start call, sent -> answered;
//   - plain start: the SDK's ContainerStart of the stopped plain container,
//     sent -> answered.
//
// With the 1,000 containers up it then times, in this process against the
// real engine, what every apply and survey does for the whole host:
// engine.Observe, drift.Diff and reconcile.Plan over the 200 fleets; and
// it samples the daemon's VmRSS with every fleet converged.
func TestDaemonBenchHealScale(t *testing.T) {
	benchOnly(t)
	n := 200
	if v := os.Getenv("FLEETD_BENCH_FLEETS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	healScale(t, n, benchHeals(t))
}

// TestDaemonBenchHealOneFleet is TestDaemonBenchHealScale's reference: the
// same heals on a host with 1 fleet (a replica per heal, 20).
func TestDaemonBenchHealOneFleet(t *testing.T) {
	benchOnly(t)
	healScale(t, 1, benchHeals(t))
}

// benchHeals is the number of heals measured (FLEETD_BENCH_HEALS).
func benchHeals(t *testing.T) int {
	k := 20
	if v := os.Getenv("FLEETD_BENCH_HEALS"); v != "" {
		var err error
		if k, err = strconv.Atoi(v); err != nil || k < 1 {
			t.Fatalf("FLEETD_BENCH_HEALS=%q: want a positive number", v)
		}
	}
	return k
}

// scaleReplicas is the containers per fleet of the scale bench.
const scaleReplicas = 5

func scaleCompose(fleet, image string, replicas int) string {
	return fmt.Sprintf("name: %s\nservices:\n  web:\n    image: %s\n    pull_policy: never\n    network_mode: none\n    restart: \"no\"\n    healthcheck: {disable: true}\n    stop_grace_period: 1s\n    deploy: {replicas: %d}\n",
		fleet, image, replicas)
}

func healScale(t *testing.T, n, k int) {
	// Each heal is a container's first: a second one within 10 s would
	// wait for the self-heal backoff. One fleet gets a replica per heal.
	replicas := scaleReplicas
	if n == 1 {
		replicas = max(k, scaleReplicas)
	} else if k > n {
		t.Fatalf("%d heals of %d fleets: at most one heal per fleet", k, n)
	}
	cli := setup(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	g := newGitServer(t)
	files := map[string]string{}
	var names []string
	for i := range n {
		f := dockertest.Name(t, fmt.Sprintf("h%d-%03d", n, i))
		names = append(names, f)
		files[f+"/compose.yaml"] = scaleCompose(f, ref, replicas)
	}
	commit := g.commit("", fmt.Sprintf("%d fleets", n), files)
	proxy := newDockerProxy(t)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", resync: "1h", webhook: true, proxy: proxy})
	start := time.Now()
	waitFor(t, 30*time.Minute, "every fleet deployed", func() (bool, string) {
		ready := 0
		for _, f := range d.status().Fleets {
			if f.Condition("Ready").Status == "True" && f.Applied == commit {
				ready++
			}
		}
		return ready == n, fmt.Sprintf("%d of %d fleets ready", ready, n)
	})
	t.Logf("%d fleets, %d containers deployed in %s", n, n*replicas, time.Since(start).Round(time.Second))
	time.Sleep(5 * time.Second)

	var rss []int
	for range 10 {
		rss = append(rss, procRSS(t, d.cmd.Process.Pid))
		time.Sleep(time.Second)
	}
	t.Logf("%d fleets converged: fleetd VmRSS max %.1f MiB (10 samples, 1 s apart)", n, float64(slices.Max(rss))/1024)

	plain := dockertest.Run(t, cli, dockertest.Name(t, "plain"), ref)
	evs := watchEvents(t, filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "die"), filters.Arg("event", "start")))
	load0 := loadAvg(t)
	var heal, own, engineStart, plainStart []time.Duration
	for i := range k {
		plainStart = append(plainStart, plainRestart(t, cli, plain))
		name := fmt.Sprintf("%s-web-%d", names[i%n], i/n+1)
		h, o, e := healOnce(t, cli, proxy, evs, name)
		heal, own, engineStart = append(heal, h), append(own, o), append(engineStart, e)
		time.Sleep(300 * time.Millisecond) // the apply's own re-observation
	}
	t.Logf("%d fleets: load average %s at the first heal, %s after the last", n, load0, loadAvg(t))
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"heal: stop returned -> start event", heal}, {"fleetd: die event -> start call", own},
		{"engine: fleetd's start call", engineStart}, {"plain start of a stopped container", plainStart}} {
		t.Logf("%d fleets: %-38s p50 %s p95 %s max %s (n=%d)", n, m.name,
			ms(percentile(m.ds, 0.5)), ms(percentile(m.ds, 0.95)), ms(slices.Max(m.ds)), len(m.ds))
	}
	t.Logf("%d fleets: heal p50 / plain start p50 = %.2f; heal p50 - plain start p50 = %s", n,
		float64(percentile(heal, 0.5))/float64(percentile(plainStart, 0.5)), ms(percentile(heal, 0.5)-percentile(plainStart, 0.5)))

	if n > 1 {
		observeDriftPlan(t, d, files, commit)
	}
	d.stop()
}

// plainRestart stops the plain container and times the engine's start of
// it, as the SDK sees it.
func plainRestart(t *testing.T, cli *client.Client, id string) time.Duration {
	timeout := 1
	if err := cli.ContainerStop(t.Context(), id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cli.ContainerStart(t.Context(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// healOnce stops one managed container and waits for fleetd to start it
// again; it returns the heal (stop returned -> start event), fleetd's part
// (die event -> its start call) and the engine's (the start call).
func healOnce(t *testing.T, cli *client.Client, proxy *dockerProxy, evs *engineEvents, name string) (heal, own, eng time.Duration) {
	ins, err := cli.ContainerInspect(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	id, timeout := ins.ID, 1
	before := time.Now()
	if err := cli.ContainerStop(t.Context(), id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var started, died time.Time
	waitFor(t, 2*time.Minute, name+" started again", func() (bool, string) {
		var ok bool
		started, ok = evs.at(id, "start", stopped)
		return ok, "no start event"
	})
	died, ok := evs.at(id, "die", before)
	if !ok {
		t.Fatalf("no die event of %s", name)
	}
	call, ok := proxy.startCall(died, id, name)
	if !ok {
		t.Fatalf("fleetd made no start call for %s (%s) after its die event at %s: %v", name, id, died.Format(time.StampMicro), proxy.since(before))
	}
	return started.Sub(stopped), call.Start.Sub(died), call.End.Sub(call.Start)
}

// observeDriftPlan times, 10 times, what an apply or a survey does for
// the whole host: engine.Observe (as an apply: lists, and inspects of
// what they do not settle; and as a survey: every managed container
// inspected), drift.Diff and reconcile.Plan over every fleet.
func observeDriftPlan(t *testing.T, d *daemon, files map[string]string, commit string) {
	ctx := t.Context()
	dir := t.TempDir()
	for path, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, path), body)
	}
	desired, err := fleets.Load(ctx, dir, fleets.Host{Name: d.host})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(ctx, engine.WithInstance(instanceFor(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, survey := range []bool{false, true} {
		var obsT, diffT, planT, total []time.Duration
		var ctrs, items, actions int
		for range 10 {
			t0 := time.Now()
			obs, err := eng.Observe(ctx, drift.ObserveOptions{InspectAll: survey})
			if err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			its := drift.Diff(desired, obs)
			t2 := time.Now()
			p := reconcile.Plan(desired, obs, reconcile.Policy{Now: t2, Revision: commit})
			t3 := time.Now()
			obsT, diffT, planT, total = append(obsT, t1.Sub(t0)), append(diffT, t2.Sub(t1)), append(planT, t3.Sub(t2)), append(total, t3.Sub(t0))
			ctrs, items, actions = managedOf(obs), len(its), len(p.Actions)
		}
		what := "apply's observe (lists)"
		if survey {
			what = "survey (every container inspected)"
		}
		t.Logf("%d fleets, %d managed containers, %s: observe p50 %s, diff p50 %s, plan p50 %s; total p50 %s p95 %s (n=%d; %d drift items, %d actions)",
			len(desired), ctrs, what, ms(percentile(obsT, 0.5)), msf(percentile(diffT, 0.5)), msf(percentile(planT, 0.5)),
			ms(percentile(total, 0.5)), ms(percentile(total, 0.95)), len(total), items, actions)
		if items != 0 || actions != 0 {
			t.Errorf("the converged host shows %d drift items and %d actions", items, actions)
		}
	}
}

func managedOf(obs drift.Observed) int {
	n := 0
	for _, c := range obs.Containers {
		if c.Managed() {
			n++
		}
	}
	return n
}

// loadAvg is the 1-, 5- and 15-minute load averages.
func loadAvg(t *testing.T) string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// msf renders d in milliseconds with one decimal.
func msf(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
}
