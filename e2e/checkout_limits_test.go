package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// TestDaemonCheckoutLimits runs the agent with source.limits: a head whose
// tree holds a file over max_file_size is refused (nothing written, the
// host keeps the last good revision, the fleet Stalled CheckoutTooLarge
// naming the file and the limit); the next head without it is applied,
// and a Git LFS pointer in it is logged (issue 17 W7, W12). The state
// directory, the clone and its Git store are 0700 (W6).
func TestDaemonCheckoutLimits(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "limits")
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1s", source: "limits: {max_file_size: 2KiB}"})
	waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)

	state := filepath.Join(stateRoot, instanceFor(t))
	for _, dir := range []string{state, filepath.Join(state, "repo"), filepath.Join(state, "repo", "git")} {
		if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want drwx------", dir, info.Mode(), err)
		}
	}

	c2 := g.commit("", "v2 with a big file", map[string]string{
		fleet + "/compose.yaml": webCompose(fleet, ref, "v2", 1),
		fleet + "/blob.bin":     strings.Repeat("x", 4096),
	})
	waitFor(t, time.Minute, "the head "+c2[:7]+" refused", func() (bool, string) {
		c := stalledOf(d.status(), fleet)
		return c.Reason == "CheckoutTooLarge" && strings.Contains(c.Message, fleet+"/blob.bin: 4096 bytes, over source.limits.max_file_size (2048)"),
			"Stalled " + c.Reason + ": " + c.Message
	})
	if ok, _, detail := fleetState(t.Context(), cli, fleet, "v1", 1); !ok {
		t.Errorf("the host left v1 for a head over the limits: %s", detail)
	}
	assertNoTree(t, filepath.Join(state, "repo", "trees", c2))

	pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 4096\n"
	c3 := g.commit("", "v2, the blob in LFS", map[string]string{fleet + "/blob.bin": pointer})
	waitConverged(t, d, cli, fleet, "v2", c3, 1, 3*time.Minute)
	if c := stalledOf(d.status(), fleet); c.Status != "False" {
		t.Errorf("still Stalled after a head within the limits: %+v", c)
	}
	if log := d.log.String(); !strings.Contains(log, fleet+"/blob.bin: a Git LFS pointer") {
		t.Errorf("no warning of the LFS pointer in the log:\n%s", log)
	}
}

func assertNoTree(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want no tree written", dir, err)
	}
}
