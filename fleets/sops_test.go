package fleets_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/sopsfile/sopstest"
)

const sopsCompose = `services:
  api:
    image: x
    env_file: [plain.env, secret.env]
    environment:
      OVERRIDE: from-compose
    secrets: [pw]
    configs: [conf]
    x-fleetd:
      public_env: [LEVEL, DB_PASSWORD]
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    file: ./app.conf
`

// sopsFleet writes a fleet whose secret.env, pw.txt and app.conf the
// sops CLI encrypted for a new age key, which the host then holds.
func sopsFleet(t *testing.T) (dir, recipient string) {
	dir = t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, t.TempDir())
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	for name, data := range map[string]string{
		"compose.yaml": sopsCompose,
		"plain.env":    "LEVEL=info\nDB_PASSWORD=plain-overridden\n",
		"secret.env":   "DB_PASSWORD=hunter2\nOVERRIDE=secret-overridden\nAPI_TOKEN=tok-123\n",
		"pw.txt":       "pw-plain\n",
		"app.conf":     "conf-plain\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"secret.env", "pw.txt", "app.conf"} {
		sopstest.Encrypt(t, filepath.Join(dir, name), recipient)
	}
	return dir, recipient
}

// TestLoadSops: env_file, secret and config files encrypted by the sops
// CLI are decrypted with the host's age key; their plaintext reaches the
// model's in-memory values (for the engine) and never its JSON.
func TestLoadSops(t *testing.T) {
	dir, _ := sopsFleet(t)
	loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	svc := loaded[0].Services[0]
	spec := svc.Spec
	if got := spec.Environment; len(got) != 2 || got["LEVEL"] != "info" || got["OVERRIDE"] != "from-compose" {
		t.Errorf("environment %v, want LEVEL from plain.env and OVERRIDE from environment:", got)
	}
	env, err := spec.ContainerEnv()
	if err != nil || env["DB_PASSWORD"] != "hunter2" || env["API_TOKEN"] != "tok-123" || env["LEVEL"] != "info" || env["OVERRIDE"] != "from-compose" {
		t.Errorf("ContainerEnv = %v, %v", env, err)
	}
	if strings.Join(svc.PublicEnv, ",") != "LEVEL" {
		t.Errorf("public_env %v, want the SOPS key DB_PASSWORD dropped", svc.PublicEnv)
	}
	if len(spec.Secrets) != 1 || !strings.HasPrefix(spec.Secrets[0].Digest, "hmac-sha256:") ||
		len(spec.Configs) != 1 || !strings.HasPrefix(spec.Configs[0].Digest, "hmac-sha256:") {
		t.Errorf("secrets %+v, configs %+v: want keyed digests", spec.Secrets, spec.Configs)
	}
	label, err := fleets.EncodeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{"hunter2", "tok-123", "pw-plain", "conf-plain", "secret-overridden"} {
		if strings.Contains(label, plain) || strings.Contains(fleets.Digest(loaded[0]), plain) {
			t.Errorf("plaintext %q in the spec label or the model's JSON", plain)
		}
	}
	// The label decodes to a spec that hashes the same, but whose secret
	// values are not known.
	back, err := fleets.DecodeSpec(label)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := fleets.HashSpec(fleets.HashVersion, spec)
	h2, _ := fleets.HashSpec(fleets.HashVersion, back)
	if h1 != h2 {
		t.Errorf("hash of the decoded label %s, of the spec %s", h2, h1)
	}
	if _, err := back.ContainerEnv(); err == nil {
		t.Error("ContainerEnv of a decoded spec: want an error, the plaintext is not in the label")
	}
	// A rollback restores the values from the current spec by digest.
	back.SecretEnv = fleets.RestoreSecretEnv(back.SecretEnv, spec.SecretEnv)
	if env, err := back.ContainerEnv(); err != nil || env["DB_PASSWORD"] != "hunter2" {
		t.Errorf("ContainerEnv after RestoreSecretEnv = %v, %v", env, err)
	}
}

// TestLoadSopsRotated: a changed secret value changes the spec hash.
func TestLoadSopsRotated(t *testing.T) {
	dir, recipient := sopsFleet(t)
	hash := func() string {
		loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		h, _ := fleets.HashSpec(fleets.HashVersion, loaded[0].Services[0].Spec)
		return h
	}
	before := hash()
	if again := hash(); again != before {
		t.Fatalf("hash not stable: %s, %s", before, again)
	}
	p := filepath.Join(dir, "secret.env")
	if err := os.WriteFile(p, []byte("DB_PASSWORD=rotated\nOVERRIDE=x\nAPI_TOKEN=tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sopstest.Encrypt(t, p, recipient)
	if hash() == before {
		t.Error("a rotated env value left the spec hash unchanged")
	}
}

// TestLoadSopsRefused: without the key, or with a MAC that does not
// match, the fleet is invalid and the problem names the file.
func TestLoadSopsRefused(t *testing.T) {
	t.Run("wrong key", func(t *testing.T) {
		dir, _ := sopsFleet(t)
		other, _ := sopstest.AgeKey(t, t.TempDir())
		t.Setenv("SOPS_AGE_KEY_FILE", other)
		wantInvalid(t, dir, "env_file secret.env does not decrypt (sops): no key of this host decrypts it (tried age age1")
	})
	t.Run("wrong key, secret file", func(t *testing.T) {
		dir, _ := sopsFleet(t)
		if err := os.WriteFile(filepath.Join(dir, "secret.env"), []byte("X=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		other, _ := sopstest.AgeKey(t, t.TempDir())
		t.Setenv("SOPS_AGE_KEY_FILE", other)
		wantInvalid(t, dir, "secrets.pw.file: pw.txt does not decrypt (sops): no key", "configs.conf.file: app.conf does not decrypt (sops): no key")
	})
	t.Run("ingress tls", func(t *testing.T) {
		dir, recipient := sopsFleet(t)
		compose := "services:\n  web:\n    image: x\n    ports: [\"8443:80\"]\n" +
			"    x-fleetd: {ingress: {tls: {cert: cert, key: key}}}\n" +
			"secrets:\n  cert: {file: ./cert.pem}\n  key: {file: ./key.pem}\n"
		for name, data := range map[string]string{"compose.yaml": compose, "cert.pem": "cert\n", "key.pem": "key\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		sopstest.Encrypt(t, filepath.Join(dir, "key.pem"), recipient)
		wantInvalid(t, dir, `x-fleetd.ingress.tls.key: secret "key" is SOPS-encrypted`)
	})
	t.Run("dotenv and label_file", func(t *testing.T) {
		dir, recipient := sopsFleet(t)
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TAG=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sopstest.Encrypt(t, filepath.Join(dir, ".env"), recipient)
		wantInvalid(t, dir, ".env: fleet ", ": the .env is SOPS-encrypted")
		if err := os.Remove(filepath.Join(dir, ".env")); err != nil {
			t.Fatal(err)
		}
		compose := strings.Replace(sopsCompose, "    env_file:", "    label_file: ./labels.env\n    env_file:", 1)
		for name, data := range map[string]string{"compose.yaml": compose, "labels.env": "team=a\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		sopstest.Encrypt(t, filepath.Join(dir, "labels.env"), recipient)
		wantInvalid(t, dir, "service api: label_file labels.env is SOPS-encrypted")
	})
	t.Run("tampered", func(t *testing.T) {
		dir, _ := sopsFleet(t)
		p := filepath.Join(dir, "secret.env")
		data, _ := os.ReadFile(p)
		var kept [][]byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte("API_TOKEN=")) {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(p, bytes.Join(kept, []byte("\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		wantInvalid(t, dir, "env_file secret.env does not decrypt (sops): MAC mismatch")
	})
}

func wantInvalid(t *testing.T, dir string, want ...string) {
	t.Helper()
	loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
	var problems fleets.ProblemList
	if !errors.As(err, &problems) || len(loaded) != 0 {
		t.Fatalf("Load: %v, %d fleets; want the fleet invalid", err, len(loaded))
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("problems:\n%v\nwant one with %q", err, w)
		}
	}
}
