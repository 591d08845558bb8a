package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// rolloutPolicy is one rolling update the bench times.
type rolloutPolicy struct {
	replicas, parallelism int
	monitor               time.Duration
}

func (p rolloutPolicy) String() string {
	return fmt.Sprintf("%d replicas, parallelism %d, start-first, monitor %s", p.replicas, p.parallelism, p.monitor)
}

// name names the policy's sub-benchmark: replicas x parallelism,
// monitor ("3x3-monitor3s").
func (p rolloutPolicy) name() string {
	return fmt.Sprintf("%dx%d-monitor%s", p.replicas, p.parallelism, p.monitor)
}

func (p rolloutPolicy) batches() int { return (p.replicas + p.parallelism - 1) / p.parallelism }

// rolloutRow is what the bench measured for one policy.
type rolloutRow struct {
	policy      rolloutPolicy
	floor, span time.Duration
	// tail is the part of span after the last new replica's gate passed
	// (healthy, then monitor): the last batch's hand-over (stop, remove,
	// rename), which the floor does not count.
	tail          time.Duration
	apply         time.Duration
	calls         int
	byEndpoint    map[string]int
	batchHealthy  []time.Duration
	rolloutOutput string
	log           string // the request log
}

// BenchmarkRollingUpdate times fleetd apply rolling a service of the test
// app from v1 to v2 under the policies of issue 20, each against the floor
// the policy imposes on this machine, measured in the same run: for each
// batch, the time from creating and starting as many containers of the
// same image and healthcheck (probing every second) on the fleet's network
// until Docker reports them all healthy, plus the monitor window; each
// batch is timed just before the rollout and just after, and the two
// averaged. fleetd's rollout is timed from its first container create to
// the end of its last engine call (seen by a recording proxy in front of
// the engine; another one counts the requests as they arrive), and the
// part of it after the last gate passed (the last hand-over, which the
// floor does not count) is shown; the apply's wall time (process start,
// load, observe, plan, rollout, exit) is printed beside it. It prints a
// table policy | floor | fleetd | ratio | API calls; docs/performance.md records
// runs. One policy alone: -bench 'BenchmarkRollingUpdate/3x3-monitor3s';
// FLEETD_BENCH_LOG=1 prints each apply's request log too.
//
//	go test -count=1 -run '^$' -bench BenchmarkRollingUpdate -benchtime 1x ./e2e/
func BenchmarkRollingUpdate(b *testing.B) {
	policies := []rolloutPolicy{
		{replicas: 3, parallelism: 3, monitor: 3 * time.Second},
		{replicas: 3, parallelism: 3, monitor: 0},
		{replicas: 3, parallelism: 1, monitor: 3 * time.Second},
		{replicas: 10, parallelism: 2, monitor: time.Second},
	}
	b.StopTimer()
	cli := setup(b)
	v1, _ := dockertest.TestImage(b, cli, "v1")
	v2, _ := dockertest.TestImage(b, cli, "v2")
	var rows []rolloutRow
	for i, pol := range policies {
		b.Run(pol.name(), func(b *testing.B) {
			b.StopTimer()
			for n := 0; n < b.N; n++ {
				rows = append(rows, benchRollout(b, cli, fmt.Sprintf("bench-roll%d", i), v1, v2, pol))
			}
		})
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n| policy | floor | fleetd rollout | ratio | of which last hand-over | fleetd apply (wall) | API calls |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&out, "| %s | %.2f s | %.2f s | **%.2f×** | %.2f s | %.2f s | %d |\n", r.policy, r.floor.Seconds(), r.span.Seconds(),
			r.span.Seconds()/r.floor.Seconds(), r.tail.Seconds(), r.apply.Seconds(), r.calls)
	}
	for _, r := range rows {
		fmt.Fprintf(&out, "\n%s: per-batch create→healthy before and after the rollout %v; requests by endpoint:\n", r.policy, roundAll(r.batchHealthy))
		for _, k := range slices.Sorted(maps.Keys(r.byEndpoint)) {
			fmt.Fprintf(&out, "  %3d %s\n", r.byEndpoint[k], k)
		}
		fmt.Fprintf(&out, "%s\n", r.rolloutOutput)
		if os.Getenv("FLEETD_BENCH_LOG") != "" {
			fmt.Fprintf(&out, "request log (seconds from the apply's start, start-end):\n%s", r.log)
		}
	}
	fmt.Fprint(os.Stdout, out.String())
}

// benchRollout deploys v1 (not timed), rolls out v2 through the recording
// proxy, then measures the policy's floor on the fleet's network.
func benchRollout(b *testing.B, cli *client.Client, base, v1, v2 string, pol rolloutPolicy) rolloutRow {
	b.Helper()
	s := svcSpec{fleet: dockertest.Name(b, base), replicas: pol.replicas, probeEvery: time.Second,
		update: fmt.Sprintf("{parallelism: %d, order: start-first, monitor: %s}", pol.parallelism, pol.monitor)}
	// Each policy has its fleetd instance: an apply of one does not see
	// (or prune) the fleets the others left.
	env := []string{"FLEETD_INSTANCE=" + dockertest.Name(b, base)}
	r := newRepo(b)
	s.image = v1
	r.write(b, s.fleet, s.compose())
	if res := fleetd(b, env, "apply", "--repo", r.dir); res.code != 0 {
		b.Fatalf("deploy: want exit 0\n%s", res)
	}
	waitHealthy(b, cli, s.fleet, s.replicas)
	s.image = v2
	r.write(b, s.fleet, s.compose())
	// The floor is measured just before the rollout and again just after,
	// and averaged: the engine's pace drifts with the machine's load.
	before := floorOf(b, cli, v2, s.fleet+"_default", "before", pol)

	proxy := newDockerProxy(b)
	counter := newArrivals(b, proxy.addr)
	start := time.Now()
	b.StartTimer()
	res := fleetd(b, append(env, "DOCKER_HOST=tcp://"+counter.addr), "apply", "--repo", r.dir)
	b.StopTimer()
	took := time.Since(start)
	if res.code != 0 {
		b.Fatalf("apply: want exit 0\n%s", res)
	}
	if n := len(lines(res.stdout, "rollout batch")); n != pol.batches() || !strings.Contains(res.stdout, "rolled out") {
		b.Fatalf("want %d batches and rolled out\n%s", pol.batches(), res)
	}
	wantContainers(b, cli, s.fleet, s.names()...)
	time.Sleep(200 * time.Millisecond) // the last calls' ends
	calls := proxy.since(start)
	evLog, lastHealthy := fleetEvents(b, cli, s.fleet, start)
	counted := counter.byEndpoint()
	total := 0
	for _, n := range counted {
		total += n
	}
	row := rolloutRow{policy: pol, apply: took, calls: total, byEndpoint: counted,
		rolloutOutput: strings.Join(lines(res.stdout, "rollout "), "\n"), log: requestLog(calls, start) + evLog}
	row.span = rolloutSpan(calls)
	if end := spanEnd(calls); !lastHealthy.IsZero() {
		row.tail = end.Sub(lastHealthy.Add(pol.monitor))
	}

	after := floorOf(b, cli, v2, s.fleet+"_default", "after", pol)
	row.batchHealthy = append(before, after...)
	for i := range before {
		row.floor += (before[i]+after[i])/2 + pol.monitor
	}
	return row
}

// floorOf measures, batch after batch, the time the engine takes to bring
// a batch of new containers (the policy's parallelism, fewer for the last
// batch) from create to healthy.
func floorOf(b *testing.B, cli *client.Client, ref, net, base string, pol rolloutPolicy) []time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	var out []time.Duration
	for k := range pol.batches() {
		n := min(pol.parallelism, pol.replicas-k*pol.parallelism)
		out = append(out, batchToHealthy(b, ctx, cli, ref, net, fmt.Sprintf("%s%d", base, k), n, time.Second))
	}
	return out
}

// rolloutSpan is the time from fleetd's first container create to the end
// of its last mutating engine call (the last batch's hand-over).
func rolloutSpan(calls []dockerCall) time.Duration {
	for _, c := range calls {
		if c.Method == "POST" && strings.HasPrefix(c.Path, "/containers/create") {
			return spanEnd(calls).Sub(c.Start)
		}
	}
	return 0
}

// spanEnd is the end of fleetd's last mutating engine call.
func spanEnd(calls []dockerCall) time.Time {
	var last time.Time
	for _, c := range calls {
		if c.mutating() && c.End.After(last) {
			last = c.End
		}
	}
	return last
}

// requestLog renders calls one a line: start and end, in seconds from
// t0, method and path.
func requestLog(calls []dockerCall, t0 time.Time) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "%6.3f-%6.3f %s %s\n", c.Start.Sub(t0).Seconds(), c.End.Sub(t0).Seconds(), c.Method, c.Path)
	}
	return b.String()
}

// fleetEvents renders the engine's container events of fleet since t0
// (create, start, health_status, die, destroy, rename), one a line, in
// seconds from t0: with the request log they show how soon fleetd acted
// on a health verdict.
func fleetEvents(b *testing.B, cli *client.Client, fleet string, t0 time.Time) (_ string, lastHealthy time.Time) {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
	defer cancel()
	stamp := func(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }
	msgs, errs := cli.Events(ctx, events.ListOptions{Since: stamp(t0), Until: stamp(time.Now()),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", "io.fleetd.fleet="+fleet))})
	var out strings.Builder
	out.WriteString("engine events:\n")
	for {
		select {
		case m := <-msgs:
			if strings.HasPrefix(string(m.Action), "exec_") {
				continue
			}
			at := time.Unix(0, m.TimeNano)
			if m.Action == events.ActionHealthStatusHealthy && at.After(lastHealthy) {
				lastHealthy = at
			}
			fmt.Fprintf(&out, "%6.3f        %s %s\n", at.Sub(t0).Seconds(), m.Action, m.Actor.Attributes["name"])
		case <-errs:
			return out.String(), lastHealthy
		}
	}
}

var idInPath = regexp.MustCompile(`^/(containers|networks|volumes|images|exec)/([^/?]+)`)

// endpoint is a request's method and path, without the API version, with
// object IDs and names replaced by {id} and the query dropped.
func endpoint(method, path string) string {
	p := "/" + strings.TrimPrefix(apiVersion.ReplaceAllString(path, ""), "/")
	if m := idInPath.FindStringSubmatch(p); m != nil && m[2] != "create" && m[2] != "json" && m[2] != "prune" {
		p = "/" + m[1] + "/{id}" + strings.TrimPrefix(p, m[0])
	}
	return method + " " + p
}

// arrivals is a counting proxy in front of the recording one: it counts
// every request as it arrives. The recording proxy logs a call when it
// ends, which the events stream does only after fleetd exits (if then).
type arrivals struct {
	addr string
	mu   sync.Mutex
	n    map[string]int
}

func newArrivals(b testing.TB, to string) *arrivals {
	b.Helper()
	a := &arrivals{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: to})
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.n[endpoint(r.Method, r.URL.Path)]++
		a.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	a.addr = ln.Addr().String()
	return a
}

func (a *arrivals) byEndpoint() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.n)
}

func (a *arrivals) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.n)
}

// TestDaemonRolloutRequests counts the engine requests of issue 20's
// deploy: a webhook makes the daemon roll 3 replicas (1 s healthcheck) to
// a new spec, parallelism 3, start-first, monitor 3s. The gates share the
// engine's one events subscription (opened by the first deploy already)
// and inspect nothing; the whole deploy,
// from the webhook to converged (fetch, observe, plan, rollout, the last
// observation), takes at most 30 requests.
func TestDaemonRolloutRequests(t *testing.T) {
	cli := setup(t)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	s := svcSpec{fleet: dockertest.Name(t, "reqs"), image: ref, replicas: 3, probeEvery: time.Second,
		env: []string{"VERSION: v1"}, update: "{parallelism: 3, order: start-first, monitor: 3s}"}
	g := newGitServer(t)
	c := g.commit("", "v1", map[string]string{s.fleet + "/compose.yaml": s.compose()})
	inner := newDockerProxy(t)
	counter := newArrivals(t, inner.addr)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true, docker: "tcp://" + counter.addr})
	waitConverged(t, d, cli, s.fleet, "v1", c, s.replicas, 3*time.Minute)
	s.env = []string{"VERSION: v2"}
	c = g.commit("", "v2", map[string]string{s.fleet + "/compose.yaml": s.compose()})
	time.Sleep(time.Second) // the first deploy's last calls
	counter.reset()
	pushed := time.Now()
	d.push()
	// Converged is watched on the engine directly: the daemon's status
	// (which a poll of waitConverged reads ten times a second) inspects
	// the ingress container on each call, which is no part of the deploy.
	waitFor(t, 3*time.Minute, s.fleet+" rolled out", func() (bool, string) {
		ok, ids, detail := fleetState(t.Context(), cli, s.fleet, "v2", s.replicas)
		for _, name := range s.names() {
			ok = ok && ids[name] != ""
		}
		return ok, detail
	})
	time.Sleep(2 * time.Second) // the daemon's last observation, after the last rename
	got := counter.byEndpoint()
	waitConverged(t, d, cli, s.fleet, "v2", c, s.replicas, time.Minute)
	total := 0
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		total += got[k]
		lines = append(lines, fmt.Sprintf("%3d %s", got[k], k))
	}
	t.Logf("%d requests from the webhook to converged:\n%s\nrequest log (seconds from the webhook):\n%s", total, strings.Join(lines, "\n"),
		requestLog(inner.since(pushed), pushed))
	if total > 30 {
		t.Errorf("%d engine requests for the 3-replica deploy, want at most 30", total)
	}
	if n := got["GET /events"]; n > 1 {
		t.Errorf("%d events subscriptions, want the engine's one shared by every wait", n)
	}
	d.stop()
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// batchToHealthy creates and starts n containers of ref at once, with the
// service's healthcheck (probing every interval), on network net, and
// returns the time from the first create call until Docker reports the
// last of them healthy (followed on the events stream). It removes them
// afterwards (not timed).
func batchToHealthy(b *testing.B, ctx context.Context, cli *client.Client, ref, net, base string, n int, interval time.Duration) time.Duration {
	b.Helper()
	label := dockertest.Name(b, "bench-"+base)
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", "io.fleetd.bench="+label),
		filters.Arg("event", string(events.ActionHealthStatus)),
	)})
	cfg := &container.Config{
		Image:  ref,
		Labels: map[string]string{dockertest.LabelTestRun: dockertest.RunID(), "io.fleetd.bench": label},
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "/testapp", "-health"},
			Interval: interval, Timeout: healthTimeout, Retries: healthRetries, // as the service's
		},
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {}}}
	ids := make([]string, n)
	defer func() {
		// Stop, then remove: force-removing a running container on a
		// user network is how Docker 20.10 sometimes leaks an endpoint,
		// which then keeps the fleet's network from being removed.
		bg := context.WithoutCancel(ctx)
		timeout := 10
		for _, id := range ids {
			if id != "" {
				_ = cli.ContainerStop(bg, id, container.StopOptions{Timeout: &timeout})
				_ = cli.ContainerRemove(bg, id, container.RemoveOptions{Force: true})
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			created, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: container.NetworkMode(net)}, netCfg, nil, fmt.Sprintf("%s-%d", label, i))
			if err != nil {
				errc <- err
				return
			}
			ids[i] = created.ID
			if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	healthy := map[string]bool{}
	for len(healthy) < n {
		select {
		case m := <-msgs:
			switch m.Action {
			case events.ActionHealthStatusHealthy:
				healthy[m.Actor.ID] = true
			case events.ActionHealthStatusUnhealthy:
				b.Fatalf("%s turned unhealthy", m.Actor.Attributes["name"])
			}
		case err := <-errs:
			b.Fatalf("events of %s: %v", label, err)
		}
	}
	return time.Since(start)
}
