package fleets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolve confines what a fleet reads to its checkout, through
// symlinks, also where the path does not exist: a dangling symlink out of
// the checkout, or a missing path under a symlink out of it, is refused,
// as is a path that cannot be resolved.
func TestResolve(t *testing.T) {
	checkout, outside := t.TempDir(), t.TempDir()
	fleet := filepath.Join(checkout, "ops")
	if err := os.MkdirAll(filepath.Join(fleet, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"dangling-out": filepath.Join(outside, "missing"),
		"dangling-in":  "conf/missing",
		"relative-out": "../../" + filepath.Base(outside) + "/missing",
		"dir-out":      outside,
		"loop":         "loop",
		"chain":        "dangling-out",
	} {
		if err := os.Symlink(target, filepath.Join(fleet, name)); err != nil {
			t.Fatal(err)
		}
	}
	ft, err := newFleetTree(fleet, checkout)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string // error substring; "" allowed
	}{
		{"conf", ""},
		{"conf/missing", ""},
		{"missing/deeper", ""},
		{"dangling-in", ""},
		{"dangling-out", "dangling-out: symlink resolves outside the repository"},
		{"chain", "symlink resolves outside the repository"},
		{"relative-out", "symlink resolves outside the repository"},
		{"dir-out", "symlink resolves outside the repository"},
		{"dir-out/missing", "symlink resolves outside the repository"},
		{"loop", "loop: "},
		{"../../x", "resolves outside the repository"},
	}
	for _, tt := range tests {
		_, err := ft.resolve(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("resolve(%s): %v", tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("resolve(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
	if _, err := ft.resolve("loop"); err == nil || errors.Is(err, errOutside) {
		t.Errorf("a symlink loop: %v, want an error other than outside", err)
	}
}
