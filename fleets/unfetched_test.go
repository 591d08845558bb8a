package fleets

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// What the agent checks out without contents (Git LFS files, submodules)
// is named for `fleetd validate` (issue 17 W12).
func TestUnfetched(t *testing.T) {
	repo := t.TempDir()
	pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
	for name, data := range map[string]string{
		".gitmodules":                        "[submodule \"lib\"]\n\tpath = fleets/web/lib\n\turl = ../lib.git\n[submodule \"other\"]\n\tpath = elsewhere/x\n",
		"fleets/.gitattributes":              "# models\n*.bin filter=lfs diff=lfs merge=lfs -text\n*.txt text\n",
		"fleets/web/compose.yaml":            "services: {web: {image: x}}\n",
		"fleets/web/model.bin":               pointer,
		"fleets/web/not-pointer.txt":         "# " + pointer,
		"fleets/web/big.txt":                 pointer + strings.Repeat("x", 1024),
		"fleets/web/lib/.git":                "gitdir: ../../../.git/modules/lib\n",
		"fleets/web/vendored/.git/HEAD":      "ref: refs/heads/main\n",
		"fleets/web/vendored/a.txt":          "a",
		"fleets/.git/lfs-pointer-in-git-dir": pointer,
	} {
		writeFile(t, repo, name, []byte(data))
	}
	if err := syscall.Mkfifo(filepath.Join(repo, "fleets", "web", "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Unfetched(t.Context(), filepath.Join(repo, "fleets"), repo)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		".gitattributes: *.bin is stored in Git LFS: fleetd does not fetch LFS objects, the agent's checkout holds their pointers",
		"web/lib: a submodule (.gitmodules): fleetd does not fetch submodules, the agent's checkout leaves it out",
		"web/model.bin: a Git LFS pointer: fleetd does not fetch LFS objects, a fleet reading it gets the pointer",
		"web/vendored: a Git repository of its own (a submodule?): fleetd does not fetch submodules, the agent's checkout leaves it out",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Unfetched:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Without a checkout, .gitmodules is not read.
	got, err = Unfetched(t.Context(), filepath.Join(repo, "fleets", "web", "vendored"), "")
	if err != nil || len(got) != 0 {
		t.Errorf("Unfetched(vendored) = %v, %v; want nothing", got, err)
	}
	os.Remove(filepath.Join(repo, "fleets", "web", "pipe"))
}
