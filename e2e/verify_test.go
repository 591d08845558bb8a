package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/dockertest"
)

// signedCommit commits files signed as git signs with gpg.format=ssh
// (ssh-keygen -Y sign), and pushes main.
func (g *gitServer) signedCommit(keyFile, msg string, files map[string]string) string {
	g.t.Helper()
	for name, body := range files {
		p := filepath.Join(g.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	g.run("add", "-A")
	g.run("-c", "gpg.format=ssh", "-c", "user.signingkey="+keyFile, "commit", "-q", "--allow-empty", "-S", "-m", msg)
	g.run("push", "-q", "-f", "origin", "HEAD:main")
	return g.run("rev-parse", "HEAD")
}

// signingKey writes an ed25519 key for ssh-keygen; it returns its file and
// its allowed_signers line.
func signingKey(t *testing.T, dir, who string) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatalf("ssh-keygen (openssh-client) is needed to sign commits as git does; scripts/test installs it: %v", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, who)
	writeFile(t, path, string(pem.EncodeToMemory(block)))
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return path, who + "@example.com " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func stalledOf(st agent.Status, fleet string) agent.Condition {
	for _, f := range st.Fleets {
		if f.Name == fleet {
			return f.Condition(agent.Stalled)
		}
	}
	return agent.Condition{}
}

// TestDaemonSignedCommits runs the agent with source.verify: a head signed
// by a trusted SSH key is applied; an unsigned head is refused (the host
// keeps the last good revision, the fleet is Stalled UntrustedCommit); a
// signed head on top is applied; a force-push back to an older commit is
// refused (Rewind).
func TestDaemonSignedCommits(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "signed")
	keys := t.TempDir()
	adaKey, adaLine := signingKey(t, keys, "ada")
	signers := filepath.Join(keys, "allowed_signers")
	writeFile(t, signers, adaLine+"\n")

	g := newGitServer(t)
	c1 := g.signedCommit(adaKey, "v1", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1s", source: "verify: {ssh_allowed_signers: " + signers + "}"})
	waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)

	refused := func(commit, reason, why string) {
		t.Helper()
		waitFor(t, time.Minute, "the head "+commit[:7]+" refused", func() (bool, string) {
			c := stalledOf(d.status(), fleet)
			return c.Reason == reason && strings.Contains(c.Message, commit[:12]) && strings.Contains(c.Message, why), "Stalled " + c.Reason + ": " + c.Message
		})
		if st := d.status(); appliedOf(st, fleet) == commit || !strings.Contains(st.Invalid, "refused") {
			t.Errorf("after refusing %s: applied %s, invalid %q", commit[:7], appliedOf(st, fleet), st.Invalid)
		}
	}

	c2 := g.commit("", "v2 unsigned", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v2", 1)})
	refused(c2, "UntrustedCommit", "not signed")
	if ok, _, detail := fleetState(t.Context(), cli, fleet, "v1", 1); !ok {
		t.Errorf("the host left v1 for an unsigned head: %s", detail)
	}

	c3 := g.signedCommit(adaKey, "v2 signed", nil)
	waitConverged(t, d, cli, fleet, "v2", c3, 1, 3*time.Minute)
	if c := stalledOf(d.status(), fleet); c.Status != "False" {
		t.Errorf("still Stalled after a trusted head: %+v", c)
	}

	g.run("push", "-q", "-f", "origin", c1+":refs/heads/main")
	refused(c1, "Rewind", "ancestor of "+c3[:12])
	if ok, _, detail := fleetState(t.Context(), cli, fleet, "v2", 1); !ok {
		t.Errorf("the host rewound: %s", detail)
	}
}
