package source_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

	head, err := export(t.Context(), u.work, "main", "fleets", filepath.Join(t.TempDir(), "head"), source.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := export(t.Context(), u.work, "HEAD~1", "fleets", t.TempDir(), source.Auth{})
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

	rev, err := export(t.Context(), srv.repoURL(), "v1", ".", t.TempDir(), source.Auth{})
	if err != nil || rev.Commit != first {
		t.Fatalf("Export v1 over http = %+v, %v; want %s", rev, err, first)
	}
	if rev, err := export(t.Context(), srv.repoURL(), "HEAD~1", "", t.TempDir(), source.Auth{}); err != nil || rev.Commit != first {
		t.Errorf("Export HEAD~1 over http = %+v, %v; want %s", rev, err, first)
	}
	if _, err := export(t.Context(), u.bare, "nope", ".", t.TempDir(), source.Auth{}); !errors.Is(err, source.ErrRefNotFound) {
		t.Errorf("unknown ref: %v, want ErrRefNotFound", err)
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	if _, err := export(t.Context(), u.bare, "main", ".", full, source.Auth{}); err == nil {
		t.Error("Export into a non-empty directory succeeded")
	}
	srv.Close()
	if _, err := export(t.Context(), srv.repoURL(), "main", ".", t.TempDir(), source.Auth{}); !errors.Is(err, source.ErrUnreachable) {
		t.Errorf("server down: %v, want ErrUnreachable", err)
	}
}

// A Snapshot answers what plan needs without writing trees: which files
// changed below a path (Git compares subtree hashes), a file's contents,
// whether a path exists; and exports a revision without some directories.
func TestSnapshotChangedReadHasExcept(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("base", map[string]string{
		"fleets/web/compose.yaml":  composeV1,
		"fleets/db/compose.yaml":   composeV1,
		"fleets/db/.env":           "A=1\n",
		"fleets/gone/compose.yaml": composeV1,
		"inventory.yaml":           "hosts: []\n",
		"README":                   "x\n",
	})
	u.commit("head", map[string]string{
		"fleets/db/.env":           "A=2\n",
		"fleets/new/compose.yaml":  composeV1,
		"fleets/web/compose.yaml":  composeV1, // unchanged
		"README":                   "y\n",     // outside the path
		"fleets/web/extra/a.yaml":  "a: 1\n",
		"fleets/gone/compose.yaml": "",
	})
	for link, target := range map[string]string{"inv-link.yaml": "inventory.yaml", "out-link.yaml": "../../etc/passwd", "fleets-link": "fleets"} {
		if err := os.Symlink(target, filepath.Join(u.work, link)); err != nil {
			t.Fatal(err)
		}
	}
	u.commit("links", nil)
	snap, err := source.OpenSnapshot(t.Context(), u.work, source.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := snap.Changed(t.Context(), "HEAD~2", "HEAD", "fleets")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fleets/db/.env", "fleets/gone/compose.yaml", "fleets/new/compose.yaml", "fleets/web/extra/a.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
	if got, err := snap.Changed(t.Context(), "HEAD~2", "HEAD", "nowhere"); err != nil || len(got) != 0 {
		t.Errorf("Changed below a missing path = %v, %v; want nothing", got, err)
	}
	if _, err := snap.Changed(t.Context(), "HEAD~2", "HEAD", "fleets-link"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Changed below a symlink: %v; want an error saying it is not a directory", err)
	}
	if data, ok, err := snap.ReadFile("HEAD~2", "fleets/db/.env"); err != nil || !ok || string(data) != "A=1\n" {
		t.Errorf("ReadFile at base = %q, %v, %v", data, ok, err)
	}
	if data, ok, err := snap.ReadFile("HEAD", "inv-link.yaml"); err != nil || !ok || string(data) != "hosts: []\n" {
		t.Errorf("ReadFile through a symlink = %q, %v, %v; want the target's contents", data, ok, err)
	}
	if _, _, err := snap.ReadFile("HEAD", "out-link.yaml"); err == nil {
		t.Error("ReadFile followed a symlink out of the repository")
	}
	if _, ok, err := snap.ReadFile("HEAD", "missing.yaml"); err != nil || ok {
		t.Errorf("ReadFile of a missing file: found %v, %v", ok, err)
	}
	for p, want := range map[string]string{"fleets": "dir", "fleets/new": "dir", "fleets/nope": "", ".": "dir",
		"README": "file", "fleets-link": "symlink"} {
		if kind, err := snap.Kind("HEAD", p); err != nil || kind != want {
			t.Errorf("Kind(%s) = %q, %v; want %q", p, kind, err, want)
		}
	}
	dest := t.TempDir()
	rev, err := snap.ExportExcept(t.Context(), "HEAD", "fleets", dest, map[string]bool{"fleets/web": true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rev.Dir, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a skipped directory was written: %v", err)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "db", ".env")); got != "A=2\n" {
		t.Errorf("db/.env = %q", got)
	}
}

func TestRepoName(t *testing.T) {
	for raw, want := range map[string]string{
		"https://git.example.com/ops/fleet.git":  "fleet",
		"https://git.example.com/ops/fleet.git/": "fleet",
		"git@github.com:ops/fleet.git":           "fleet",
		"ssh://git@host:2222/ops/fleet":          "fleet",
		"/srv/repos/fleet":                       "fleet",
		"file:///srv/repos/fleet.git":            "fleet",
		"/srv/work/fleet/.git":                   "fleet",
		"/srv/work/fleet/.git/":                  "fleet",
	} {
		if got := source.RepoName(raw); got != want {
			t.Errorf("RepoName(%q) = %q, want %q", raw, got, want)
		}
	}
	wd, _ := os.Getwd()
	if got := source.RepoName("."); got != filepath.Base(wd) {
		t.Errorf("RepoName(.) = %q, want the working directory's name %q", got, filepath.Base(wd))
	}
}

// export opens repo and exports one revision of it.
func export(ctx context.Context, repo, ref, path, dest string, auth source.Auth) (source.Revision, error) {
	s, err := source.OpenSnapshot(ctx, repo, auth)
	if err != nil {
		return source.Revision{}, err
	}
	return s.Export(ctx, ref, path, dest)
}
