// Package sopstest gives tests the real sops CLI and age keys, to encrypt
// files as users do. It must not be imported by non-test code.
package sopstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
)

// Version is the sops CLI the tests encrypt with: the version of the
// module fleetd links.
const Version = "v3.13.3"

var (
	once   sync.Once
	cli    string
	cliErr string
)

// CLI returns the path of the sops binary: $FLEETD_TEST_SOPS, else one
// installed with `go install` into the user's cache directory (once per
// machine; the Go module proxy is the only network it needs).
func CLI(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		if p := os.Getenv("FLEETD_TEST_SOPS"); p != "" {
			cli = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cliErr = err.Error()
			return
		}
		dir := filepath.Join(cache, "fleetd-test", "sops-"+Version)
		cli = filepath.Join(dir, "sops")
		if _, err := os.Stat(cli); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/getsops/sops/v3/cmd/sops@"+Version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = "go install sops: " + err.Error() + ": " + string(out)
		}
	})
	if cliErr != "" {
		t.Fatal(cliErr)
	}
	return cli
}

// AgeKey writes a new age identity into dir/keys.txt and returns that
// file and the identity's recipient.
func AgeKey(t testing.TB, dir string) (keyFile, recipient string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keyFile, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile, id.Recipient().String()
}

// Encrypt encrypts the file at p in place for the age recipient with the
// sops CLI, run without any key of the caller's environment.
func Encrypt(t testing.TB, p, recipient string, args ...string) {
	t.Helper()
	all := append([]string{"--encrypt", "--age", recipient, "--in-place"}, args...)
	cmd := exec.Command(CLI(t), append(all, p)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sops -e %s: %v: %s", filepath.Base(p), err, strings.TrimSpace(string(out)))
	}
}

// Decrypt decrypts p with the sops CLI and the age key file, as a user
// would see it.
func Decrypt(t testing.TB, p, keyFile string) []byte {
	t.Helper()
	cmd := exec.Command(CLI(t), "--decrypt", p)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "SOPS_AGE_KEY_FILE=" + keyFile}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sops -d %s: %v", filepath.Base(p), err)
	}
	return out
}

// PGPKey makes a GnuPG home in a new directory with one secret key (no
// passphrase) and returns the home and the key's fingerprint. The gpg
// binary must be installed (scripts/test installs gnupg); the home's
// gpg-agent is stopped when t ends.
func PGPKey(t testing.TB) (home, fingerprint string) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path is bounded
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gpg := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	gpg("--passphrase", "", "--quick-gen-key", "fleetd test <test@fleetd.invalid>", "default", "default", "never")
	for _, line := range strings.Split(gpg("--with-colons", "--list-secret-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return home, f[9]
		}
	}
	t.Fatal("gpg made no key")
	return "", ""
}

// EncryptPGP encrypts the file at p in place for the PGP key with the
// sops CLI, using the GnuPG home.
func EncryptPGP(t testing.TB, p, home, fingerprint string) {
	t.Helper()
	cmd := exec.Command(CLI(t), "--encrypt", "--pgp", fingerprint, "--in-place", p)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "GNUPGHOME=" + home}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sops -e --pgp %s: %v: %s", filepath.Base(p), err, strings.TrimSpace(string(out)))
	}
}
