package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/sopsfile/sopstest"
)

// TestFileContentsSops: a SOPS-encrypted secret file reaches the
// container decrypted, with the keys the loader used; a file re-encrypted
// with other contents since the spec was made is refused, as a changed
// plain file is for a rollback; and it is never bound read-only.
func TestFileContentsSops(t *testing.T) {
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, t.TempDir())
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	compose := "services:\n  api:\n    image: x\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.txt\n"
	pw := filepath.Join(dir, "pw.txt")
	for p, data := range map[string]string{filepath.Join(dir, "compose.yaml"): compose, pw: "hunter2\n"} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sopstest.Encrypt(t, pw, recipient)
	loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	spec := loaded[0].Services[0].Spec
	files, err := readFiles(spec)
	if err != nil || len(files) != 1 || string(files[0].Data) != "hunter2\n" || !files[0].InMemory {
		t.Fatalf("readFiles = %+v, %v; want the plaintext, in memory", files, err)
	}
	if binds := fileBinds(spec); len(binds) != 0 {
		t.Errorf("fileBinds = %v, want the encrypted file left out", binds)
	}
	if err := os.WriteFile(pw, []byte("other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sopstest.Encrypt(t, pw, recipient)
	if _, err := FileContents(spec.Secrets[0]); err == nil || !strings.Contains(err.Error(), "contents not available") {
		t.Errorf("FileContents after the file changed: %v", err)
	}
}
