package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// TestApplyWaits: apply waits like docker compose up --wait. A first
// deploy whose containers never become healthy exits 1 naming them, with
// their last health check output and log tail; the next apply of the same
// revision leaves them as they are (exit 1, not restarted); --no-wait
// keeps the old behaviour.
func TestApplyWaits(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "sick")
	r := newRepo(t)
	r.write(t, fleet, fmt.Sprintf(`services:
  web:
    image: %s
    pull_policy: never
    environment: {HEALTHY: "false", VERSION: v1}
    x-fleetd: {health_timeout: 8s}
`, ref))
	res := r.run(t, "apply")
	out := res.stdout + res.stderr
	if res.code != 1 || !strings.Contains(out, "not healthy  "+fleet+"/web "+fleet+"-web-1") ||
		!strings.Contains(out, "last health check: unhealthy: status 500") || !strings.Contains(out, "testapp v1 listening on :8080") {
		t.Fatalf("apply of a never-healthy service: want exit 1 naming it with its health output and logs\n%s", res)
	}
	started := startedAt(t, fleet)

	res = r.run(t, "apply")
	if res.code != 1 || !strings.Contains(res.stdout+res.stderr, "not healthy after apply") {
		t.Errorf("second apply of the same revision: want exit 1 saying the spec failed\n%s", res)
	}
	if again := startedAt(t, fleet); again != started {
		t.Errorf("the second apply restarted the failed container (started %s, now %s)", started, again)
	}

	// --no-wait: converge and exit 0, as before (another fleet, another
	// repository).
	other := newRepo(t)
	other.write(t, fleet+"-nowait", fmt.Sprintf(`services:
  web:
    image: %s
    pull_policy: never
    environment: {HEALTHY: "false"}
`, ref))
	if res := other.run(t, "apply", "--no-wait"); res.code != 0 {
		t.Errorf("apply --no-wait: want exit 0\n%s", res)
	}
}

// startedAt is when the fleet's one container last started.
func startedAt(t *testing.T, fleet string) string {
	t.Helper()
	cli := dockertest.Client(t)
	list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "io.fleetd.fleet="+fleet))})
	if err != nil || len(list) != 1 {
		t.Fatalf("containers of %s: %d, %v", fleet, len(list), err)
	}
	ins, err := cli.ContainerInspect(t.Context(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return ins.State.StartedAt
}
