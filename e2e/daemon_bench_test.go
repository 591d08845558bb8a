//go:build fleetdbench

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// The daemon's measurements take minutes, so they are built only with the
// fleetdbench tag (never part of the test suite); docs/performance.md
// ("Daemon") has the command and the figures:
//
//	go test -tags fleetdbench ./e2e -run 'TestDaemonBench' -v -timeout 30m
//
// FLEETD_BENCH_IDLE sets the idle measurement's duration (default 5m).

func benchOnly(t *testing.T) { t.Helper() }

// engineEvents collects the engine's container events of a fleet.
type engineEvents struct {
	mu  sync.Mutex
	evs []events.Message
}

func watchFleet(t *testing.T, fleet string) *engineEvents {
	return watchEvents(t, filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", "io.fleetd.fleet="+fleet)))
}

// watchEvents collects the engine's events that args select.
func watchEvents(t *testing.T, args filters.Args) *engineEvents {
	cli := dockertest.Client(t)
	e := &engineEvents{}
	msgs, _ := cli.Events(t.Context(), events.ListOptions{Filters: args})
	go func() {
		for m := range msgs {
			e.mu.Lock()
			e.evs = append(e.evs, m)
			e.mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	return e
}

// at is the time of the first action event of container id at or after t.
func (e *engineEvents) at(id, action string, t time.Time) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.evs {
		if at := time.Unix(0, m.TimeNano); m.Actor.ID == id && string(m.Action) == action && !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// healthyAt is the time of the first "healthy" event of container id at or
// after t.
func (e *engineEvents) healthyAt(id string, t time.Time) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.evs {
		at := time.Unix(0, m.TimeNano)
		if m.Actor.ID == id && strings.HasPrefix(string(m.Action), "health_status") &&
			strings.HasSuffix(string(m.Action), " healthy") && !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// busy is the time covered by the calls' [Start, End] intervals, clipped
// to before limit.
func busy(calls []dockerCall, limit time.Time) time.Duration {
	var total time.Duration
	var curStart, curEnd time.Time
	for _, c := range calls { // sorted by Start
		s, e := c.Start, c.End
		if e.After(limit) {
			e = limit
		}
		if !e.After(s) {
			continue
		}
		if curEnd.IsZero() || s.After(curEnd) {
			total += curEnd.Sub(curStart)
			curStart, curEnd = s, e
		} else if e.After(curEnd) {
			curEnd = e
		}
	}
	return total + curEnd.Sub(curStart)
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1)*p + 0.5)
	return s[i]
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + "ms" }

// TestDaemonBenchPushToConverged measures push-to-converged latency
// through the generic webhook over 20 pushes, each changing the VERSION
// of a one-replica health-checked service (a health-gated replacement).
// For each push:
//
//   - total: webhook sent -> the test sees the new container healthy and
//     the revision applied in /v1/status;
//   - reaction: webhook -> fleetd's first engine action (fetch, load,
//     observe, plan: fleetd alone);
//   - start/health: fleetd's start call of the new container -> the
//     engine's "healthy" event (the engine's start and the healthcheck);
//   - engine calls: time inside fleetd's mutating engine calls (create,
//     stop, remove, rename) before its last action;
//   - fleetd: webhook -> last action issued, minus the engine calls and
//     any start/health wait before it.
func TestDaemonBenchPushToConverged(t *testing.T) {
	benchOnly(t)
	cli := setup(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "bench-hook")
	g := newGitServer(t)
	c := g.commit("", "b0", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "b0", 1)})
	proxy := newDockerProxy(t)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true, proxy: proxy})
	waitConverged(t, d, cli, fleet, "b0", c, 1, 3*time.Minute)
	evs := watchFleet(t, fleet)

	const pushes = 20
	var total, reaction, engineCalls, startHealth, own []time.Duration
	for i := 1; i <= pushes; i++ {
		version := fmt.Sprintf("b%d", i)
		c = g.commit("", version, map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, version, 1)})
		sent := time.Now()
		d.push()
		ids := waitConverged(t, d, cli, fleet, version, c, 1, 3*time.Minute)
		done := time.Now()
		var calls []dockerCall
		for _, call := range proxy.since(sent) {
			if call.mutating() && call.Start.Before(done) {
				calls = append(calls, call)
			}
		}
		if len(calls) == 0 {
			t.Fatalf("push %d: no engine action", i)
		}
		newID := ""
		for _, id := range ids {
			newID = id
		}
		var start dockerCall
		for _, call := range calls {
			if call.Method == http.MethodPost && (call.Path == "/containers/"+newID+"/start" || call.Path == "/containers/"+fleet+"-web-1/start") {
				start = call
			}
		}
		healthy, ok := evs.healthyAt(newID, start.Start)
		if start.Start.IsZero() || !ok {
			t.Fatalf("push %d: no start call or healthy event for %s: %v", i, newID, calls)
		}
		last := calls[len(calls)-1].Start
		// The health wait counts only while it holds up later actions (a
		// start-first replacement); after a stop-first one, the start is
		// the last action.
		gateEnd := healthy
		if last.Before(gateEnd) {
			gateEnd = last
		}
		gate := gateEnd.Sub(start.End)
		total = append(total, done.Sub(sent))
		reaction = append(reaction, calls[0].Start.Sub(sent))
		startHealth = append(startHealth, healthy.Sub(start.Start))
		engineCalls = append(engineCalls, busy(calls, last))
		own = append(own, last.Sub(sent)-busy(calls, last)-max(gate, 0))
		if i == 1 || own[i-1] == slices.Max(own) {
			var trace []string
			for _, call := range proxy.since(sent) {
				if call.Start.Before(done) && call.Path != "/events" {
					trace = append(trace, fmt.Sprintf("+%s %s (%s)", ms(call.Start.Sub(sent)), call, ms(call.End.Sub(call.Start))))
				}
			}
			t.Logf("push %d, engine calls:\n  %s", i, strings.Join(trace, "\n  "))
		}
		t.Logf("push %2d: total %s, reaction %s, engine calls before the last %s, start/health %s, fleetd %s", i,
			ms(total[i-1]), ms(reaction[i-1]), ms(engineCalls[i-1]), ms(startHealth[i-1]), ms(own[i-1]))
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"total", total}, {"reaction", reaction}, {"engine calls", engineCalls}, {"start/health", startHealth}, {"fleetd", own}} {
		t.Logf("%-13s p50 %s p95 %s (n=%d)", m.name, ms(percentile(m.ds, 0.5)), ms(percentile(m.ds, 0.95)), len(m.ds))
	}
	d.stop()
}

// TestDaemonBenchIdle measures an idle daemon following 5 fleets (one
// container each) with a 10s poll: resident memory (VmRSS, max and
// average) and CPU (utime+stime over wall time), sampled every second for
// FLEETD_BENCH_IDLE (default 5m) once everything converged.
func TestDaemonBenchIdle(t *testing.T) {
	benchOnly(t)
	duration := 5 * time.Minute
	if v := os.Getenv("FLEETD_BENCH_IDLE"); v != "" {
		var err error
		if duration, err = time.ParseDuration(v); err != nil {
			t.Fatalf("FLEETD_BENCH_IDLE: %v", err)
		}
	}
	cli := setup(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	g := newGitServer(t)
	files := map[string]string{}
	var fleetNames []string
	for i := 1; i <= 5; i++ {
		f := dockertest.Name(t, fmt.Sprintf("idle-%d", i))
		fleetNames = append(fleetNames, f)
		files[f+"/compose.yaml"] = webCompose(f, ref, "v1", 1)
	}
	c := g.commit("", "five fleets", files)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "10s"})
	for _, f := range fleetNames {
		waitConverged(t, d, cli, f, "v1", c, 1, 5*time.Minute)
	}
	time.Sleep(5 * time.Second) // the converge's own aftermath (health events)
	pid := d.cmd.Process.Pid
	g.take()
	sum0, n0 := d.metric("fleetd_git_fetch_duration_seconds_sum"), d.metric("fleetd_git_fetch_duration_seconds_count")
	cpu0, start := procCPU(t, pid), time.Now()
	var rss []int
	for time.Since(start) < duration {
		rss = append(rss, procRSS(t, pid))
		time.Sleep(time.Second)
	}
	cpu1, wall := procCPU(t, pid), time.Since(start)
	sum1, n1 := d.metric("fleetd_git_fetch_duration_seconds_sum"), d.metric("fleetd_git_fetch_duration_seconds_count")
	var packs, refs int
	for _, r := range g.take() {
		if strings.HasPrefix(r.Key, "POST ") {
			packs++
		} else {
			refs++
		}
	}
	var avg int
	for _, r := range rss {
		avg += r
	}
	avg /= len(rss)
	// USER_HZ is 100 on Linux.
	cpuPct := float64(cpu1-cpu0) / 100 / wall.Seconds() * 100
	t.Logf("idle daemon, 5 fleets, 10s poll, %s: RSS max %.1f MiB, avg %.1f MiB; CPU %.2f%% of one core (%d ticks); %d polls (%d pack requests), %.1fms per poll",
		wall.Round(time.Second), float64(slices.Max(rss))/1024, float64(avg)/1024, cpuPct, cpu1-cpu0, refs, packs,
		(sum1-sum0)/max(n1-n0, 1)*1000)
	if packs != 0 {
		t.Errorf("%d pack requests while nothing changed", packs)
	}
	d.stop()
}

// procRSS is VmRSS of pid in kB.
func procRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// procCPU is utime+stime of pid in clock ticks.
func procCPU(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// benchFleetCompose is a fleet of one test app without a healthcheck (200
// of them probing every second would load the engine more than fleetd), on
// the default bridge: an engine has address pools for about 30 networks
// of its own, not 200.
func benchFleetCompose(fleet, image string) string {
	return fmt.Sprintf("name: %s\nservices:\n  web:\n    image: %s\n    pull_policy: never\n    network_mode: bridge\n    healthcheck: {disable: true}\n    stop_grace_period: 1s\n", fleet, image)
}

// benchFleets deploys n fleets of one container through a daemon with a
// recording proxy and returns their names.
func benchFleets(t *testing.T, n int, interval, resync string) (*daemon, *dockerProxy, *gitServer, []string, string) {
	cli := setup(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	g := newGitServer(t)
	files := map[string]string{}
	var names []string
	for i := range n {
		f := dockertest.Name(t, fmt.Sprintf("f%03d", i))
		names = append(names, f)
		files[f+"/compose.yaml"] = benchFleetCompose(f, ref)
	}
	g.commit("", fmt.Sprintf("%d fleets", n), files)
	proxy := newDockerProxy(t)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: interval, resync: resync, webhook: true, proxy: proxy})
	start := time.Now()
	waitFor(t, 20*time.Minute, "every fleet deployed", func() (bool, string) {
		st := d.status()
		ready := 0
		for _, f := range st.Fleets {
			if f.Condition("Ready").Status == "True" {
				ready++
			}
		}
		return ready == n, fmt.Sprintf("%d of %d fleets ready", ready, n)
	})
	t.Logf("%d fleets deployed in %s", n, time.Since(start).Round(time.Second))
	return d, proxy, g, names, ref
}

// heals stops the first container of k fleets, one after the other, and
// returns each one's time from the stop returning to running again.
func heals(t *testing.T, fleets []string, k int) []time.Duration {
	cli := dockertest.Client(t)
	var out []time.Duration
	for _, f := range fleets[:k] {
		name := f + "-web-1"
		docker(t, "stop", "-t", "1", name)
		stopped := time.Now()
		for {
			ins, err := cli.ContainerInspect(t.Context(), name)
			if err == nil && ins.State.Running {
				break
			}
			if time.Since(stopped) > 2*time.Minute {
				t.Fatalf("%s not healed after 2m", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		out = append(out, time.Since(stopped))
	}
	return out
}

// TestDaemonBenchIsolation measures the heal latency of 200 fleets (or
// FLEETD_BENCH_FLEETS) with none failing, then with one more fleet stalled
// on a squatted name: 30 heals each, each of another fleet.
func TestDaemonBenchIsolation(t *testing.T) {
	benchOnly(t)
	n := 200
	if v := os.Getenv("FLEETD_BENCH_FLEETS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	d, _, g, names, ref := benchFleets(t, n, "1h", "5m")
	time.Sleep(10 * time.Second)
	const k = 30
	clean := heals(t, names, k)
	bad := dockertest.Name(t, "bad")
	dockertest.Run(t, dockertest.Client(t), bad+"-web-1", ref)
	g.commit("", "a failing fleet", map[string]string{bad + "/compose.yaml": benchFleetCompose(bad, ref)})
	d.push()
	waitFor(t, 5*time.Minute, "the bad fleet stalled", func() (bool, string) {
		for _, f := range d.status().Fleets {
			if f.Name == bad {
				c := f.Condition("Stalled")
				return c.Status == "True", c.Reason
			}
		}
		return false, "not loaded yet"
	})
	failing := heals(t, names[k:], k)
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"none failing", clean}, {"one stalled", failing}} {
		t.Logf("%d fleets, %s: heal (stop returned -> running) p50 %s p99 %s max %s (n=%d)", n, m.name,
			ms(percentile(m.ds, 0.5)), ms(percentile(m.ds, 0.99)), ms(slices.Max(m.ds)), len(m.ds))
	}
	d.stop()
}

// TestDaemonBenchIdleCalls counts the engine calls per idle poll (2s
// interval, 30s) with 1 and with 50 fleets, once everything converged,
// and what a periodic resync (every 10s here) costs.
func TestDaemonBenchIdleCalls(t *testing.T) {
	benchOnly(t)
	for _, n := range []int{1, 50} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			d, proxy, _, _, _ := benchFleets(t, n, "2s", "10s")
			time.Sleep(10 * time.Second)
			polls0 := d.metric("fleetd_git_fetch_duration_seconds_count")
			from := time.Now()
			time.Sleep(30 * time.Second)
			polls := d.metric("fleetd_git_fetch_duration_seconds_count") - polls0
			calls := idleCalls(proxy, from)
			surveys, inResync := 0, 0
			for _, c := range calls {
				if c.Path == "/containers/json" {
					surveys++
				}
			}
			inResync = len(calls)
			t.Logf("%d fleets, idle 30s: %v polls; %d engine calls, all from %d resync surveys (%.1f per survey); 0 from the polls",
				n, polls, inResync, surveys, float64(inResync)/float64(max(surveys, 1)))
			for _, c := range calls {
				if c.Path != "/containers/json" && c.Path != "/networks" && c.Path != "/volumes" && c.Path != "/images/json" && !strings.HasSuffix(c.Path, "/json") {
					t.Errorf("an idle engine call that is not a survey's: %s", c)
				}
			}
			d.stop()
		})
	}
}
