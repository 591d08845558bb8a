package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestDiffDockerUnreachable: with no daemon at DOCKER_HOST, diff exits 1 with
// one line that names the address, and prints no report.
func TestDiffDockerUnreachable(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write(t, "unreachable", `
name: unreachable
services:
  web:
    image: example.invalid/web:v1
    pull_policy: never
`)
	const sock = "unix:///nonexistent.sock"
	for _, format := range []string{"text", "json"} {
		res := fleetd(t, []string{"DOCKER_HOST=" + sock}, "diff", "--repo", r.dir, "--format", format)
		lines := strings.Split(strings.TrimRight(res.stderr, "\n"), "\n")
		if res.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "/nonexistent.sock") || res.stdout != "" {
			t.Errorf("want exit 1, no stdout and one stderr line naming %s\n%s", sock, res)
		}
		fmt.Fprint(t.Output(), res.stderr)
	}
}
