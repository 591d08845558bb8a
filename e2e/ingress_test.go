package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/fleetd/fleetd/engine/dockertest"
	eingress "github.com/fleetd/fleetd/engine/ingress"
)

// ingressCompose is a fleet of n replicas whose fixed host port goes
// through fleetd's ingress.
func ingressCompose(image, version, port string, n int) string {
	return fmt.Sprintf(`services:
  web:
    image: %s
    pull_policy: never
    environment: {VERSION: %s}
    ports: ["127.0.0.1:%s:8080"]
    stop_grace_period: 2s
    deploy:
      replicas: %d
      update_config: {parallelism: 1, monitor: 0s}
    x-fleetd:
      ingress: {drain: 5s}
`, image, version, port, n)
}

// TestDaemonIngress runs the agent with a service behind the ingress
// under constant load: a push rolls it out, the agent is SIGKILLed in the
// middle of the rollout and started again, and it finishes the rollout.
// No request fails: the ingress is a container of its own and keeps
// serving with no agent. `fleetd status` and /metrics show the ingress.
func TestDaemonIngress(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "edge")
	port := strconv.Itoa(dockertest.FreePort(t))
	url := "http://127.0.0.1:" + port + "/"
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": ingressCompose(ref, "v1", port, 3)})
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true})
	waitConverged(t, d, cli, fleet, "v1", c1, 3, 3*time.Minute)
	waitFor(t, time.Minute, "v1 through the ingress", func() (bool, string) {
		body, err := fetch(url)
		return body == "v1", fmt.Sprintf("%q %v", body, err)
	})

	load := dockertest.StartLoad(url, 200, 5*time.Minute)
	c2 := g.commit("", "v2", map[string]string{fleet + "/compose.yaml": ingressCompose(ref, "v2", port, 3)})
	d.push()
	// The first replica replaced: the rollout is under way. Kill the
	// agent there, leave the host without one for 5 s, start it again.
	waitFor(t, 2*time.Minute, "a v2 replica", func() (bool, string) {
		body, err := fetch(url)
		return body == "v2", fmt.Sprintf("%q %v", body, err)
	})
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	killed := time.Now()
	time.Sleep(5 * time.Second)
	d.start()
	waitConverged(t, d, cli, fleet, "v2", c2, 3, 3*time.Minute)
	res := load.Stop()
	t.Logf("agent SIGKILLed mid-rollout, %s without an agent, restarted, rollout finished %s after the kill: %d requests, %d failed",
		5*time.Second, time.Since(killed).Round(100*time.Millisecond), res.Total, res.Failed)
	if res.Failed > 0 || res.Total < 1000 {
		t.Errorf("%d of %d requests failed (want 0 of at least 1000): %v", res.Failed, res.Total, res.Errors)
	}

	out, err := exec.Command(fleetdBin, "status", "--addr", d.addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ingress "+eingress.ContainerName(instanceFor(t))+"  running  ports 127.0.0.1:"+port) ||
		!strings.Contains(string(out), "backends 3 (0 draining, 0 down)") {
		t.Errorf("fleetd status does not show the ingress running with 3 backends: %v\n%s", err, out)
	}
	m := httpGet(t, d.url("/metrics"))
	if !strings.Contains(m, `fleetd_ingress_requests_total{backend="`+fleet+`-web-1",code="2xx",route="`+fleet+`/web"}`) {
		t.Errorf("/metrics lacks the ingress's request counter of %s-web-1", fleet)
	}
	name := eingress.ContainerName(instanceFor(t))
	if ctr, err := cli.ContainerInspect(t.Context(), name); err != nil || ctr.RestartCount != 0 || ctr.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("the ingress container: restarts %d, policy %+v, %v", ctr.RestartCount, ctr.HostConfig.RestartPolicy, err)
	}

	// The agent stopped, the ingress restarted: it serves its last table
	// from disk, with no agent to send one.
	d.stop()
	if err := cli.ContainerRestart(t.Context(), name, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "v2 from the restarted ingress, with no agent", func() (bool, string) {
		body, err := fetch(url)
		return body == "v2", fmt.Sprintf("%q %v", body, err)
	})
}

func fetch(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
