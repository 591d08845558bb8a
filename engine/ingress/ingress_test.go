package ingress_test

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	eingress "github.com/fleetd/fleetd/engine/ingress"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// fleetdBin is a static fleetd binary, built once: the ingress image is
// built from it.
var fleetdBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fleetd-ingress-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingress tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	fleetdBin = filepath.Join(dir, "fleetd")
	build := exec.Command("go", "build", "-trimpath", "-o", fleetdBin, "github.com/fleetd/fleetd/cmd/fleetd")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingress tests: build fleetd:", err)
		return 1
	}
	return m.Run()
}

// bed is one host's fleet behind the ingress, on the real engine.
type bed struct {
	t        testing.TB
	cli      *client.Client
	eng      *engine.Docker
	router   *eingress.Router
	image    string
	repo     string
	fleet    string
	instance string
	port     int
	stateDir string
	protocol string // x-fleetd.ingress.protocol (default http)
}

func newBed(t testing.TB) *bed {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.Cleanup(t, cli)
	img, _ := dockertest.TestImage(t, cli, "v1")
	b := &bed{t: t, cli: cli, image: img, repo: t.TempDir(), fleet: dockertest.Name(t, "web"),
		instance: dockertest.Name(t, "agent"), port: dockertest.FreePort(t), stateDir: t.TempDir()}
	eng, err := engine.New(t.Context(), engine.WithInstance(b.instance))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	b.eng = eng
	b.router = eingress.New(eng.Client(), eingress.Options{Instance: b.instance, StateDir: b.stateDir, Binary: fleetdBin})
	t.Cleanup(func() {
		ctx := context.Background()
		_ = cli.ContainerRemove(ctx, eingress.ContainerName(b.instance), container.RemoveOptions{Force: true})
		if ref, err := eingress.ImageRef(fleetdBin); err == nil {
			_, _ = cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})
	return b
}

// write writes the fleet: replicas of the test image answering version on
// GET /, its fixed host port bound by the ingress.
func (b *bed) write(version string, replicas int) {
	b.t.Helper()
	dir := filepath.Join(b.repo, b.fleet)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	compose := fmt.Sprintf(`services:
  api:
    image: %s
    pull_policy: never
    environment: {VERSION: "%s"}
    ports: ["127.0.0.1:%d:8080"]
    stop_grace_period: 2s
    deploy:
      replicas: %d
      update_config: {parallelism: 1, monitor: 0s}
    x-fleetd:
      ingress: {drain: 5s, protocol: %s}
`, b.image, version, b.port, replicas, cmp.Or(b.protocol, "http"))
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bed) converge() reconcile.Outcome {
	b.t.Helper()
	desired, err := fleets.Load(context.Background(), b.repo, fleets.Host{Name: "h1"})
	if err != nil {
		b.t.Fatal(err)
	}
	out, err := reconcile.Converge(context.Background(), b.eng, desired, reconcile.Policy{Now: time.Now(), RepoDir: b.repo},
		reconcile.ConvergeOptions{Exec: reconcile.ExecOptions{Router: b.router}})
	if err != nil {
		for _, p := range out.Plans {
			b.t.Logf("plan:\n%s", p)
		}
		for _, rep := range out.Reports {
			for _, r := range rep.Results {
				b.t.Logf("%d %s %s: %s %s", r.Action.ID, r.Action.Op, r.Action.Target, r.Status, r.Error)
			}
		}
		b.t.Fatal(err)
	}
	for _, rep := range out.Reports {
		for _, r := range rep.Failed() {
			b.t.Fatalf("%s %s: %s", r.Action.Op, r.Action.Target, r.Error)
		}
		if os.Getenv("FLEETD_TRACE") != "" {
			for _, r := range rep.Results {
				b.t.Logf("%s %s %s", r.Action.Op, r.Action.Target, r.Duration.Round(time.Millisecond))
			}
		}
	}
	return out
}

func (b *bed) url() string { return "http://127.0.0.1:" + strconv.Itoa(b.port) + "/" }

// get answers the body and the replica that served it.
func get(c *http.Client, url string) (string, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return string(body), resp.Header.Get("X-Testapp-Host"), nil
}

// TestIngressRollouts: three replicas behind a fixed host port, rolled
// out five times in a row under constant load (about 200 requests/s,
// half of them on new connections): no request fails, the host port never
// changes, and every rollout is start-first with a drain.
func TestIngressRollouts(t *testing.T) {
	b := newBed(t)
	b.write("1", 3)
	start := time.Now()
	b.converge()
	t.Logf("first deploy with the ingress (image built, container started, 3 replicas): %s", time.Since(start).Round(time.Millisecond))

	c := &http.Client{Timeout: 5 * time.Second}
	hosts := map[string]bool{}
	for range 30 {
		body, host, err := get(c, b.url())
		if err != nil || body != "1" {
			t.Fatalf("GET through the ingress: %q, %v", body, err)
		}
		hosts[host] = true
	}
	if len(hosts) != 3 {
		t.Errorf("30 requests reached %d replicas, want all 3 (round robin)", len(hosts))
	}

	l := dockertest.StartLoad(b.url(), 200, 5*time.Minute)
	var took []string
	for v := 2; v <= 6; v++ {
		b.write(strconv.Itoa(v), 3)
		start := time.Now()
		out := b.converge()
		took = append(took, time.Since(start).Round(100*time.Millisecond).String())
		if v == 2 && !strings.Contains(out.Plans[0].String(), "drain") {
			t.Errorf("the rollout plan has no drain:\n%s", out.Plans[0])
		}
		if body, _, err := get(c, b.url()); err != nil || body != strconv.Itoa(v) {
			t.Fatalf("after rollout %d: %q, %v", v, body, err)
		}
	}
	res := l.Stop()
	total, failed := res.Total, res.Failed
	t.Logf("5 rollouts of 3 replicas behind 127.0.0.1:%d (each %s): %d requests, %d failed", b.port, strings.Join(took, ", "), total, failed)
	if failed > 0 || total < 1000 {
		t.Errorf("%d of %d requests failed during the rollouts (want 0 of at least 1000): %v", failed, total, res.Errors)
	}
	ctrs, err := b.cli.ContainerList(t.Context(), container.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ct := range ctrs {
		for _, n := range ct.Names {
			if strings.HasPrefix(n, "/"+b.fleet) {
				names = append(names, strings.TrimPrefix(n, "/"))
			}
		}
	}
	slices.Sort(names)
	if want := []string{b.fleet + "-api-1", b.fleet + "-api-2", b.fleet + "-api-3"}; !slices.Equal(names, want) {
		t.Errorf("containers after the rollouts %v, want %v", names, want)
	}
}
