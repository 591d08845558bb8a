package fleets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileRefused: an empty or world-writable secret file makes the
// fleet invalid, naming the secret and the file; a config may be empty.
func TestSecretFileRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		mode os.FileMode
		want string // "" = valid
	}{
		{"ok", "s3cret\n", 0o600, ""},
		{"empty", "", 0o600, "secrets.pw.file: pw.txt: the secret file is empty"},
		{"world-writable", "s3cret\n", 0o666, "secrets.pw.file: pw.txt: the secret file is world-writable (mode 0666)"},
		{"group-writable", "s3cret\n", 0o660, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			compose := "services:\n  api:\n    image: x\n    secrets: [pw]\n    configs: [blank]\n" +
				"secrets:\n  pw:\n    file: ./pw.txt\nconfigs:\n  blank:\n    file: ./blank.conf\n"
			writeMode(t, filepath.Join(dir, "compose.yaml"), compose, 0o644)
			writeMode(t, filepath.Join(dir, "blank.conf"), "", 0o644)
			writeMode(t, filepath.Join(dir, "pw.txt"), tc.data, tc.mode)
			loaded, err := Load(t.Context(), dir, Host{Name: "h"})
			if tc.want == "" {
				if err != nil || len(loaded) != 1 {
					t.Fatalf("Load: %v, %d fleets; want one valid fleet", err, len(loaded))
				}
				return
			}
			var problems ProblemList
			if !errors.As(err, &problems) || len(problems) != 1 || !strings.Contains(problems[0].String(), tc.want) {
				t.Fatalf("Load: %v; want one problem with %q", err, tc.want)
			}
			if len(loaded) != 0 {
				t.Errorf("loaded %d fleets, want none", len(loaded))
			}
		})
	}
}

// writeMode writes a file with exactly mode (the umask would clear o+w).
func writeMode(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
