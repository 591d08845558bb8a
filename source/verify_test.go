package source_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"golang.org/x/crypto/ssh"

	"github.com/fleetd/fleetd/source"
)

// pgpKey makes an OpenPGP key and writes its armored public key to a file.
func pgpKey(t *testing.T, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	path := filepath.Join(t.TempDir(), name+".asc")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return e, path
}

// commitPGP commits (empty) in the upstream's work clone with go-git,
// signed by key (nil: unsigned), and pushes main.
func (u *upstream) commitPGP(msg string, key *openpgp.Entity) string {
	u.t.Helper()
	repo, err := git.PlainOpen(u.work)
	if err != nil {
		u.t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		u.t.Fatal(err)
	}
	who := &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{AllowEmptyCommits: true, Author: who, Committer: who, SignKey: key})
	if err != nil {
		u.t.Fatal(err)
	}
	u.run("push", "-q", "-f", "origin", "HEAD:main")
	return h.String()
}

// sshKey writes an ed25519 private key for ssh-keygen and returns its path
// and its public key in authorized_keys form.
func sshKey(t *testing.T) (string, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// commitSSH commits (empty) with the git binary signing as git does with
// gpg.format=ssh (ssh-keygen -Y sign), and pushes main.
func (u *upstream) commitSSH(msg, keyFile string) string {
	u.t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		u.t.Fatalf("ssh-keygen (openssh-client) is needed to sign commits as git does; scripts/test installs it: %v", err)
	}
	u.run("-c", "gpg.format=ssh", "-c", "user.signingkey="+keyFile, "commit", "-q", "--allow-empty", "-S", "-m", msg)
	u.run("push", "-q", "-f", "origin", "HEAD:main")
	return u.run("rev-parse", "HEAD")
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func trust(t *testing.T, pgpFiles []string, allowedSigners string) *source.Trust {
	t.Helper()
	tr, err := source.LoadTrust(pgpFiles, allowedSigners)
	if err != nil {
		t.Fatalf("LoadTrust: %v", err)
	}
	return tr
}

// refused asserts that Sync refuses the head for reason, saying why, and
// keeps the previous revision current.
func refused(t *testing.T, r *source.Repo, head, reason, why string, keep string) {
	t.Helper()
	_, _, err := r.Sync(t.Context())
	var re *source.RefusedError
	if !errors.As(err, &re) || !errors.Is(err, source.ErrRefused) {
		t.Fatalf("Sync = %v, want a refusal", err)
	}
	if re.Commit != head || re.Reason != reason || !strings.Contains(re.Why, why) {
		t.Errorf("refusal = %+v, want commit %s, reason %s, saying %q", re, head, reason, why)
	}
	if !strings.Contains(err.Error(), head[:7]) {
		t.Errorf("error %q does not name the commit", err)
	}
	cur, ok := r.Current()
	if keep == "" && ok {
		t.Errorf("Current = %s after a refused first head, want none", cur.Commit)
	}
	if keep != "" && cur.Commit != keep {
		t.Errorf("Current = %s, want %s kept", cur.Commit, keep)
	}
}

func TestVerifyOpenPGP(t *testing.T) {
	t.Parallel()
	ada, adaPub := pgpKey(t, "Ada")
	eve, _ := pgpKey(t, "Eve")
	u := newUpstream(t)
	r := open(t, source.Config{URL: u.bare, Trust: trust(t, []string{adaPub}, "")})

	unsigned := u.commitPGP("unsigned", nil)
	refused(t, r, unsigned, source.ReasonUntrusted, "not signed", "")

	good := u.commitPGP("signed by ada", ada)
	if rev := mustSync(t, r, true); rev.Commit != good {
		t.Fatalf("Sync took %s, want %s", rev.Commit, good)
	}

	other := u.commitPGP("signed by eve", eve)
	refused(t, r, other, source.ReasonUntrusted, "none of source.verify.openpgp_keys holds", good)

	unsigned = u.commitPGP("unsigned again", nil)
	refused(t, r, unsigned, source.ReasonUntrusted, "not signed", good)

	// An SSH signature with only OpenPGP keys trusted is an unknown key.
	keyFile, _ := sshKey(t)
	viaSSH := u.commitSSH("signed with ssh", keyFile)
	refused(t, r, viaSSH, source.ReasonUntrusted, "no source.verify.ssh_allowed_signers", good)

	next := u.commitPGP("signed by ada again", ada)
	if rev := mustSync(t, r, true); rev.Commit != next {
		t.Fatalf("Sync took %s, want %s", rev.Commit, next)
	}
}

func TestVerifySSH(t *testing.T) {
	t.Parallel()
	adaKey, adaPub := sshKey(t)
	eveKey, _ := sshKey(t)
	fileKey, filePub := sshKey(t)
	signers := writeFile(t, "allowed_signers", "# who may sign\n"+
		"ada@example.com "+adaPub+" ada's laptop\n"+
		`files@example.com namespaces="file" `+filePub+"\n")
	u := newUpstream(t)
	r := open(t, source.Config{URL: u.bare, Trust: trust(t, nil, signers)})

	good := u.commitSSH("signed by ada", adaKey)
	if rev := mustSync(t, r, true); rev.Commit != good {
		t.Fatalf("Sync took %s, want %s", rev.Commit, good)
	}
	other := u.commitSSH("signed by eve", eveKey)
	refused(t, r, other, source.ReasonUntrusted, "does not list", good)

	fileOnly := u.commitSSH("signed by a key for files only", fileKey)
	refused(t, r, fileOnly, source.ReasonUntrusted, `only for namespaces "file"`, good)

	unsigned := u.commit("unsigned", map[string]string{"a.yaml": "a: 1\n"})
	refused(t, r, unsigned, source.ReasonUntrusted, "not signed", good)

	next := u.commitSSH("signed by ada again", adaKey)
	if rev := mustSync(t, r, true); rev.Commit != next {
		t.Fatalf("Sync took %s, want %s", rev.Commit, next)
	}
}

// A signature copied onto another commit does not verify.
func TestVerifyTamperedSignature(t *testing.T) {
	t.Parallel()
	adaKey, adaPub := sshKey(t)
	u := newUpstream(t)
	signed := u.commitSSH("signed by ada", adaKey)
	// Rewrite the signed commit's message, keeping its gpgsig header.
	raw := u.run("cat-file", "commit", signed)
	forged := strings.Replace(raw, "signed by ada", "signed by ada, or is it", 1)
	cmd := exec.Command("git", "hash-object", "-t", "commit", "-w", "--stdin")
	cmd.Dir, cmd.Stdin = u.work, strings.NewReader(forged+"\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	fake := strings.TrimSpace(string(out))
	u.run("push", "-q", "-f", "origin", fake+":refs/heads/main")
	r := open(t, source.Config{URL: u.bare, Trust: trust(t, nil, writeFile(t, "allowed_signers", "ada "+adaPub+"\n"))})
	refused(t, r, fake, source.ReasonUntrusted, "does not verify", "")
}

func TestRewindRefused(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"compose.yaml": composeV1})
	second := u.commit("two", map[string]string{"b.yaml": "b: 1\n"})
	r := open(t, source.Config{URL: u.bare})
	mustSync(t, r, true)

	// Back to an older commit.
	u.run("push", "-q", "-f", "origin", first+":refs/heads/main")
	refused(t, r, first, source.ReasonRewind, "ancestor of "+second[:7], second)

	// A rewritten history: neither ancestor nor descendant.
	u.run("reset", "-q", "--hard", first)
	rewritten := u.commit("two, rewritten", map[string]string{"c.yaml": "c: 1\n"})
	refused(t, r, rewritten, source.ReasonRewind, "does not descend from "+second[:7], second)

	// Moving forward from the current revision is taken again.
	u.run("reset", "-q", "--hard", second)
	third := u.commit("three", map[string]string{"d.yaml": "d: 1\n"})
	if rev := mustSync(t, r, true); rev.Commit != third {
		t.Fatalf("Sync took %s, want %s", rev.Commit, third)
	}

	// With allow_rewind, the same force-push is followed.
	rw := open(t, source.Config{URL: u.bare, AllowRewind: true})
	mustSync(t, rw, true)
	u.run("push", "-q", "-f", "origin", first+":refs/heads/main")
	if rev := mustSync(t, rw, true); rev.Commit != first {
		t.Fatalf("with allow_rewind Sync took %s, want %s", rev.Commit, first)
	}
}

func TestLoadTrustErrorsNameTheField(t *testing.T) {
	t.Parallel()
	_, pub := pgpKey(t, "Ada")
	_, sshPub := sshKey(t)
	cases := []struct {
		name      string
		pgp       []string
		signers   string
		wantField string
		want      string
	}{
		{"nothing", nil, "", "source.verify:", "openpgp_keys"},
		{"missing key file", []string{pub, "/nonexistent.asc"}, "", "source.verify.openpgp_keys[1]:", "no such file"},
		{"not a key", []string{writeFile(t, "k.asc", "hello\n")}, "", "source.verify.openpgp_keys[0]:", "gpg --armor --export"},
		{"missing signers", nil, "/nonexistent", "source.verify.ssh_allowed_signers:", "no such file"},
		{"empty signers", nil, writeFile(t, "s", "# nobody\n"), "source.verify.ssh_allowed_signers:", "no signer"},
		{"no key", nil, writeFile(t, "s", "ada@example.com\n"), "source.verify.ssh_allowed_signers:", "line 1"},
		{"bad option", nil, writeFile(t, "s", `ada valid-after="yesterday" `+sshPub+"\n"), "source.verify.ssh_allowed_signers:", "valid-after"},
		{"cert authority", nil, writeFile(t, "s", "*@example.com cert-authority "+sshPub+"\n"), "source.verify.ssh_allowed_signers:", "cert-authority"},
	}
	for _, c := range cases {
		_, err := source.LoadTrust(c.pgp, c.signers)
		if err == nil || !errors.Is(err, source.ErrConfig) || !strings.HasPrefix(err.Error(), c.wantField) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadTrust = %v, want ErrConfig starting %q saying %q", c.name, err, c.wantField, c.want)
		}
	}
	if _, err := source.LoadTrust([]string{pub}, writeFile(t, "s", `"ada lovelace" namespaces="git,file",valid-after="20200101Z" `+sshPub+" laptop\n")); err != nil {
		t.Errorf("LoadTrust of valid files: %v", err)
	}
}
