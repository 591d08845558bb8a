package fleets

import (
	"os"
	"path/filepath"
	"testing"
)

// A hook is not part of the spec: adding, changing or removing one leaves
// the spec hash, and so the containers, as they are.
func TestHooksNotHashed(t *testing.T) {
	load := func(hooks string) Service {
		t.Helper()
		root := t.TempDir()
		compose := "services:\n  web:\n    image: x\n    environment: {A: b}\n" + hooks
		if err := os.WriteFile(filepath.Join(root, "compose.yaml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		fleets, err := Load(t.Context(), root, Host{Name: "h"}, RootName("shop"))
		if err != nil || len(fleets) != 1 {
			t.Fatalf("Load: %v, %d fleets", err, len(fleets))
		}
		return fleets[0].Services[0]
	}
	plain := load("")
	hooked := load("    post_start: [{command: [touch, /ready], user: root}]\n    pre_stop: [{command: [/app, -drain], environment: {T: x}}]\n")
	changed := load("    post_start: [{command: [touch, /other]}]\n")
	if len(hooked.PostStart) != 1 || len(hooked.PreStop) != 1 || hooked.PostStart[0].User != "root" {
		t.Fatalf("hooks not loaded: %+v %+v", hooked.PostStart, hooked.PreStop)
	}
	if plain.Hash != hooked.Hash || plain.Hash != changed.Hash {
		t.Errorf("hooks change the spec hash: %s, %s, %s", plain.Hash, hooked.Hash, changed.Hash)
	}
}
