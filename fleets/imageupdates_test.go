package fleets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImageUpdatesPolicy(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(root, name, "compose.yaml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("good", `services:
  plain: {image: "registry.example/app:1"}
  follow: {image: "registry.example/app:1", x-fleetd: {image_updates: apply}}
  quiet: {image: "registry.example/app:1", x-fleetd: {image_updates: "off"}}
`)
	write("bad", `services:
  typo: {image: "registry.example/app:1", x-fleetd: {image_updates: always}}
  built: {build: {context: .}, x-fleetd: {image_updates: apply}}
  never: {image: "registry.example/app:1", pull_policy: never, x-fleetd: {image_updates: apply}}
  pinned: {image: "registry.example/app@sha256:1111111111111111111111111111111111111111111111111111111111111111", x-fleetd: {image_updates: apply}}
`)
	if err := os.WriteFile(filepath.Join(root, "bad", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(t.Context(), root, Host{Name: "h1"})
	var problems ProblemList
	if !errors.As(err, &problems) {
		t.Fatalf("err = %v, want problems", err)
	}
	text := problems.Error()
	for _, want := range []string{
		`service typo: x-fleetd.image_updates: "always": want apply, notify, off`,
		"service built: x-fleetd.image_updates: apply needs an image pulled from a registry",
		"service never: x-fleetd.image_updates: apply pulls the new image, and pull_policy is never",
		"service pinned: x-fleetd.image_updates: apply follows a tag",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	if len(loaded) != 1 || loaded[0].Name != "good" {
		t.Fatalf("loaded %d fleets, want good only", len(loaded))
	}
	got := map[string]string{}
	for _, svc := range loaded[0].Services {
		got[svc.Name] = svc.ImageUpdates
	}
	want := map[string]string{"plain": ImageUpdatesNotify, "follow": ImageUpdatesApply, "quiet": ImageUpdatesOff}
	for name, policy := range want {
		if got[name] != policy {
			t.Errorf("service %s: image_updates %q, want %q", name, got[name], policy)
		}
	}
}
