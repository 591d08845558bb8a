package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// TestApplyComposeAsWritten applies a fleet written as people write
// Compose files: an include, a file elsewhere in the repository
// (../shared.env), a sidecar in another service's network namespace
// (network_mode: service:db) and a link with an alias. When the joined
// service rolls out, the same apply recreates the sidecar in the new
// container's namespace.
func TestApplyComposeAsWritten(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "written")
	r := newRepo(t)
	writeFile := func(name, data string) {
		t.Helper()
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("shared.env", "TEAM=shop\n")
	db := func(version string) string {
		return fmt.Sprintf("services:\n  db:\n    image: %s\n    pull_policy: never\n    env_file: ../../shared.env\n    environment: {VERSION: %s}\n", ref, version)
	}
	writeFile(fleet+"/parts/db.yaml", db("db1"))
	r.write(t, fleet, fmt.Sprintf(`include: [parts/db.yaml]
services:
  side:
    image: %[1]s
    pull_policy: never
    network_mode: "service:db"
    environment: {VERSION: side, PORT: "9090"}
  web:
    image: %[1]s
    pull_policy: never
    links: ["db:database"]
`, ref))
	r.apply(t)
	net := fleet + "_default"
	check := func(want string) {
		t.Helper()
		got := wantContainers(t, cli, fleet, fleet+"-db-1", fleet+"-side-1", fleet+"-web-1")
		dbID, side := got[fleet+"-db-1"].ID, inspect(t, cli, got[fleet+"-side-1"].ID)
		if string(side.HostConfig.NetworkMode) != "container:"+dbID {
			t.Fatalf("side's network mode %q, want db's container %s", side.HostConfig.NetworkMode, dbID)
		}
		dbCtr := inspect(t, cli, dbID)
		ep := dbCtr.NetworkSettings.Networks[net]
		if ep == nil || !slices.Contains(ep.Aliases, "database") {
			t.Fatalf("db on %s: %+v, want the link's alias database", net, ep)
		}
		if !slices.Contains(dbCtr.Config.Env, "TEAM=shop") {
			t.Errorf("db's environment %v lacks TEAM=shop from ../../shared.env", dbCtr.Config.Env)
		}
		if v := appVersion(t, cli, dbID, net); v != want {
			t.Errorf("db answers %q, want %q", v, want)
		}
		if v := httpGet(t, "http://"+ep.IPAddress+":9090/"); !strings.Contains(v, "side") {
			t.Errorf("side, in db's namespace, answers %q on db's address", v)
		}
	}
	check("db1")
	r.inSync(t)

	writeFile(fleet+"/parts/db.yaml", db("db2"))
	res := r.apply(t)
	if !strings.Contains(res.stdout, "side") {
		t.Errorf("the apply that rolled db out did not recreate side:\n%s", res)
	}
	check("db2")
	r.inSync(t)
}
