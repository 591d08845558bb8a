package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// app is the shape of the fleet TestApply walks through its changes.
type app struct {
	name       string
	image      string
	replicas   int
	version    string // VERSION env of web ("" = the image's own)
	webPorts   bool   // web publishes 8080 on an ephemeral 127.0.0.1 port
	dbPorts    bool   // db does
	worker     bool   // a third service
	dbExtraEnv string // extra env line for db
}

func (a app) compose() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nservices:\n  web:\n    image: %s\n    pull_policy: never\n%s\n", a.name, a.image, healthcheck)
	fmt.Fprintf(&b, "    deploy:\n      replicas: %d\n", a.replicas)
	if a.version != "" {
		fmt.Fprintf(&b, "    environment:\n      VERSION: %s\n", a.version)
	}
	if a.webPorts {
		b.WriteString("    ports: [\"127.0.0.1::8080\"]\n")
	}
	fmt.Fprintf(&b, "  db:\n    image: %s\n    pull_policy: never\n%s\n    volumes: [\"data:/data\"]\n", a.image, healthcheck)
	if a.dbExtraEnv != "" {
		fmt.Fprintf(&b, "    environment:\n      %s\n", a.dbExtraEnv)
	}
	if a.dbPorts {
		b.WriteString("    ports: [\"127.0.0.1::8080\"]\n")
	}
	if a.worker {
		fmt.Fprintf(&b, "  worker:\n    image: %s\n    pull_policy: never\n%s\n", a.image, healthcheck)
	}
	b.WriteString("volumes:\n  data: {}\n")
	return b.String()
}

// names are the containers the fleet should run.
func (a app) names() []string {
	var ns []string
	for i := 1; i <= a.replicas; i++ {
		ns = append(ns, fmt.Sprintf("%s-web-%d", a.name, i))
	}
	ns = append(ns, a.name+"-db-1")
	if a.worker {
		ns = append(ns, a.name+"-worker-1")
	}
	return ns
}

// bystanders are an unmanaged container and an unmanaged volume that every
// scenario must leave alone.
type bystanders struct {
	ctrID, ctrName, volume string
}

func newBystanders(t *testing.T, cli *client.Client, ref string) bystanders {
	name := dockertest.Name(t, t.Name()+"-bystander")
	id := dockertest.Run(t, cli, name, ref)
	vol := dockertest.Name(t, t.Name()+"-bystander-vol")
	docker(t, "volume", "create", "--label", dockertest.LabelTestRun+"="+dockertest.RunID(), vol)
	return bystanders{ctrID: id, ctrName: name, volume: vol}
}

func (b bystanders) check(t *testing.T, cli *client.Client) {
	t.Helper()
	c := inspect(t, cli, b.ctrID)
	if !c.State.Running || c.Name != "/"+b.ctrName || c.RestartCount != 0 || c.Config.Labels["io.fleetd.managed"] != "" {
		t.Errorf("unmanaged container %s was touched: running %v, name %s, restarts %d", b.ctrName, c.State.Running, c.Name, c.RestartCount)
	}
	if _, err := cli.VolumeInspect(t.Context(), b.volume); err != nil {
		t.Errorf("unmanaged volume %s: %v", b.volume, err)
	}
}

// TestApply walks one fleet through a deploy from nothing and a series of
// spec changes, checking after each that apply exits 0, diff finds the host
// in sync, and the containers run what the spec says; then the prune guard.
func TestApply(t *testing.T) {
	cli := setup(t)
	t.Parallel() // its own fleetd instance: other tests' containers are not its to touch
	v1, _ := dockertest.TestImage(t, cli, "v1")
	v2, _ := dockertest.TestImage(t, cli, "v2")
	by := newBystanders(t, cli, v1)

	a := app{name: dockertest.Name(t, "app"), image: v1, replicas: 2, webPorts: true}
	extra := dockertest.Name(t, "extra")
	net := a.name + "_default"
	r := newRepo(t)

	// converge writes the spec, applies it and checks the result.
	converge := func(t *testing.T, next app) map[string]string {
		t.Helper()
		a = next
		r.write(t, a.name, a.compose())
		r.apply(t)
		r.inSync(t)
		by.check(t, cli)
		ids := map[string]string{}
		for name, c := range wantContainers(t, cli, a.name, a.names()...) {
			ids[name] = c.ID
		}
		return ids
	}
	web1 := a.name + "-web-1"
	steps := []struct {
		name  string
		run   func(t *testing.T)
		check func(t *testing.T, ids map[string]string)
	}{
		{"deploy", nil, func(t *testing.T, ids map[string]string) {
			for _, n := range []string{web1, a.name + "-web-2"} {
				if v := publishedVersion(t, cli, ids[n]); v != "v1" {
					t.Errorf("%s answers %q, want v1", n, v)
				}
			}
			// Service discovery: every replica answers to its service name
			// and its own name on the fleet network.
			for name, id := range ids {
				svc := strings.Split(strings.TrimPrefix(name, a.name+"-"), "-")[0]
				ep := inspect(t, cli, id).NetworkSettings.Networks[net]
				if ep == nil || !slices.Contains(ep.Aliases, svc) || !slices.Contains(ep.Aliases, name) {
					t.Errorf("%s on %s: aliases %v, want %s and %s", name, net, aliasesOf(ep), svc, name)
				}
			}
		}},
		{"scale up", func(*testing.T) { a.replicas = 3 }, nil},
		{"scale down", func(*testing.T) { a.replicas = 1 }, nil},
		{"env", func(*testing.T) { a.version = "blue" }, func(t *testing.T, ids map[string]string) {
			if v := publishedVersion(t, cli, ids[web1]); v != "blue" {
				t.Errorf("%s answers %q, want blue", web1, v)
			}
		}},
		{"image", func(*testing.T) { a.version, a.image = "", v2 }, func(t *testing.T, ids map[string]string) {
			for n, id := range ids {
				if v := appVersion(t, cli, id, net); v != "v2" {
					t.Errorf("%s answers %q, want v2", n, v)
				}
			}
		}},
		{"ports", func(*testing.T) { a.webPorts, a.dbPorts = false, true }, func(t *testing.T, ids map[string]string) {
			if v := publishedVersion(t, cli, ids[a.name+"-db-1"]); v != "v2" {
				t.Errorf("db answers %q through its published port, want v2", v)
			}
			if p := inspect(t, cli, ids[web1]).NetworkSettings.Ports["8080/tcp"]; len(p) != 0 {
				t.Errorf("web still publishes 8080: %v", p)
			}
		}},
		{"add service", func(*testing.T) { a.worker = true }, nil},
		{"remove service", func(*testing.T) { a.worker = false }, nil},
		{"add fleet", func(t *testing.T) {
			r.write(t, extra, fmt.Sprintf("name: %s\nservices:\n  solo:\n    image: %s\n    pull_policy: never\n%s\n", extra, v1, healthcheck))
		}, func(t *testing.T, _ map[string]string) {
			wantContainers(t, cli, extra, extra+"-solo-1")
		}},
		{"remove fleet", func(t *testing.T) { r.remove(t, extra) }, func(t *testing.T, _ map[string]string) {
			wantContainers(t, cli, extra)
			wantNoNetwork(t, cli, extra+"_default")
		}},
		{"self-heal", func(t *testing.T) { docker(t, "stop", "-t", "1", web1) }, nil},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			if s.run != nil {
				s.run(t)
			}
			ids := converge(t, a)
			if s.check != nil {
				s.check(t, ids)
			}
		}) {
			t.FailNow()
		}
	}

	t.Run("conflict", func(t *testing.T) {
		db1 := a.name + "-db-1"
		docker(t, "rm", "-f", db1)
		squatter := dockertest.Run(t, cli, db1, v1)
		a.version = "green"
		r.write(t, a.name, a.compose())
		res := r.run(t, "apply")
		if res.code != 1 || !strings.Contains(res.stdout+res.stderr, db1) {
			t.Errorf("apply: want exit 1 naming %s\n%s", db1, res)
		}
		if v := appVersion(t, cli, containers(t, cli, a.name)[web1].ID, net); v != "green" {
			t.Errorf("web did not converge beside the conflict: answers %q", v)
		}
		if c := inspect(t, cli, squatter); !c.State.Running || c.Name != "/"+db1 || c.Config.Labels["io.fleetd.managed"] != "" {
			t.Errorf("unmanaged %s was touched", db1)
		}
		by.check(t, cli)
		docker(t, "rm", "-f", squatter)
		converge(t, a)
	})

	t.Run("prune guard", func(t *testing.T) {
		before := containers(t, cli, a.name)
		r.remove(t, a.name)
		res := r.run(t, "apply")
		if res.code != 1 || !strings.Contains(res.stdout+res.stderr, "prune guard") || !strings.Contains(res.stdout+res.stderr, "--allow-mass-prune") {
			t.Errorf("apply with every fleet gone: want exit 1 and the prune guard message\n%s", res)
		}
		after := containers(t, cli, a.name)
		for n, c := range before {
			if after[n].ID != c.ID || after[n].State != "running" {
				t.Errorf("%s did not survive the refused prune", n)
			}
		}
		r.apply(t, "--allow-mass-prune")
		wantContainers(t, cli, a.name)
		wantNoNetwork(t, cli, net)
		if _, err := cli.VolumeInspect(t.Context(), a.name+"_data"); err != nil {
			t.Errorf("the fleet's named volume is gone after the prune: %v", err)
		}
		r.inSync(t)
		by.check(t, cli)
	})
}

func aliasesOf(ep *network.EndpointSettings) []string {
	if ep == nil {
		return nil
	}
	return ep.Aliases
}

func wantNoNetwork(t *testing.T, cli *client.Client, name string) {
	t.Helper()
	if n, err := cli.NetworkInspect(t.Context(), name, network.InspectOptions{}); err == nil {
		t.Errorf("network %s (%s) still exists", name, n.ID)
	}
}
