package sopsfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fleetd/fleetd/sopsfile"
	"github.com/fleetd/fleetd/sopsfile/sopstest"
)

// TestDecryptCLIFiles decrypts files the sops CLI encrypted, in the
// formats fleets read (dotenv for *.env, binary for everything else), to
// what `sops -d` prints, and refuses them without the key or tampered.
func TestDecryptCLIFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, dir)
	other, _ := sopstest.AgeKey(t, t.TempDir())
	cases := []struct {
		name, plain string
		args        []string
	}{
		{"app.env", "# db\nDB_PASSWORD=hunter2\nMULTI=a\\nb\nEMPTY=\nPORT_unencrypted=5432\n", nil},
		{"pw.txt", "s3cret\n", nil},
		{"cert.pem", "-----BEGIN X-----\nabc\n-----END X-----\n", nil},
		{"only.env", "TOKEN=abc\nLEVEL=debug\n", []string{"--encrypted-regex", "^TOKEN$"}},
		{"maconly.env", "TOKEN=abc\nLEVEL=debug\n", []string{"--encrypted-regex", "^TOKEN$", "--mac-only-encrypted"}},
		{"config.yaml", yamlPlain, nil},
		{"partial.yaml", yamlPlain, []string{"--encrypted-regex", "^(password|ports)$"}},
		{"maconly.yaml", yamlPlain, []string{"--unencrypted-suffix", "_clear", "--mac-only-encrypted"}},
		{"config.json", jsonPlain, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.plain), 0o600); err != nil {
				t.Fatal(err)
			}
			if sopsfile.Encrypted(tc.name, []byte(tc.plain)) {
				t.Fatal("plaintext taken for encrypted")
			}
			sopstest.Encrypt(t, p, recipient, tc.args...)
			enc, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !sopsfile.Encrypted(tc.name, enc) {
				t.Fatalf("not detected as encrypted:\n%s", enc)
			}
			plain, err := sopsfile.Decrypt(tc.name, enc, sopsfile.Keys{AgeKeyFile: keyFile})
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if want := sopstest.Decrypt(t, p, keyFile); !sameDocument(tc.name, plain.Data, want) {
				t.Errorf("Decrypt = %q, sops -d = %q", plain.Data, want)
			}
			if !strings.HasPrefix(plain.Digest, "hmac-sha256:") {
				t.Errorf("digest %q", plain.Digest)
			}
			again, _ := sopsfile.Decrypt(tc.name, enc, sopsfile.Keys{AgeKeyFile: keyFile})
			if again.Digest != plain.Digest {
				t.Errorf("digest not stable: %s, %s", plain.Digest, again.Digest)
			}

			_, err = sopsfile.Decrypt(tc.name, enc, sopsfile.Keys{AgeKeyFile: other})
			if !errors.Is(err, sopsfile.ErrNoKey) || !strings.Contains(err.Error(), recipient) {
				t.Errorf("with another key: %v, want ErrNoKey naming %s", err, recipient)
			}
			_, err = sopsfile.Decrypt(tc.name, enc, sopsfile.Keys{})
			if !errors.Is(err, sopsfile.ErrNoKey) {
				t.Errorf("without keys: %v, want ErrNoKey", err)
			}
		})
	}
}

const yamlPlain = `# database
db:
    host: db.internal
    password: hunter2 # the password
    port: 5432
    ratio: 1.5
    enabled: true
    nothing: null
    ports: [1, 2]
    name_clear: visible
list:
    - a
    - b: c
      d: [x, 3]
empty: ""
`

const jsonPlain = `{"db": {"password": "hunter2", "port": 5432, "ratio": 1.5, "on": false, "none": null}, "list": ["a", {"b": "c"}], "html": "<a&b>"}
`

// sameDocument compares what Decrypt and sops -d print: byte for byte for
// dotenv and binary files, as documents for YAML and JSON (fleetd drops
// comments and writes its own layout).
func sameDocument(name string, got, want []byte) bool {
	switch filepath.Ext(name) {
	case ".yaml", ".json":
		var g, w any
		if yaml.Unmarshal(got, &g) != nil || yaml.Unmarshal(want, &w) != nil {
			return false
		}
		return reflect.DeepEqual(g, w)
	}
	return bytes.Equal(got, want)
}

// TestDecryptTampered: a value swapped for another encrypted value, or a
// clear value changed, fails the MAC (or the value's own tag).
func TestDecryptTampered(t *testing.T) {
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, dir)
	p := filepath.Join(dir, "app.env")
	if err := os.WriteFile(p, []byte("A=1\nB=2\nC_unencrypted=3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sopstest.Encrypt(t, p, recipient)
	enc, _ := os.ReadFile(p)
	keys := sopsfile.Keys{AgeKeyFile: keyFile}

	clear := bytes.Replace(enc, []byte("C_unencrypted=3"), []byte("C_unencrypted=4"), 1)
	if _, err := sopsfile.Decrypt("app.env", clear, keys); !errors.Is(err, sopsfile.ErrMAC) {
		t.Errorf("clear value changed: %v, want ErrMAC", err)
	}
	// Drop a line: every value still decrypts, the MAC does not match.
	var kept [][]byte
	for _, line := range bytes.Split(enc, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("B=")) {
			kept = append(kept, line)
		}
	}
	if _, err := sopsfile.Decrypt("app.env", bytes.Join(kept, []byte("\n")), keys); !errors.Is(err, sopsfile.ErrMAC) {
		t.Errorf("line dropped: %v, want ErrMAC", err)
	}
	// A value moved to another key does not decrypt (its path is its
	// additional data), and the error names the key, not the value.
	lines := bytes.Split(enc, []byte("\n"))
	var a, b []byte
	for _, l := range lines {
		if v, ok := bytes.CutPrefix(l, []byte("A=")); ok {
			a = v
		}
		if v, ok := bytes.CutPrefix(l, []byte("B=")); ok {
			b = v
		}
	}
	swapped := bytes.Replace(enc, append([]byte("B="), b...), append([]byte("B="), a...), 1)
	if _, err := sopsfile.Decrypt("app.env", swapped, keys); err == nil || !strings.Contains(err.Error(), "value B") {
		t.Errorf("value moved: %v, want an error naming B", err)
	}
}

// TestDecryptTamperedYAML: a clear value of a YAML file changed after
// encryption fails the MAC; the plaintext has no comment left.
func TestDecryptTamperedYAML(t *testing.T) {
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, dir)
	p := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(p, []byte(yamlPlain), 0o600); err != nil {
		t.Fatal(err)
	}
	sopstest.Encrypt(t, p, recipient, "--encrypted-regex", "^password$")
	enc, _ := os.ReadFile(p)
	keys := sopsfile.Keys{AgeKeyFile: keyFile}
	plain, err := sopsfile.Decrypt("app.yaml", enc, keys)
	if err != nil || !strings.Contains(string(plain.Data), "password: hunter2") || strings.Contains(string(plain.Data), "#") {
		t.Fatalf("Decrypt = %q, %v", plain.Data, err)
	}
	changed := bytes.Replace(enc, []byte("db.internal"), []byte("db.evil"), 1)
	if bytes.Equal(changed, enc) {
		t.Fatal("host not found in the encrypted file")
	}
	if _, err := sopsfile.Decrypt("app.yaml", changed, keys); !errors.Is(err, sopsfile.ErrMAC) {
		t.Errorf("clear value changed: %v, want ErrMAC", err)
	}
}

// TestDecryptRefusesSmuggledYAML: sops leaves nulls out of the MAC, so
// text under a !!null tag, or a second value under a key, could be added
// to a file without failing it; sops -d refuses both, and so does Decrypt.
func TestDecryptRefusesSmuggledYAML(t *testing.T) {
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, dir)
	p := filepath.Join(dir, "app.yaml")
	if err := os.WriteFile(p, []byte(yamlPlain), 0o600); err != nil {
		t.Fatal(err)
	}
	sopstest.Encrypt(t, p, recipient, "--encrypted-regex", "^password$")
	enc, _ := os.ReadFile(p)
	keys := sopsfile.Keys{AgeKeyFile: keyFile}
	if _, err := sopsfile.Decrypt("app.yaml", enc, keys); err != nil {
		t.Fatalf("Decrypt of the file as encrypted: %v", err)
	}
	for name, tc := range map[string]struct{ add, want string }{
		"null with text": {"admin: !!null evil-payload\n", "admin: a !!null tag"},
		"duplicate key":  {"empty: evil-payload\n", `duplicate key "empty"`},
		"duplicate list": {"list: []\n", `duplicate key "list"`},
		"second sops":    {"sops: {}\n", `duplicate key "sops"`},
	} {
		t.Run(name, func(t *testing.T) {
			plain, err := sopsfile.Decrypt("app.yaml", append(bytes.Clone(enc), tc.add...), keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decrypt = %q, %v; want an error with %q", plain.Data, err, tc.want)
			}
		})
	}
}

// TestDecryptPGP decrypts files the sops CLI encrypted for a PGP key, with
// the GnuPG home holding it; another home does not decrypt them.
func TestDecryptPGP(t *testing.T) {
	home, fpr := sopstest.PGPKey(t)
	dir := t.TempDir()
	for name, plain := range map[string]string{"app.env": "DB_PASSWORD=hunter2\n", "pw.txt": "s3cret\n", "config.yaml": yamlPlain} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(plain), 0o600); err != nil {
			t.Fatal(err)
		}
		sopstest.EncryptPGP(t, p, home, fpr)
		enc, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sopsfile.Decrypt(name, enc, sopsfile.Keys{GnuPGHome: home})
		if err != nil {
			t.Fatalf("%s: Decrypt with the PGP key: %v", name, err)
		}
		if !sameDocument(name, got.Data, []byte(plain)) {
			t.Errorf("%s: decrypted %q, want %q", name, got.Data, plain)
		}
		if _, err := sopsfile.Decrypt(name, enc, sopsfile.Keys{GnuPGHome: t.TempDir()}); !errors.Is(err, sopsfile.ErrNoKey) {
			t.Errorf("%s: Decrypt without the key: %v, want ErrNoKey", name, err)
		}
	}
}
