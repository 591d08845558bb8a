package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pipeTree is a fleets directory where the loader meets named pipes: a
// fleet's .env, a build context's .dockerignore, a file in a build
// context; and fleets of plain files around them, so that a load takes a
// moment.
func pipeTree(t *testing.T, plain int) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pipe := func(name string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := "services:\n  b:\n    build: {context: app}\n"
	write("env/compose.yaml", "services:\n  s:\n    image: x\n")
	pipe("env/.env")
	write("ignore/compose.yaml", build)
	write("ignore/app/Dockerfile", "FROM scratch\n")
	pipe("ignore/app/.dockerignore")
	write("context/compose.yaml", build)
	write("context/app/Dockerfile", "FROM scratch\n")
	pipe("context/app/logs/pipe")
	for i := range plain {
		write(fmt.Sprintf("plain%03d/compose.yaml", i), build)
		write(fmt.Sprintf("plain%03d/app/Dockerfile", i), "FROM scratch\n")
		for j := range 20 {
			write(fmt.Sprintf("plain%03d/app/src/f%02d.txt", i, j), strings.Repeat("x", 4096))
		}
	}
	return dir
}

// start runs fleetd validate dir in the background.
func startValidate(t *testing.T, dir string) (*exec.Cmd, *bytes.Buffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(fleetdBin, "validate", dir, "--host", "h1")
	cmd.Env = fleetdEnv(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, &out, done
}

// exitCode waits for a run to end within d, killing it otherwise.
func exitCode(t *testing.T, cmd *exec.Cmd, done <-chan error, d time.Duration) int {
	t.Helper()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("fleetd validate still runs after %s", d)
		return -1
	}
}

// TestValidateNamedPipes: validate reports each named pipe as a problem
// naming the file and exits 1, rather than hanging on it (issue 17 W5).
func TestValidateNamedPipes(t *testing.T) {
	t.Parallel()
	dir := pipeTree(t, 0)
	cmd, out, done := startValidate(t, dir)
	if code := exitCode(t, cmd, done, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"env/.env: fleet env: .env: not a regular file (a named pipe)",
		"service b: build.context: ignore/app/.dockerignore: not a regular file",
		"logs/pipe: a named pipe cannot be in a build context",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestValidateHonoursSIGTERM: validate ends soon after SIGTERM wherever
// the load is, and says it was interrupted when it did not finish first.
func TestValidateHonoursSIGTERM(t *testing.T) {
	t.Parallel()
	dir := pipeTree(t, 150)
	for _, after := range []time.Duration{0, 10 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		cmd, out, done := startValidate(t, dir)
		time.Sleep(after)
		cmd.Process.Signal(syscall.SIGTERM)
		code := exitCode(t, cmd, done, 5*time.Second)
		// Ended by the signal before main caught it, interrupted, or
		// finished first with the pipes reported: never 0, never a hang.
		if code == 0 {
			t.Errorf("SIGTERM after %s: exit 0\n%s", after, out)
		}
		t.Logf("SIGTERM after %s: exit %d, %s", after, code, firstLine(out.String()))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestValidateWarnsOfLFSAndSubmodules: validate names the Git LFS files
// and submodules the agent would check out without contents, and they do
// not fail it (issue 17 W12).
func TestValidateWarnsOfLFSAndSubmodules(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	pointer := "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
	for name, data := range map[string]string{
		".git/HEAD":                "ref: refs/heads/main\n",
		".gitmodules":              "[submodule \"lib\"]\n\tpath = fleets/web/lib\n\turl = ../lib.git\n",
		".gitattributes":           "*.bin filter=lfs diff=lfs merge=lfs -text\n",
		"fleets/web/compose.yaml":  "services:\n  web:\n    image: app:1\n    volumes: [\"./model.bin:/model.bin:ro\"]\n",
		"fleets/web/model.bin":     pointer,
		"fleets/web/lib/README.md": "",
	} {
		p := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := fleetd(t, nil, "validate", filepath.Join(repo, "fleets"), "--host", "h1")
	if r.code != 0 {
		t.Fatalf("%s\nwant exit 0: warnings do not fail validate", r)
	}
	for _, want := range []string{
		"warning: web/lib: a submodule (.gitmodules): fleetd does not fetch submodules",
		"warning: web/model.bin: a Git LFS pointer: fleetd does not fetch LFS objects",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r)
		}
	}
}
