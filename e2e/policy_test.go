package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostPolicy runs the binary's commands that load fleets on a fleet
// that binds the Docker socket: invalid under the default policy, valid
// under a --policy that allows it, and listed in plan's Host access
// section (text and Markdown, where a hostile value stays in its place)
// whether allowed or not.
func TestHostPolicy(t *testing.T) {
	g := newGitRepo(t)
	g.commit(t, "base", "ci", map[string]string{
		"fleets/ci/compose.yaml": "services:\n  runner:\n    image: runner:1\n",
	})
	g.commit(t, "head", "ci drives docker", map[string]string{
		"fleets/ci/compose.yaml": "services:\n  runner:\n    image: \"runner:2\"\n    cap_add: [SYS_ADMIN]\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n" +
			"    environment:\n      X: \"<!-- hidden\\n- item\"\n    x-fleetd: {public_env: [X]}\n",
	})
	fleetsDir := filepath.Join(g.dir, "fleets")

	r := runNoDocker(t, "validate", fleetsDir, "--host", "h1")
	want := "ci/compose.yaml:6: fleet ci: service runner: volumes.0: a bind of /var/run/docker.sock reaches /var/run/docker.sock, which this host's policy denies (policy.deny_binds)"
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("validate, default policy: exit %d, want 1 and %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}

	allow := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(allow, []byte("host: {name: h1}\npolicy:\n  deny_binds: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runNoDocker(t, "validate", fleetsDir, "--host", "h1", "--policy", allow); r.code != 0 {
		t.Errorf("validate, socket allowed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	strict := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(strict, []byte("policy:\n  deny_binds: []\n  cap_add: [NET_ADMIN]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runNoDocker(t, "validate", fleetsDir, "--host", "h1", "--policy", strict)
	if want := "service runner: cap_add: adding capability SYS_ADMIN is denied by this host's policy (policy.cap_add: [NET_ADMIN])"; r.code != 1 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("validate, strict policy: exit %d, want 1 and %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("policy:\n  binds: [srv]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runNoDocker(t, "validate", fleetsDir, "--host", "h1", "--policy", bad); r.code != 1 || !strings.Contains(r.stderr, `policy.binds: "srv" is not an absolute path`) {
		t.Errorf("validate, bad policy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// plan --base/--head: no policy unless given; the grants listed first.
	args := []string{"--path", "fleets", "--base", "base", "--head", "head", "--host", "h1"}
	r = plan(t, g.dir, args...)
	if r.code != 2 || !strings.Contains(r.stdout, "host access: 2 grants added or changed") ||
		!strings.Contains(r.stdout, "  + ci/runner mounts./var/run/docker.sock: /var/run/docker.sock on h1\n") ||
		!strings.Contains(r.stdout, "  + ci/runner cap_add.SYS_ADMIN: SYS_ADMIN on h1\n") {
		t.Errorf("plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if i, j := strings.Index(r.stdout, "host access:"), strings.Index(r.stdout, "host h1"); i < 0 || j < i {
		t.Errorf("the host access section is not first:\n%s", r.stdout)
	}
	md := plan(t, g.dir, append(args, "--format", "markdown")...)
	if !strings.Contains(md.stdout, "#### 🔐 Host access\n") || !strings.Contains(md.stdout, "- ➕ `ci/runner` `mounts./var/run/docker.sock`: `/var/run/docker.sock` on h1\n") {
		t.Errorf("plan markdown:\n%s%s", md.stdout, md.stderr)
	}
	if strings.Contains(md.stdout, "\n<!--") || strings.Contains(md.stdout, "\n- item") || !strings.Contains(md.stdout, "`<!-- hidden␤- item`") {
		t.Errorf("a value broke out of its place:\n%s", md.stdout)
	}
	if r := plan(t, g.dir, append(args, "--policy", strict)...); r.code != 1 || !strings.Contains(r.stdout, "policy.cap_add") {
		t.Errorf("plan --policy: exit %d, want 1 (head invalid)\n%s%s", r.code, r.stdout, r.stderr)
	}
}
