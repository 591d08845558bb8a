package fleets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A named pipe where the loader reads a file (a compose file, an env
// file, a Dockerfile, a .dockerignore) or in a build context is a problem
// naming it, never a hang (issue 17 W5): opening a pipe for reading blocks
// until a writer comes.
func TestLoadNamedPipes(t *testing.T) {
	build := "services:\n  b:\n    build: {context: app}\n"
	for _, tc := range []struct {
		name, compose, pipe, want string
	}{
		{"compose file", "", "e/compose.yaml", "compose.yaml: not a regular file (a named pipe)"},
		{"env file", "services:\n  s:\n    image: x\n    env_file: app.env\n", "e/app.env", "app.env: not a regular file"},
		{"dot env", "services:\n  s:\n    image: x\n", "e/.env", ".env: not a regular file (a named pipe)"},
		{"dockerfile", build, "e/app/Dockerfile", "Dockerfile: not a regular file"},
		{"dockerignore", build, "e/app/.dockerignore", ".dockerignore: not a regular file"},
		{"build context", build, "e/app/sub/pipe", "sub/pipe: a named pipe cannot be in a build context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{"e/app/Dockerfile": "FROM scratch\n", "e/app/sub/a.txt": "a"}
			if tc.compose != "" {
				files["e/compose.yaml"] = tc.compose
			}
			delete(files, tc.pipe)
			for name, data := range files {
				writeFile(t, root, name, []byte(data))
			}
			p := filepath.Join(root, filepath.FromSlash(tc.pipe))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Load(t.Context(), root, Host{Name: "h"}); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Load hangs on a named pipe")
			}
			var pl ProblemList
			if !errors.As(err, &pl) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v\nwant a problem with %q", err, tc.want)
			}
		})
	}
}
