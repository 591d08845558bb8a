package dockertest

import (
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// waitTimeout is generous: with a 1s interval and 2 retries, every health
// transition the tests wait for takes 1-4s on an idle host, but 20s and more
// when the host is loaded.
const waitTimeout = 2 * time.Minute

var dockerName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func TestName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("very-long-service-name-", 4)
	tests := []struct{ base, want string }{
		{"web", RunID() + "-web"},
		{"TestHealthy/sub_test", RunID() + "-testhealthy-sub-test"},
		{"--a..B__c--", RunID() + "-a-b-c"},
	}
	for _, tt := range tests {
		if got := Name(t, tt.base); got != tt.want {
			t.Errorf("Name(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
	a, b := Name(t, long+"a"), Name(t, long+"b")
	for _, n := range []string{a, b, Name(t, "x")} {
		if len(n) > maxNameLen || !dockerName.MatchString(n) || !strings.HasPrefix(n, RunID()+"-") {
			t.Errorf("Name = %q: not a short lowercase dashed name starting with the RunID", n)
		}
	}
	if a == b {
		t.Errorf("long bases differing at the end both gave %q", a)
	}
	if !regexp.MustCompile(`^fdt[0-9a-f]{6}$`).MatchString(RunID()) {
		t.Errorf("RunID() = %q", RunID())
	}
}

// recordTB captures Skipf and Fatalf instead of ending the real test.
type recordTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestClientWithoutDocker(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		rec := &recordTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Client(rec)
		}()
		<-done
		switch {
		case ci == "" && (rec.skipped == "" || rec.fatal != ""):
			t.Errorf("CI unset: skipped %q, fatal %q; want a skip", rec.skipped, rec.fatal)
		case ci == "true" && (rec.fatal == "" || rec.skipped != ""):
			t.Errorf("CI=true: skipped %q, fatal %q; want a failure", rec.skipped, rec.fatal)
		}
		if msg := rec.skipped + rec.fatal; !strings.Contains(msg, "nonexistent/docker.sock") {
			t.Errorf("CI=%q: message %q does not carry the error", ci, msg)
		}
	}
}

func TestTestImage(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()

	ref1, id1 := TestImage(t, cli, "v1")
	ref2, id2 := TestImage(t, cli, "v2")
	if id1 == id2 {
		t.Fatalf("v1 and v2 have the same image ID %s", id1)
	}
	if ref1 != RunID()+"-testapp:v1" || ref2 != RunID()+"-testapp:v2" {
		t.Errorf("refs = %q, %q", ref1, ref2)
	}
	if again, againID := TestImage(t, cli, "v1"); again != ref1 || againID != id1 {
		t.Errorf("second TestImage(v1) = %s %s, want the cached %s %s", again, againID, ref1, id1)
	}

	img, err := cli.ImageInspect(t.Context(), ref1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := img.Config
	hc := cfg.Healthcheck
	switch {
	case !slices.Equal(cfg.Entrypoint, []string{"/testapp"}):
		t.Errorf("entrypoint %q", cfg.Entrypoint)
	case hc == nil || !slices.Equal(hc.Test, []string{"CMD", "/testapp", "-health"}):
		t.Errorf("healthcheck %+v", hc)
	case hc.Interval != time.Second || hc.Timeout != 3*time.Second || hc.Retries != 2:
		t.Errorf("healthcheck timing %+v", hc)
	case cfg.Labels[LabelTestRun] != RunID():
		t.Errorf("labels %v", cfg.Labels)
	}
	if _, ok := cfg.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v", cfg.ExposedPorts)
	}

	// The version is baked into the binary, not set in the image's env.
	id := runWith(t, cli, Name(t, "version"), ref2, []string{"-version"})
	if code := WaitExit(t, cli, id, waitTimeout); code != 0 {
		t.Fatalf("testapp -version exit %d", code)
	}
	if out := logs(t, cli, id); out != "v2\n" {
		t.Errorf("testapp -version printed %q, want v2", out)
	}
}

func TestHealthy(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()
	ref, _ := TestImage(t, cli, "v1")

	id := Run(t, cli, Name(t, "healthy"), ref)
	WaitHealth(t, cli, id, "healthy", waitTimeout)

	// SIGTERM must end it promptly with 0, not after the stop timeout.
	start := time.Now()
	stopTimeout := 10
	if err := cli.ContainerStop(t.Context(), id, container.StopOptions{Timeout: &stopTimeout}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("docker stop took %s: SIGTERM not handled", d)
	}
	if code := WaitExit(t, cli, id, waitTimeout); code != 0 {
		t.Errorf("exit code after stop %d, want 0", code)
	}
}

func TestUnhealthy(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()
	ref, _ := TestImage(t, cli, "v1")

	id := Run(t, cli, Name(t, "unhealthy"), ref, "HEALTHY=false")
	WaitHealth(t, cli, id, "unhealthy", waitTimeout)
}

func TestCrash(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()
	ref, _ := TestImage(t, cli, "v1")

	id := Run(t, cli, Name(t, "crash"), ref, "CRASH_AFTER=1s")
	if code := WaitExit(t, cli, id, waitTimeout); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

// TestRegistryPushPull proves that pull tests need no internet: an image
// that exists nowhere but in the in-process registry is pulled back.
func TestRegistryPushPull(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()
	_, id := TestImage(t, cli, "v1")

	reg := StartRegistry(t)
	ref := Push(t, cli, id, reg, Name(t, "pushed")+":v1")
	if _, err := cli.ImageRemove(t.Context(), ref, image.RemoveOptions{}); err != nil {
		t.Fatalf("untag %s: %v", ref, err)
	}
	if _, err := cli.ImageInspect(t.Context(), ref); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect %s after untag: %v, want not found", ref, err)
	}
	Pull(t, cli, ref)
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id {
		t.Errorf("pulled %s has ID %s, pushed %s", ref, img.ID, id)
	}
}

// TestSweep runs the sweep for a second, made-up run ID, so that it cannot
// touch this process's objects while other tests use them.
func TestSweep(t *testing.T) {
	cli := Client(t)
	Cleanup(t, cli)
	t.Parallel()
	ref, id := TestImage(t, cli, "v1")
	ctx := t.Context()

	other := newRunID() // random, so that concurrent test processes differ
	for other == RunID() {
		other = newRunID()
	}
	t.Cleanup(func() { _ = Sweep(t.Context(), cli, other) })

	ctrByName := create(t, cli, other+"-byname", ref, nil)
	ctrByFleet := create(t, cli, Name(t, "sweep-fleet")+"-x", ref, map[string]string{LabelFleet: other + "-fleet"})
	net, err := cli.NetworkCreate(ctx, other+"-net", network.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: Name(t, "sweep-vol"), Labels: map[string]string{LabelTestRun: other}})
	if err != nil {
		t.Fatal(err)
	}
	tag := other + "-img:v1"
	if err := cli.ImageTag(ctx, id, tag); err != nil {
		t.Fatal(err)
	}
	keep := create(t, cli, Name(t, "sweep-keep"), ref, nil)

	if err := Sweep(ctx, cli, other); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for what, err := range map[string]error{
		"container by name":  inspectErr(cli.ContainerInspect(ctx, ctrByName)),
		"container by fleet": inspectErr(cli.ContainerInspect(ctx, ctrByFleet)),
		"network":            inspectErr(cli.NetworkInspect(ctx, net.ID, network.InspectOptions{})),
		"volume":             inspectErr(cli.VolumeInspect(ctx, vol.Name)),
		"image tag":          inspectErr(cli.ImageInspect(ctx, tag)),
	} {
		if !cerrdefs.IsNotFound(err) {
			t.Errorf("%s after Sweep: %v, want not found", what, err)
		}
	}
	// Untagging must not have deleted the shared image, and objects of
	// this run must still be there.
	if _, err := cli.ImageInspect(ctx, id); err != nil {
		t.Errorf("image %s after sweeping another run's tag: %v", id, err)
	}
	if _, err := cli.ContainerInspect(ctx, keep); err != nil {
		t.Errorf("this run's container after sweeping another run: %v", err)
	}
	if err := Sweep(ctx, cli, "web"); err == nil {
		t.Error("Sweep accepted a run ID without the fdt prefix")
	}
}

func inspectErr[T any](_ T, err error) error { return err }

func create(t *testing.T, cli *client.Client, name, ref string, labels map[string]string) string {
	t.Helper()
	ctr, err := cli.ContainerCreate(t.Context(), &container.Config{Image: ref, Labels: labels}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return ctr.ID
}

func runWith(t *testing.T, cli *client.Client, name, ref string, cmd []string) string {
	t.Helper()
	hostCfg := &container.HostConfig{NetworkMode: network.NetworkNone}
	ctr, err := cli.ContainerCreate(t.Context(), &container.Config{Image: ref, Cmd: cmd}, hostCfg, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(t.Context(), ctr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return ctr.ID
}

func logs(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	rc, err := cli.ContainerLogs(t.Context(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
