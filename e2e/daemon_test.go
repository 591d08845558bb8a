package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/server"
)

// The daemon tests run `fleetd run --config FILE` as a subprocess against a
// real Git server (gitserver_test.go) and the real engine. The daemon talks
// to the engine through dockerProxy, which records when it issued each call:
// that is how the tests see fleetd's own actions (its log names events, not
// engine calls) and split latencies into fleetd's part and the engine's.

// stopBound is how long a SIGTERM may take to stop the daemon.
const stopBound = 30 * time.Second

// dockerCall is one engine API call the daemon made.
type dockerCall struct {
	Method, Path string // Path without the /v1.xx prefix
	Query        string // the raw query (filters of a list call)
	Start, End   time.Time
}

func (c dockerCall) String() string { return c.Method + " " + c.Path }

// mutating reports whether the call changes the engine (create, start,
// stop, remove, rename, connect...): an action fleetd issued.
func (c dockerCall) mutating() bool {
	return c.Method == http.MethodPost || c.Method == http.MethodDelete || c.Method == http.MethodPut
}

// dockerProxy is a recording reverse proxy in front of the engine's socket.
type dockerProxy struct {
	addr  string
	mu    sync.Mutex
	calls []dockerCall
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+/`)

func newDockerProxy(t testing.TB) *dockerProxy {
	t.Helper()
	return newDockerProxyTo(t, os.Getenv("DOCKER_HOST"))
}

// newDockerProxyTo is newDockerProxy in front of the engine at host (a
// DOCKER_HOST value).
func newDockerProxyTo(t testing.TB, host string) *dockerProxy {
	t.Helper()
	target, dial := "http://docker", (&net.Dialer{}).DialContext
	switch {
	case host == "" || strings.HasPrefix(host, "unix://"):
		sock := strings.TrimPrefix(host, "unix://")
		if sock == "" {
			sock = "/var/run/docker.sock"
		}
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}
	case strings.HasPrefix(host, "tcp://"):
		target = "http://" + strings.TrimPrefix(host, "tcp://")
	default:
		t.Fatalf("DOCKER_HOST %s: the recording proxy handles unix:// and tcp:// only", host)
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &dockerProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport:     &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16},
		FlushInterval: -1, // the event stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := dockerCall{Method: r.Method, Path: "/" + apiVersion.ReplaceAllString(r.URL.Path, ""), Query: r.URL.RawQuery, Start: time.Now()}
		c.Path = strings.TrimPrefix(c.Path, "/")
		if !strings.HasPrefix(c.Path, "/") {
			c.Path = "/" + c.Path
		}
		if r.URL.RawQuery != "" && strings.HasSuffix(c.Path, "/create") {
			c.Path += "?" + r.URL.RawQuery
		}
		rp.ServeHTTP(w, r)
		c.End = time.Now()
		p.mu.Lock()
		p.calls = append(p.calls, c)
		p.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.addr = ln.Addr().String()
	return p
}

// since returns the calls that started at or after t, in order of start.
func (p *dockerProxy) since(t time.Time) []dockerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []dockerCall
	for _, c := range p.calls {
		if !c.Start.Before(t) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b dockerCall) int { return a.Start.Compare(b.Start) })
	return out
}

// startCall is the first start call of the container (by ID or name)
// that began at or after t.
func (p *dockerProxy) startCall(t time.Time, id, name string) (dockerCall, bool) {
	for _, c := range p.since(t) {
		if c.Method == http.MethodPost && (c.Path == "/containers/"+id+"/start" || c.Path == "/containers/"+name+"/start") {
			return c, true
		}
	}
	return dockerCall{}, false
}

// logBuffer collects the daemon's stderr.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemonOpts configures one daemon.
type daemonOpts struct {
	url      string
	interval string // source.interval
	webhook  bool   // webhook.secret_file
	resync   string // reconcile.resync (default 5m)
	proxy    *dockerProxy
	docker   string // DOCKER_HOST when there is no proxy (default: the environment's)
	extra    string // appended to the configuration file
	source   string // more keys of source, in flow style ("verify: {…}")
}

// daemon is one `fleetd run` subprocess and its configuration; restart
// starts a new process with the same configuration and state directory.
type daemon struct {
	t         testing.TB
	dir       string
	config    string
	addr      string
	host      string
	secret    string
	tokenFile string
	env       []string

	cmd     *exec.Cmd
	started time.Time
	log     *logBuffer
	exited  chan struct{}
	waitErr error
}

func startDaemon(t testing.TB, o daemonOpts) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: t.TempDir(), host: dockertest.Name(t, "host-"+t.Name()), secret: "hook-secret-" + strconv.Itoa(os.Getpid())}
	d.addr = freeAddr(t)
	d.tokenFile = filepath.Join(d.dir, "api-token")
	writeFile(t, d.tokenFile, "api-token-1\n")
	secretFile := filepath.Join(d.dir, "webhook-secret")
	writeFile(t, secretFile, d.secret+"\n")
	if o.resync == "" {
		o.resync = "5m"
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "host: {name: %s}\n", d.host)
	if o.source != "" {
		o.source = ", " + o.source
	}
	fmt.Fprintf(&cfg, "source: {url: %q, ref: main, path: ., interval: %s%s}\n", o.url, o.interval, o.source)
	if o.webhook {
		fmt.Fprintf(&cfg, "webhook: {secret_file: %s}\n", secretFile)
	}
	fmt.Fprintf(&cfg, "api: {token_file: %s}\n", d.tokenFile)
	fmt.Fprintf(&cfg, "listen: %s\n", d.addr)
	fmt.Fprintf(&cfg, "reconcile: {resync: %s}\n", o.resync)
	cfg.WriteString(o.extra)
	d.config = filepath.Join(d.dir, "config.yaml")
	writeFile(t, d.config, cfg.String())
	d.env = fleetdEnv(t)
	switch {
	case o.proxy != nil:
		d.env = append(d.env, "DOCKER_HOST=tcp://"+o.proxy.addr)
	case o.docker != "":
		d.env = append(d.env, "DOCKER_HOST="+o.docker)
	}
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(stopBound):
				_ = d.cmd.Process.Kill()
				<-d.exited
			}
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	d.start()
	return d
}

// start runs a new process and waits until it is ready.
func (d *daemon) start() {
	d.t.Helper()
	d.log = &logBuffer{}
	d.cmd = exec.Command(fleetdBin, "run", "--config", d.config)
	d.cmd.Env = d.env
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.exited = make(chan struct{})
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	d.waitReady(3 * time.Minute)
}

// waitReady waits for /readyz to answer 200.
func (d *daemon) waitReady(timeout time.Duration) {
	d.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var last string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-d.exited:
			d.t.Fatalf("fleetd run exited before it was ready: %v\n%s", d.waitErr, d.log)
		default:
		}
		resp, err := c.Get(d.url("/readyz"))
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	d.t.Fatalf("fleetd run not ready after %s: %s\n%s", timeout, last, d.log)
}

// stop sends SIGTERM and checks that the daemon exits 0 within stopBound.
func (d *daemon) stop() time.Duration {
	d.t.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(stopBound):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Fatalf("fleetd run did not stop within %s of SIGTERM\n%s", stopBound, d.log)
	}
	took := time.Since(start)
	if d.waitErr != nil {
		d.t.Fatalf("fleetd run after SIGTERM: %v (want exit 0)\n%s", d.waitErr, d.log)
	}
	return took
}

func (d *daemon) url(path string) string { return "http://" + d.addr + path }

// status returns GET /v1/status.
func (d *daemon) status() agent.Status {
	d.t.Helper()
	var st agent.Status
	if err := json.Unmarshal([]byte(httpGet(d.t, d.url("/v1/status"))), &st); err != nil {
		d.t.Fatalf("/v1/status: %v", err)
	}
	return st
}

// metric returns the sum of the series of a metric in /metrics (0 when
// absent).
func (d *daemon) metric(name string) float64 {
	d.t.Helper()
	return metricValue(httpGet(d.t, d.url("/metrics")), name)
}

func metricValue(exposition, name string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// hook posts a generic webhook; sig "" signs body with the secret.
func (d *daemon) hook(body []byte, sig string) (int, string) {
	d.t.Helper()
	if sig == "" {
		sig = "sha256=" + hex.EncodeToString(server.Sign([]byte(d.secret), body))
	}
	req, err := http.NewRequest(http.MethodPost, d.url("/hooks/generic"), bytes.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Fleetd-Signature", sig)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		d.t.Fatalf("POST /hooks/generic: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

// push sends the webhook of a push to main and checks it is accepted.
func (d *daemon) push() {
	d.t.Helper()
	if code, body := d.hook([]byte(`{"ref":"refs/heads/main"}`), ""); code != http.StatusAccepted || !strings.Contains(body, `"accepted"`) {
		d.t.Fatalf("webhook: got %d %s, want 202 accepted", code, body)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(dockertest.FreePort(t))
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// webCompose is a fleet of one health-checked service "web" whose testapp
// answers version, with the given replicas.
func webCompose(fleet, image, version string, replicas int) string {
	return fmt.Sprintf(`name: %s
services:
  web:
    image: %s
    pull_policy: never
%s
    environment:
      VERSION: %s
    deploy:
      replicas: %d
`, fleet, image, healthcheck, version, replicas)
}

// waitFor polls cond every 100ms until it holds or timeout passes, and
// returns how long it took; it fails the test with cond's last word.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start)
		}
		last = detail
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s: %s", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fleetState describes a fleet's containers: whether all n run healthy
// with VERSION=version, and their IDs by name.
func fleetState(ctx context.Context, cli *client.Client, fleet, version string, n int) (bool, map[string]string, string) {
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "io.fleetd.fleet="+fleet))})
	if err != nil {
		return false, nil, err.Error()
	}
	ids := map[string]string{}
	var have []string
	ok := len(list) == n
	for _, c := range list {
		name := strings.TrimPrefix(c.Names[0], "/")
		ids[name] = c.ID
		ins, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			return false, nil, err.Error()
		}
		healthy := ins.State != nil && ins.State.Running && ins.State.Health != nil && ins.State.Health.Status == "healthy"
		good := healthy && slices.Contains(ins.Config.Env, "VERSION="+version)
		ok = ok && good
		have = append(have, fmt.Sprintf("%s %s %s healthy=%v", name, c.State, envOf(ins.Config.Env, "VERSION"), healthy))
	}
	slices.Sort(have)
	return ok, ids, fmt.Sprintf("want %d healthy with VERSION=%s, have %v", n, version, have)
}

func envOf(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return key + "=" + v
		}
	}
	return key + " unset"
}

// waitConverged waits until the fleet runs n healthy replicas of version
// and the daemon reports commit applied to it; it returns the container
// IDs by name.
func waitConverged(t testing.TB, d *daemon, cli *client.Client, fleet, version, commit string, n int, timeout time.Duration) map[string]string {
	t.Helper()
	var ids map[string]string
	waitFor(t, timeout, "fleet "+fleet+" converged to "+version, func() (bool, string) {
		st := d.status()
		applied := appliedOf(st, fleet)
		if applied != commit {
			return false, fmt.Sprintf("applied %q, want %s; status error %q invalid %q", applied, commit, st.Error, st.Invalid)
		}
		ok, got, detail := fleetState(t.Context(), cli, fleet, version, n)
		ids = got
		return ok, detail
	})
	return ids
}

func appliedOf(st agent.Status, fleet string) string {
	for _, f := range st.Fleets {
		if f.Name == fleet {
			return f.Applied
		}
	}
	return ""
}

func revisionOf(st agent.Status) string {
	if st.Revision == nil {
		return ""
	}
	return st.Revision.Commit
}

// TestDaemon follows a Git repository through webhooks with one daemon
// (polling once an hour, so only webhooks and manual syncs fetch), in
// order: a push converges the host; refused and ignored webhooks apply
// nothing; an invalid revision is reported with file and line and not
// applied, its fix is; a stopped container is healed within 2s via events;
// status and sync commands work; a restart resumes without recreating
// anything.
func TestDaemon(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "hooked")
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	proxy := newDockerProxy(t)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true, proxy: proxy})
	ids := waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)
	head := c1

	t.Run("webhook push converges", func(t *testing.T) {
		c2 := g.commit("", "v2", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v2", 1)})
		start := time.Now()
		d.push()
		ids = waitConverged(t, d, cli, fleet, "v2", c2, 1, 3*time.Minute)
		head = c2
		t.Logf("push to converged (1 replica, health-gated): %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("refused and ignored webhooks apply nothing", func(t *testing.T) {
		// A new commit on main that only a valid webhook may bring in.
		c3 := g.commit("", "v3", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v3", 1)})
		body := []byte(`{"ref":"refs/heads/main"}`)
		if code, msg := d.hook(body, "sha256="+strings.Repeat("0", 64)); code != http.StatusUnauthorized {
			t.Errorf("wrong signature: got %d %s, want 401", code, msg)
		}
		big := append([]byte(`{"ref":"refs/heads/main","pad":"`), bytes.Repeat([]byte("x"), server.MaxBodyBytes)...)
		big = append(big, `"}`...)
		if code, msg := d.hook(big, ""); code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: got %d %s, want 413", code, msg)
		}
		if code, msg := d.hook([]byte(`{"ref":"refs/heads/dev"}`), ""); code != http.StatusAccepted || !strings.Contains(msg, "ignored") {
			t.Errorf("push to another branch: got %d %s, want 202 ignored", code, msg)
		}
		time.Sleep(3 * time.Second) // what a wrongly accepted hook would need to fetch and start acting
		st := d.status()
		if got := revisionOf(st); got != head {
			t.Errorf("status revision %s after refused webhooks, want %s", got, head)
		}
		for _, c := range proxy.since(time.Now().Add(-3 * time.Second)) {
			if c.mutating() {
				t.Errorf("engine call %s after refused webhooks", c)
			}
		}
		if ok, got, detail := fleetState(t.Context(), cli, fleet, "v2", 1); !ok || !maps.Equal(got, ids) {
			t.Errorf("containers changed after refused webhooks: %s, ids %v want %v", detail, got, ids)
		}
		m := httpGet(t, d.url("/metrics"))
		for _, series := range []string{`result="unauthorized"`, `result="too_large"`, `result="ignored"`} {
			if !strings.Contains(m, "fleetd_webhook_requests_total{provider=\"generic\","+series+"} 1") {
				t.Errorf("metrics: no fleetd_webhook_requests_total{provider=generic,%s} 1", series)
			}
		}
		// The valid webhook brings c3 in.
		d.push()
		ids = waitConverged(t, d, cli, fleet, "v3", c3, 1, 3*time.Minute)
		head = c3
	})

	t.Run("invalid revision is reported and not applied, its fix is", func(t *testing.T) {
		bad := strings.Replace(webCompose(fleet, ref, "v4", 1), "    environment:\n", "    environment: [unclosed\n", 1)
		cBad := g.commit("", "broken", map[string]string{fleet + "/compose.yaml": bad})
		d.push()
		var st agent.Status
		waitFor(t, time.Minute, "status reports the invalid revision", func() (bool, string) {
			st = d.status()
			return strings.Contains(st.Invalid, cBad[:7]), fmt.Sprintf("invalid %q", st.Invalid)
		})
		fileLine := regexp.MustCompile(regexp.QuoteMeta(fleet+"/compose.yaml") + `:\d+`)
		if !fileLine.MatchString(st.Invalid) {
			t.Errorf("status invalid %q: want the file and line (%s:N)", st.Invalid, fleet+"/compose.yaml")
		}
		if got := revisionOf(st); got != head {
			t.Errorf("status revision %s, want the last good %s", got, head)
		}
		if log := d.log.String(); !strings.Contains(log, "event=invalid-revision") || !fileLine.MatchString(log) {
			t.Errorf("daemon log does not report the invalid revision with file and line:\n%s", log)
		}
		time.Sleep(time.Second)
		if ok, got, detail := fleetState(t.Context(), cli, fleet, "v3", 1); !ok || !maps.Equal(got, ids) {
			t.Errorf("containers changed by an invalid revision: %s", detail)
		}
		t.Logf("status: %s", st.Invalid)
		cFix := g.commit("", "fixed", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v4", 1)})
		d.push()
		ids = waitConverged(t, d, cli, fleet, "v4", cFix, 1, 3*time.Minute)
		head = cFix
		if st := d.status(); st.Invalid != "" {
			t.Errorf("status still reports an invalid revision after the fix: %q", st.Invalid)
		}
	})

	t.Run("stopped container healed via events", func(t *testing.T) {
		testHeal(t, cli, d, proxy, fleet, ref, ids)
		_, ids, _ = fleetState(t.Context(), cli, fleet, "v4", 1)
	})

	t.Run("status and sync commands", func(t *testing.T) {
		res := fleetd(t, nil, "status", "--addr", d.addr)
		if res.code != 0 || !strings.Contains(res.stdout, "FLEET") || !strings.Contains(res.stdout, fleet) ||
			!strings.Contains(res.stdout, head[:12]) || !strings.Contains(res.stdout, "host "+d.host) {
			t.Errorf("fleetd status: want exit 0 and a table naming %s at %s\n%s", fleet, head[:12], res)
		}
		t.Logf("fleetd status:\n%s", res.stdout)
		g.take()
		res = fleetd(t, nil, "sync", "--addr", d.addr, "--token-file", d.tokenFile)
		if res.code != 0 || !strings.Contains(res.stdout, "sync requested") {
			t.Errorf("fleetd sync: want exit 0\n%s", res)
		}
		// A manual sync asks the source: the Git server sees it.
		waitFor(t, time.Minute, "the sync asks the Git server", func() (bool, string) {
			return slices.ContainsFunc(g.take(), func(r gitRequest) bool { return strings.Contains(r.Key, "info/refs") }), "no info/refs request"
		})
		if !strings.Contains(d.log.String(), "sync requested") {
			t.Errorf("daemon log has no 'sync requested'")
		}
		wrong := filepath.Join(t.TempDir(), "wrong-token")
		writeFile(t, wrong, "not-the-token\n")
		res = fleetd(t, nil, "sync", "--addr", d.addr, "--token-file", wrong)
		if res.code == 0 || !strings.Contains(res.stderr, "401") {
			t.Errorf("fleetd sync with a wrong token: want an error naming 401\n%s", res)
		}
	})

	t.Run("restart resumes without recreating", func(t *testing.T) {
		took := d.stop()
		t.Logf("SIGTERM to exit: %s", took.Round(time.Millisecond))
		restart := time.Now()
		d.start()
		t.Logf("restart to ready: %s", time.Since(restart).Round(time.Millisecond))
		// Wait for a full converge of the new process, then look.
		waitFor(t, 2*time.Minute, "a converge after the restart", func() (bool, string) {
			st := d.status()
			return st.LastSync.After(restart) && appliedOf(st, fleet) == head, fmt.Sprintf("last sync %s, applied %s", st.LastSync, appliedOf(st, fleet))
		})
		if ok, got, detail := fleetState(t.Context(), cli, fleet, "v4", 1); !ok || !maps.Equal(got, ids) {
			t.Errorf("containers after restart: %s, ids %v, want %v", detail, got, ids)
		}
		for _, c := range proxy.since(restart) {
			if c.mutating() {
				t.Errorf("engine call %s after the restart: want none", c)
			}
		}
		if log := d.log.String(); strings.Contains(log, "revision_applied") || strings.Contains(log, " create") {
			t.Errorf("the restarted daemon's log reports changes:\n%s", log)
		}
		if got := revisionOf(d.status()); got != head {
			t.Errorf("revision after restart %s, want %s", got, head)
		}
		took = d.stop()
		t.Logf("SIGTERM to exit: %s", took.Round(time.Millisecond))
	})
}

// testHeal stops a managed container with docker stop and measures the
// heal: from the stop returning to the container running again; fleetd's
// part, from the engine's die event to fleetd's start call; and the
// engine's start, from that call to its start event. The engine's own start
// time is also measured on a plain container, for reference.
func testHeal(t *testing.T, cli *client.Client, d *daemon, proxy *dockerProxy, fleet, ref string, ids map[string]string) {
	// The engine's own start time: a plain docker start of a stopped
	// test container (slow on fuse-overlayfs under load).
	plain := dockertest.Run(t, cli, dockertest.Name(t, "plain"), ref)
	var plainStarts []time.Duration
	for range 2 {
		docker(t, "stop", plain)
		start := time.Now()
		docker(t, "start", plain)
		plainStarts = append(plainStarts, time.Since(start))
	}
	plainMax := slices.Max(plainStarts)

	name := fleet + "-web-1"
	id := ids[name]
	if id == "" {
		t.Fatalf("no container %s in %v", name, ids)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	evs, _ := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("label", "io.fleetd.fleet="+fleet))})
	time.Sleep(200 * time.Millisecond) // subscribed
	docker(t, "stop", name)
	stopped := time.Now()
	var running time.Time
	var runningID string
	waitFor(t, time.Minute, name+" running again", func() (bool, string) {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$"), filters.Arg("status", "running"))})
		if err != nil || len(list) == 0 {
			return false, fmt.Sprint("not running ", err)
		}
		running, runningID = time.Now(), list[0].ID
		return true, ""
	})
	heal := running.Sub(stopped)

	// The engine's events: die of the stopped container, start of the
	// healed one.
	var die, started time.Time
	for deadline := time.After(10 * time.Second); started.IsZero(); {
		select {
		case m := <-evs:
			at := time.Unix(0, m.TimeNano)
			switch {
			case m.Action == "die" && m.Actor.ID == id && die.IsZero():
				die = at
			case m.Action == "start" && m.Actor.ID == runningID && !die.IsZero():
				started = at
			}
		case <-deadline:
			t.Fatalf("no die and start events for %s", name)
		}
	}
	startCall, ok := proxy.startCall(die, runningID, name)
	if !ok {
		t.Fatalf("fleetd made no start call for %s after its die event: %v", name, proxy.since(die))
	}
	// The heal observes the fleet's own containers, not the whole host:
	// every container list between the event and the start is filtered
	// by the fleet's label.
	lists := 0
	var trace []string
	for _, c := range proxy.since(die) {
		if !c.Start.Before(startCall.Start) {
			break
		}
		trace = append(trace, fmt.Sprintf("+%dms %s (%dms)", c.Start.Sub(die).Milliseconds(), c, c.End.Sub(c.Start).Milliseconds()))
		if c.Path != "/containers/json" {
			continue
		}
		lists++
		if q, _ := url.ParseQuery(c.Query); !strings.Contains(q.Get("filters"), "io.fleetd.fleet="+fleet) {
			t.Errorf("the heal listed containers with %q, want only fleet %s's (filtered by its label)", c.Query, fleet)
		}
	}
	if lists == 0 {
		t.Errorf("no container list between the die event and the start call: %v", proxy.since(die))
	}
	t.Logf("heal: engine calls from the die event to the start call: %s", strings.Join(trace, ", "))
	fleetdPart := startCall.Start.Sub(die)
	engineStart := started.Sub(startCall.Start)
	t.Logf("heal: docker stop returned -> running %s; die event -> fleetd's start call %s (fleetd); start call -> start event %s (engine); plain docker start %v",
		heal.Round(time.Millisecond), fleetdPart.Round(time.Millisecond), engineStart.Round(time.Millisecond), plainStarts)
	if runningID != id {
		t.Errorf("healed by recreating (%s -> %s): want the same container started", id[:12], runningID[:12])
	}
	if fleetdPart > 2*time.Second {
		t.Errorf("fleetd took %s from the die event to its start call, want under 2s", fleetdPart)
	}
	if bound := 2*time.Second + max(plainMax, engineStart); heal > bound {
		t.Errorf("healed %s after docker stop returned, want under 2s + the engine's start time = %s", heal, bound)
	}
	waitFor(t, 2*time.Minute, "fleet healthy again", func() (bool, string) {
		ok, _, detail := fleetState(t.Context(), cli, fleet, "v4", len(ids))
		return ok, detail
	})
}

// TestDaemonPolling follows the repository by polling only (every 2s, no
// webhook): a poll when nothing changed transfers no pack; a push
// converges within about an interval plus the rollout; a Git outage
// leaves the host untouched, shows in the metrics and the status, and is
// recovered from.
func TestDaemonPolling(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "polled")
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	const interval = 2 * time.Second
	d := startDaemon(t, daemonOpts{url: g.url(), interval: interval.String()})
	ids := waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)
	head := c1

	t.Run("a poll with no change transfers no pack", func(t *testing.T) {
		g.take()
		sum0, n0 := d.metric("fleetd_git_fetch_duration_seconds_sum"), d.metric("fleetd_git_fetch_duration_seconds_count")
		time.Sleep(3*interval + interval/2)
		reqs := g.take()
		sum1, n1 := d.metric("fleetd_git_fetch_duration_seconds_sum"), d.metric("fleetd_git_fetch_duration_seconds_count")
		var refs int
		var served time.Duration
		for _, r := range reqs {
			switch {
			case r.Key == "GET /fleet.git/info/refs?service=git-upload-pack":
				refs++
				served += r.Duration
			default:
				t.Errorf("unexpected request between polls: %s (want only the ref advertisement)", r.Key)
			}
		}
		if refs < 2 {
			t.Errorf("%d polls in %s with a %s interval, want at least 2", refs, 3*interval+interval/2, interval)
		}
		if n1 > n0 && refs > 0 {
			t.Logf("poll with no change: %d polls, fleetd's ask %.1fms on average (ls-remote, no fetch), the server's answer %.1fms",
				int(n1-n0), (sum1-sum0)/(n1-n0)*1000, float64(served.Microseconds())/float64(refs)/1000)
		}
	})

	t.Run("a push converges by polling", func(t *testing.T) {
		c2 := g.commit("", "v2", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v2", 1)})
		pushed := time.Now()
		seen := waitFor(t, 2*time.Minute, "the new revision loaded", func() (bool, string) {
			st := d.status()
			return revisionOf(st) == c2, "revision " + revisionOf(st)
		})
		ids = waitConverged(t, d, cli, fleet, "v2", c2, 1, 3*time.Minute)
		head = c2
		t.Logf("polling (interval %s): push -> revision loaded %s, -> converged %s", interval,
			seen.Round(time.Millisecond), time.Since(pushed).Round(time.Millisecond))
		// One interval (+10% jitter), plus the fetch and load on a loaded
		// machine.
		if limit := interval + interval/10 + 5*time.Second; seen > limit {
			t.Errorf("new revision loaded %s after the push, want within %s", seen, limit)
		}
	})

	t.Run("git outage: nothing changes, backoff, recovery", func(t *testing.T) {
		fail0 := d.metric("fleetd_git_fetch_failures_total")
		g.stop()
		down := time.Now()
		// A commit pushed during the outage (through the file system) must
		// not reach the host until the server is back.
		c3 := g.commit("", "v3", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v3", 1)})
		var backoff float64
		var st agent.Status
		waitFor(t, time.Minute, "fetch failures and backoff", func() (bool, string) {
			st = d.status()
			backoff = d.metric("fleetd_git_backoff_seconds")
			fails := d.metric("fleetd_git_fetch_failures_total") - fail0
			return fails >= 2 && backoff > 0 && st.Backoff != "", fmt.Sprintf("failures +%v, backoff %v, status backoff %q", fails, backoff, st.Backoff)
		})
		if remaining := 6*time.Second - time.Since(down); remaining > 0 {
			time.Sleep(remaining)
		}
		st = d.status()
		fails := d.metric("fleetd_git_fetch_failures_total") - fail0
		t.Logf("outage of %s: %v failed fetches, backoff %vs, status git_backoff %q, error %q",
			time.Since(down).Round(time.Second), fails, d.metric("fleetd_git_backoff_seconds"), st.Backoff, st.Error)
		if n := strings.Count(d.log.String(), "event=source-unreachable"); n != 1 {
			t.Errorf("the unreachable source is logged %d times, want once", n)
		}
		if !strings.Contains(st.Error, g.addr) {
			t.Errorf("status error during the outage: %q, want the source's error naming %s", st.Error, g.addr)
		}
		if got := revisionOf(st); got != head {
			t.Errorf("revision %s during the outage, want %s", got, head)
		}
		if ok, got, detail := fleetState(t.Context(), cli, fleet, "v2", 1); !ok || !maps.Equal(got, ids) {
			t.Errorf("containers changed during the outage: %s", detail)
		}
		g.start()
		up := time.Now()
		ids = waitConverged(t, d, cli, fleet, "v3", c3, 1, 3*time.Minute)
		head = c3
		t.Logf("recovery: server back -> converged %s", time.Since(up).Round(time.Millisecond))
		waitFor(t, time.Minute, "backoff cleared", func() (bool, string) {
			st := d.status()
			b := d.metric("fleetd_git_backoff_seconds")
			return b == 0 && st.Backoff == "" && st.Error == "", fmt.Sprintf("backoff %v, status %q, error %q", b, st.Backoff, st.Error)
		})
		if !strings.Contains(d.log.String(), "event=source-recovered") {
			t.Errorf("daemon log does not report the recovery")
		}
	})
	d.stop()
}
