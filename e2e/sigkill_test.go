package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// killPoint says when to SIGKILL a running apply: after a delay, on the
// n-th container event with the given action for the fleet, or on the first
// event match accepts.
type killPoint struct {
	after  time.Duration
	action string // docker event action: create, start, destroy, rename
	n      int
	match  func(events.Message) bool
}

// hit reports whether event m, the seen-th of its action, is the kill point.
func (k killPoint) hit(m events.Message, seen int) bool {
	if k.match != nil {
		return k.match(m)
	}
	return k.action != "" && string(m.Action) == k.action && seen >= k.n
}

func (k killPoint) String() string {
	if k.match != nil {
		return "matching event"
	}
	if k.action != "" {
		return fmt.Sprintf("%s #%d", k.action, k.n)
	}
	return k.after.String()
}

// killedApply starts fleetd apply and kills it with SIGKILL at k. It
// reports whether the kill happened before apply finished by itself.
func killedApply(t *testing.T, cli *client.Client, r *repo, fleet string, k killPoint) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", "io.fleetd.fleet="+fleet),
	)})
	cmd := exec.Command(fleetdBin, "apply", "--repo", r.dir)
	cmd.Env = fleetdEnv(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timer <-chan time.Time
	if k.after > 0 {
		timer = time.After(k.after)
	}
	seen := 0
	for {
		select {
		case err := <-done:
			t.Logf("apply finished before the kill point %s (%v):\n%s", k, err, out.String())
			return false
		case err := <-errs:
			_ = cmd.Process.Kill()
			t.Fatalf("events: %v", err)
		case m := <-msgs:
			if string(m.Action) == k.action {
				seen++
			}
			if !k.hit(m, seen) {
				continue
			}
		case <-timer:
		}
		_ = cmd.Process.Kill() // SIGKILL
		<-done
		t.Logf("killed apply at %s:\n%s", k, out.String())
		return true
	}
}

// TestApplySIGKILL kills apply at several points of a deploy from nothing
// and of a spec change (the create-next / stop / remove / rename / start
// sequence), reruns it, and checks that every slot then holds exactly one
// container running the spec, with no -next leftover, and that an
// unmanaged container is untouched.
func TestApplySIGKILL(t *testing.T) {
	cli := setup(t)
	t.Parallel() // its own fleetd instance: other tests' containers are not its to touch
	v1, _ := dockertest.TestImage(t, cli, "v1")
	by := newBystanders(t, cli, v1)
	fleet := dockertest.Name(t, "killed")
	net := fleet + "_default"
	r := newRepo(t)
	write := func(version string) {
		var b strings.Builder
		fmt.Fprintf(&b, "name: %s\nservices:\n", fleet)
		for _, svc := range []string{"a", "b", "c"} {
			fmt.Fprintf(&b, "  %s:\n    image: %s\n    pull_policy: never\n%s\n    environment:\n      VERSION: %s\n    deploy:\n      replicas: 2\n",
				svc, v1, healthcheck, version)
		}
		r.write(t, fleet, b.String())
	}
	var want []string
	for _, svc := range []string{"a", "b", "c"} {
		want = append(want, fleet+"-"+svc+"-1", fleet+"-"+svc+"-2")
	}
	// recover reruns apply and checks the fleet converged on version.
	recover := func(t *testing.T, version string) {
		t.Helper()
		r.apply(t)
		r.inSync(t)
		for name, c := range wantContainers(t, cli, fleet, want...) {
			if v := appVersion(t, cli, c.ID, net); v != version {
				t.Errorf("%s answers %q, want %s", name, v, version)
			}
		}
		by.check(t, cli)
	}

	// Every kill point is covered on the fake engine (reconcile's crash-resume
	// test); here a few real ones, to keep the suite short.
	for _, k := range []killPoint{{after: 1500 * time.Millisecond}, {action: "start", n: 2}} {
		t.Run("deploy/"+k.String(), func(t *testing.T) {
			for _, c := range containers(t, cli, fleet) {
				if err := cli.ContainerRemove(t.Context(), c.ID, container.RemoveOptions{Force: true}); err != nil {
					t.Fatal(err)
				}
			}
			write("one")
			killedApply(t, cli, r, fleet, k)
			recover(t, "one")
		})
	}
	for i, k := range []killPoint{{action: "create", n: 1}, {action: "rename", n: 2}} {
		t.Run("change/"+k.String(), func(t *testing.T) {
			version := fmt.Sprintf("change%d", i)
			write(version)
			killedApply(t, cli, r, fleet, k)
			recover(t, version)
		})
	}
}
