package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fleetd/fleetd/source"
)

// A commit whose tree is over the limits is not checked out: Sync refuses
// it naming the file and the limit, writes nothing, and leaves the
// previous revision current (issue 17 W7).
func TestSyncRefusesTreeOverLimits(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	good := u.commit("good", map[string]string{"compose.yaml": composeV1})
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, source.Config{URL: u.bare, Dir: dir, Limits: source.Limits{MaxFileSize: 1024, MaxFiles: 10}})
	if _, _, err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"a big file", map[string]string{"data/blob.bin": strings.Repeat("x", 2000)}, "data/blob.bin: 2000 bytes, over source.limits.max_file_size (1024)"},
		{"many files", manyFiles(11), "more than source.limits.max_files (10) files"},
	} {
		u.run("reset", "-q", "--hard", good)
		bad := u.commit(tc.name, tc.files)
		_, _, err := r.Sync(t.Context())
		var refused *source.RefusedError
		if !errors.As(err, &refused) || refused.Reason != source.ReasonTooLarge || refused.Commit != bad || !strings.Contains(refused.Why, tc.want) {
			t.Fatalf("%s: Sync = %v; want %s refused as %s, naming %q", tc.name, err, bad, source.ReasonTooLarge, tc.want)
		}
		if cur, ok := r.Current(); !ok || cur.Commit != good {
			t.Errorf("%s: current = %+v, want %s", tc.name, cur, good)
		}
		assertMissing(t, filepath.Join(dir, "trees", bad))
		if _, err := r.Checkout(t.Context(), bad); !errors.Is(err, source.ErrTooLarge) {
			t.Errorf("%s: Checkout = %v, want ErrTooLarge", tc.name, err)
		}
		entries, _ := os.ReadDir(filepath.Join(dir, "trees"))
		if len(entries) != 1 {
			t.Errorf("%s: trees hold %v, want the good one only (no leftover)", tc.name, entries)
		}
	}
}

func manyFiles(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		files[filepath.Join("many", string(rune('a'+i))+".txt")] = "x"
	}
	return files
}

// Submodules and Git LFS pointer files are written as they are (nothing
// fetched) and named to Config.Warn, once, when the tree is written
// (issue 17 W12).
func TestCheckoutWarnsOfSubmodulesAndLFS(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
	first := u.commit("one", map[string]string{"compose.yaml": composeV1, "web/model.bin": pointer, "web/small.txt": "hi"})
	u.run("update-index", "--add", "--cacheinfo", "160000,"+first+",vendor/lib")
	u.run("commit", "-q", "-m", "two") // not commit's add -A, which drops a gitlink with no directory
	u.run("push", "-q", "origin", "HEAD:main")
	commit := u.run("rev-parse", "HEAD")
	var mu sync.Mutex
	var got []string
	r := open(t, source.Config{URL: u.bare, Warn: func(c, w string) {
		mu.Lock()
		defer mu.Unlock()
		if c != commit {
			t.Errorf("warning about %s, want %s", c, commit)
		}
		got = append(got, w)
	}})
	rev, _, err := r.Sync(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	slices.Sort(got)
	want := []string{
		"vendor/lib: a submodule (commit " + first + "): fleetd does not fetch submodules, the directory is left out",
		"web/model.bin: a Git LFS pointer: fleetd does not fetch LFS objects, the file holds the pointer",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	mu.Unlock()
	if data := readFile(t, filepath.Join(rev.Root, "web", "model.bin")); data != pointer {
		t.Errorf("model.bin = %q, want the pointer as it is", data)
	}
	assertMissing(t, filepath.Join(rev.Root, "vendor", "lib"))
}

// The clone's directory and its Git store are private (0700), also when
// they were created before with wider modes (issue 17 W6).
func TestOpenMakesTheCloneDirectoryPrivate(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"compose.yaml": composeV1})
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, source.Config{URL: u.bare, Dir: dir})
	if _, _, err := r.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "git")} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	open(t, source.Config{URL: u.bare, Dir: dir})
	for _, p := range []string{dir, filepath.Join(dir, "git")} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want drwx------", p, info.Mode(), err)
		}
	}
}
