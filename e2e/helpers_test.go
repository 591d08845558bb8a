package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
)

// runTimeout bounds one fleetd invocation; a hung apply fails the test
// instead of the whole package timing out.
const runTimeout = 3 * time.Minute

// healthcheck is the test image's own check with a timeout that a loaded CI
// machine meets (the image's 1s makes healthy containers flap to
// unhealthy), indented for a service. Three failed probes two seconds
// apart still turn a failing container unhealthy within seconds.
var healthcheck = healthcheckEvery(2 * time.Second)

// Probe timeout and retries of the tests' healthchecks.
const (
	healthTimeout = 10 * time.Second
	healthRetries = 3
)

// healthcheckEvery is the tests' healthcheck probing at interval.
func healthcheckEvery(interval time.Duration) string {
	return fmt.Sprintf(`    healthcheck:
      test: ["CMD", "/testapp", "-health"]
      interval: %s
      timeout: %s
      retries: %d`, interval, healthTimeout, healthRetries)
}

// result is one run of the fleetd binary.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("fleetd %s: exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// fleetd runs the binary with args and env added to the test's environment.
func fleetd(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fleetdBin, args...)
	cmd.Env = append(fleetdEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		res.code = exit.ExitCode()
	default:
		t.Fatalf("%s\nrun: %v", res, err)
	}
	return res
}

// fleetdEnv is the environment every fleetd run of a test gets: its
// instance and the run's state directory.
func fleetdEnv(t testing.TB) []string {
	return append(os.Environ(), "FLEETD_INSTANCE="+instanceFor(t), "FLEETD_STATE_DIR="+stateRoot)
}

// instanceFor names the fleetd instance of a top-level test: its subtests
// share it (they build on each other's deployments), other tests and other
// test processes on the same engine do not.
func instanceFor(t testing.TB) string {
	top, _, _ := strings.Cut(t.Name(), "/")
	return dockertest.Name(t, top)
}

// repo is a fleet repository in a temporary directory: one folder per
// fleet, each holding a compose.yaml.
type repo struct{ dir string }

func newRepo(t testing.TB) *repo { return &repo{dir: t.TempDir()} }

// write sets the compose.yaml of the fleet in folder fleetDir.
func (r *repo) write(t testing.TB, fleetDir, compose string) {
	t.Helper()
	dir := filepath.Join(r.dir, fleetDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

// remove deletes a fleet's folder.
func (r *repo) remove(t testing.TB, fleetDir string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(r.dir, fleetDir)); err != nil {
		t.Fatal(err)
	}
}

func (r *repo) run(t testing.TB, cmd string, args ...string) result {
	t.Helper()
	return fleetd(t, nil, append([]string{cmd, "--repo", r.dir}, args...)...)
}

// apply runs fleetd apply and fails the test unless it exits 0.
func (r *repo) apply(t testing.TB, args ...string) result {
	t.Helper()
	res := r.run(t, "apply", args...)
	if res.code != 0 {
		t.Fatalf("apply: want exit 0\n%s", res)
	}
	return res
}

// diffReport is the JSON schema of fleetd diff --format json.
type diffReport struct {
	Host   string      `json:"host"`
	InSync bool        `json:"in_sync"`
	Drift  []driftItem `json:"drift"`
}

type driftItem struct {
	Fleet       string       `json:"fleet"`
	Service     string       `json:"service"`
	Container   string       `json:"container"`
	ContainerID string       `json:"container_id"`
	Slot        int          `json:"slot"`
	Kind        string       `json:"kind"`
	Fields      []driftField `json:"fields"`
	Detail      string       `json:"detail"`
}

type driftField struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Have  string `json:"have"`
}

// String is the item as the tests spell expectations:
// "<container> <kind>" and then " <field>: <want> -> <have>" per field.
func (it driftItem) String() string {
	s := it.Container + " " + it.Kind
	for _, f := range it.Fields {
		s += fmt.Sprintf(" %s: %s -> %s", f.Field, f.Want, f.Have)
	}
	return s
}

// diff runs fleetd diff --format json and decodes its report.
func (r *repo) diff(t testing.TB) (diffReport, result) {
	t.Helper()
	res := r.run(t, "diff", "--format", "json")
	var rep diffReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatalf("diff output is not the JSON report: %v\n%s", err, res)
	}
	return rep, res
}

// wantDrift runs diff and checks that it reports exactly want (item
// strings, in any order; see driftItem.String), with exit code 2, or 0 and
// in_sync when want is empty.
func (r *repo) wantDrift(t testing.TB, want ...string) diffReport {
	t.Helper()
	rep, res := r.diff(t)
	got := make([]string, 0, len(rep.Drift))
	for _, it := range rep.Drift {
		got = append(got, it.String())
	}
	sort.Strings(got)
	want = slices.Clone(want)
	sort.Strings(want)
	wantCode := 2
	if len(want) == 0 {
		wantCode = 0
	}
	if !slices.Equal(got, want) || res.code != wantCode || rep.InSync != (len(want) == 0) {
		t.Fatalf("diff: want exit %d and drift\n  %s\ngot exit %d, in_sync %v, drift\n  %s\n%s",
			wantCode, strings.Join(want, "\n  "), res.code, rep.InSync, strings.Join(got, "\n  "), res)
	}
	return rep
}

// inSync checks that diff exits 0 reporting no drift.
func (r *repo) inSync(t testing.TB) { t.Helper(); r.wantDrift(t) }

// setup returns a Docker client for the test, with every object of the run
// swept when the last test ends.
func setup(t testing.TB) *client.Client {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.Cleanup(t, cli)
	t.Cleanup(func() { sweepInstance(t, cli, instanceFor(t)) })
	return cli
}

// sweepInstance removes, when a test ends, every container, network and
// volume its fleetd instance created, and the test's own bystanders:
// dockertest.Cleanup only sweeps when the last test of the process ends, and
// containers left running meanwhile (each probing its health) would load the
// engine for every test after.
func sweepInstance(t testing.TB, cli *client.Client, instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	byInstance := filters.NewArgs(filters.Arg("label", fleets.LabelInstance+"="+instance))
	prefix := instance + "-"
	ctrs, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Logf("sweep %s: %v", instance, err)
		return
	}
	for _, c := range ctrs {
		name := strings.TrimPrefix(firstName(c.Names), "/")
		if c.Labels[fleets.LabelInstance] == instance || strings.HasPrefix(name, prefix) {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
	if nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: byInstance}); err == nil {
		for _, n := range nets {
			_ = cli.NetworkRemove(ctx, n.ID)
		}
	}
	if vols, err := cli.VolumeList(ctx, volume.ListOptions{}); err == nil {
		for _, v := range vols.Volumes {
			if v.Labels[fleets.LabelInstance] == instance || strings.HasPrefix(v.Name, prefix) {
				_ = cli.VolumeRemove(ctx, v.Name, true)
			}
		}
	}
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// containers returns the containers (running or not) labelled with fleet,
// by name.
func containers(t testing.TB, cli *client.Client, fleet string) map[string]container.Summary {
	t.Helper()
	list, err := cli.ContainerList(t.Context(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", "io.fleetd.fleet="+fleet)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]container.Summary, len(list))
	for _, c := range list {
		out[strings.TrimPrefix(c.Names[0], "/")] = c
	}
	return out
}

// wantContainers checks that the fleet has exactly the named containers,
// each running and, if it has a healthcheck, not unhealthy.
func wantContainers(t testing.TB, cli *client.Client, fleet string, names ...string) map[string]container.Summary {
	t.Helper()
	got := containers(t, cli, fleet)
	var have []string
	for name, c := range got {
		have = append(have, name+" "+c.State)
	}
	var want []string
	for _, n := range names {
		want = append(want, n+" running")
	}
	sort.Strings(have)
	sort.Strings(want)
	if !slices.Equal(have, want) {
		t.Fatalf("containers of fleet %s:\n  want %v\n  have %v", fleet, want, have)
	}
	return got
}

func inspect(t testing.TB, cli *client.Client, id string) container.InspectResponse {
	t.Helper()
	c, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpGet returns the body of GET url, retrying for a few seconds while the
// server is not answering yet.
func httpGet(t testing.TB, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("status %d, read %v", resp.StatusCode, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// appVersion is what the testapp in the container answers on / over its IP
// on network net.
func appVersion(t testing.TB, cli *client.Client, id, net string) string {
	t.Helper()
	ctr := inspect(t, cli, id)
	ep := ctr.NetworkSettings.Networks[net]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("container %s has no address on network %s", ctr.Name, net)
	}
	return httpGet(t, "http://"+ep.IPAddress+":8080/")
}

// publishedVersion is what the testapp answers on / through the host port
// published for its 8080/tcp.
func publishedVersion(t testing.TB, cli *client.Client, id string) string {
	t.Helper()
	ctr := inspect(t, cli, id)
	bindings := ctr.NetworkSettings.Ports["8080/tcp"]
	if len(bindings) == 0 {
		t.Fatalf("container %s publishes no port for 8080/tcp: %v", ctr.Name, ctr.NetworkSettings.Ports)
	}
	host := bindings[0].HostIP
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return httpGet(t, "http://"+host+":"+bindings[0].HostPort+"/")
}

// docker runs the docker CLI the way an operator would and fails the test
// if it fails.
func docker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
