package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/fleetd/fleetd/source"
)

func TestExportLocalRefs(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"fleets/web/compose.yaml": composeV1})
	script := filepath.Join(u.work, "fleets", "web", "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("compose.yaml", filepath.Join(u.work, "fleets", "web", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	second := u.commit("two", map[string]string{"fleets/web/compose.yaml": "services: {}\n"})

	head, err := source.Export(t.Context(), u.work, "main", "fleets", filepath.Join(t.TempDir(), "head"), source.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := source.Export(t.Context(), u.work, "HEAD~1", "fleets", t.TempDir(), source.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if head.Commit != second || base.Commit != first || head.Subject != "two" || base.Ref != "HEAD~1" {
		t.Fatalf("head %+v base %+v, want %s and %s", head, base, second, first)
	}
	if got := readFile(t, filepath.Join(head.Dir, "web", "compose.yaml")); got != "services: {}\n" {
		t.Errorf("head compose.yaml = %q", got)
	}
	if got := readFile(t, filepath.Join(base.Dir, "web", "compose.yaml")); got != composeV1 {
		t.Errorf("base compose.yaml = %q", got)
	}
	if info, err := os.Stat(filepath.Join(head.Dir, "web", "hook.sh")); err != nil || info.Mode().Perm()&0o100 == 0 {
		t.Errorf("hook.sh is not executable: %v %v", info, err)
	}
	if target, err := os.Readlink(filepath.Join(head.Dir, "web", "link.yaml")); err != nil || target != "compose.yaml" {
		t.Errorf("link.yaml: %q, %v; want a symlink to compose.yaml", target, err)
	}
	assertMissing(t, filepath.Join(base.Dir, "web", "hook.sh"))
}

func TestExportRemoteAndErrors(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"compose.yaml": composeV1})
	u.run("tag", "-a", "-m", "v1", "v1")
	u.run("push", "-q", "origin", "v1")
	u.commit("two", map[string]string{"compose.yaml": "services: {}\n"})
	srv := serveHTTP(t, u, "", "")

	rev, err := source.Export(t.Context(), srv.repoURL(), "v1", ".", t.TempDir(), source.Auth{})
	if err != nil || rev.Commit != first {
		t.Fatalf("Export v1 over http = %+v, %v; want %s", rev, err, first)
	}
	if rev, err := source.Export(t.Context(), srv.repoURL(), "HEAD~1", "", t.TempDir(), source.Auth{}); err != nil || rev.Commit != first {
		t.Errorf("Export HEAD~1 over http = %+v, %v; want %s", rev, err, first)
	}
	if _, err := source.Export(t.Context(), u.bare, "nope", ".", t.TempDir(), source.Auth{}); !errors.Is(err, source.ErrRefNotFound) {
		t.Errorf("unknown ref: %v, want ErrRefNotFound", err)
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	if _, err := source.Export(t.Context(), u.bare, "main", ".", full, source.Auth{}); err == nil {
		t.Error("Export into a non-empty directory succeeded")
	}
	srv.Close()
	if _, err := source.Export(t.Context(), srv.repoURL(), "main", ".", t.TempDir(), source.Auth{}); !errors.Is(err, source.ErrUnreachable) {
		t.Errorf("server down: %v, want ErrUnreachable", err)
	}
}
