package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// TestDriftScaleOrphanRestarting covers the drift kinds TestDrift does not:
// extra (a replica beyond the count after a scale-down committed without an
// apply), orphan (a service that left the spec) and restarting (a container
// Docker keeps restarting under its restart policy).
func TestDriftScaleOrphanRestarting(t *testing.T) {
	cli := setup(t)
	t.Parallel() // its own fleetd instance: other tests' containers are not its to touch
	v1, _ := dockertest.TestImage(t, cli, "v1")
	name := dockertest.Name(t, "kinds")
	fleet := func(webReplicas int, withWorker, crash bool) string {
		var b strings.Builder
		fmt.Fprintf(&b, "name: %s\nservices:\n  web:\n    image: %s\n    pull_policy: never\n%s\n    deploy:\n      replicas: %d\n",
			name, v1, healthcheck, webReplicas)
		if withWorker {
			fmt.Fprintf(&b, "  worker:\n    image: %s\n    pull_policy: never\n%s\n", v1, healthcheck)
		}
		if crash {
			fmt.Fprintf(&b, "  crasher:\n    image: %s\n    pull_policy: never\n    restart: always\n    environment:\n      CRASH_AFTER: 1s\n", v1)
		}
		return b.String()
	}
	r := newRepo(t)
	r.write(t, name, fleet(3, true, false))
	r.apply(t)
	r.inSync(t)
	web3, worker := name+"-web-3", name+"-worker-1"
	ids := wantContainers(t, cli, name, name+"-web-1", name+"-web-2", web3, worker)

	// Scale down and drop the worker in Git, without applying yet.
	r.write(t, name, fleet(2, false, false))
	r.wantDrift(t, web3+" extra", worker+" orphan")
	r.apply(t)
	r.inSync(t)
	left := wantContainers(t, cli, name, name+"-web-1", name+"-web-2")
	if left[name+"-web-1"].ID != ids[name+"-web-1"].ID {
		t.Errorf("scaling down recreated a replica it kept")
	}

	// A container that crashes again and again under restart: always.
	r.write(t, name, fleet(2, false, true))
	crasher := name + "-crasher-1"
	if res := r.run(t, "apply"); res.code != 0 {
		// The crasher may be caught between restarts; apply's verdict is
		// not what this test is about.
		t.Logf("apply with a crash-looping service: exit %d", res.code)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rep, _ := r.diff(t)
		for _, it := range rep.Drift {
			if it.Container == crasher && it.Kind == "restarting" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("diff never reported %s as restarting; last report: %+v", crasher, rep.Drift)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
