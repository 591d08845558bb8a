package engine_test

import (
	"archive/tar"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// A hook runs in the container with its command, user, working directory
// and environment, and ExecHook returns once it exited; a hook that exits
// non-zero is an error naming it, the container, the code and its output;
// a hook outliving its timeout is a Timeout; a stopped container has no
// hook to run (ErrNotRunning), and an unmanaged one is refused.
func TestExecHook(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "hooks")
	inst := instance(fleet, "web", 1, ref)
	id := createStarted(t, d, inst)

	write := fleets.Hook{
		Command:     []string{"/testapp", "-hook"},
		User:        "0",
		WorkingDir:  "/etc",
		Environment: map[string]string{"HOOK_FILE": "hook.txt", "HOOK_CONTENT": "written by post_start"},
	}
	if err := d.ExecHook(ctx, id, "post_start hook 1/1", write, 30*time.Second); err != nil {
		t.Fatalf("ExecHook: %v", err)
	}
	if got, want := readFile(t, cli, id, "/etc/hook.txt"), "written by post_start uid=0"; got != want {
		t.Errorf("the hook wrote %q, want %q", got, want)
	}

	fail := fleets.Hook{Command: []string{"/testapp", "-hook"}, Environment: map[string]string{"HOOK_EXIT": "7"}}
	err := d.ExecHook(ctx, id, "pre_stop hook 2/2", fail, 30*time.Second)
	for _, want := range []string{"pre_stop hook 2/2", inst.Name, "exited with code 7", "hook failing with 7"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("failing hook: err = %v, want it to name %q", err, want)
		}
	}
	t.Log(err)

	slow := fleets.Hook{Command: []string{"/testapp", "-hook"}, Environment: map[string]string{"HOOK_SLEEP": "1m"}}
	err = d.ExecHook(ctx, id, "post_start hook 1/1", slow, 500*time.Millisecond)
	if f := fault.Of(err); f == nil || f.Reason != fault.Timeout || !strings.Contains(err.Error(), "post_start hook 1/1") {
		t.Errorf("slow hook: err = %v, want a Timeout naming the hook", err)
	}

	if err := d.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := d.ExecHook(ctx, id, "pre_stop hook 1/1", write, 30*time.Second); !errors.Is(err, reconcile.ErrNotRunning) {
		t.Errorf("hook in a stopped container: err = %v, want ErrNotRunning", err)
	}

	name := dockertest.Name(t, "hooks-unmanaged")
	other := dockertest.Run(t, cli, name, ref)
	if err := d.ExecHook(ctx, other, "post_start hook 1/1", write, 30*time.Second); !errors.Is(err, engine.ErrNotManaged) || !strings.Contains(err.Error(), name) {
		t.Errorf("hook in an unmanaged container: err = %v, want ErrNotManaged naming %s", err, name)
	}
}

// readFile reads one file out of a container, as `docker cp` does.
func readFile(t *testing.T, cli *client.Client, id, path string) string {
	t.Helper()
	rc, _, err := cli.CopyFromContainer(t.Context(), id, path)
	if err != nil {
		t.Fatalf("copy %s out of the container: %v", path, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
