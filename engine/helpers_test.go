package engine

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/fleetd/fleetd/fleets"
)

func TestNormalisePath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1.41/containers/json":                        "/containers/json",
		"/v1.41/containers/abc123/json":                 "/containers/{id}/json",
		"/v1.41/containers/abc123":                      "/containers/{id}",
		"/v1.41/containers/create":                      "/containers/create",
		"/v1.41/containers/abc/archive":                 "/containers/{id}/archive",
		"/v1.41/networks":                               "/networks",
		"/v1.41/networks/shop_back":                     "/networks/{id}",
		"/v1.41/networks/shop_back/connect":             "/networks/{id}/connect",
		"/v1.41/networks/create":                        "/networks/create",
		"/v1.41/volumes":                                "/volumes",
		"/v1.41/images/json":                            "/images/json",
		"/v1.41/images/create":                          "/images/create",
		"/v1.41/images/127.0.0.1:5000/team/app:v1/json": "/images/{name}/json",
		"/v1.41/images/sha256:abc":                      "/images/{name}",
		"/_ping":                                        "/_ping",
		"/v1.41/events":                                 "/events",
		"/v1.41/build":                                  "/build",
	} {
		if got := normalisePath(in); got != want {
			t.Errorf("normalisePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHealthFromStatus(t *testing.T) {
	for status, want := range map[string]string{
		"Up 3 minutes (healthy)":          "healthy",
		"Up 3 minutes (unhealthy)":        "unhealthy",
		"Up 2 seconds (health: starting)": "starting",
		"Up 3 minutes":                    "",
		"Exited (0) 5 seconds ago":        "",
		"Up 1 second (Paused)":            "",
		"Created":                         "",
		"Up About a minute (healthy)":     "healthy",
		"Restarting (1) 2 seconds ago":    "",
		"Up 10 minutes (unhealthy) x":     "",
		"Up 1 minute (health: starting) ": "",
		"Up Less than a second (healthy)": "healthy",
		"Up 5 hours (health: starting)":   "starting",
		"Removal In Progress":             "",
		"Dead":                            "",
		"Up 4 weeks (healthy)":            "healthy",
		"Up 45 seconds (unhealthy)":       "unhealthy",
		"Up 2 days (health: starting)":    "starting",
		"Exited (137) About an hour ago":  "",
	} {
		if got := HealthFromStatus(status); got != want {
			t.Errorf("HealthFromStatus(%q) = %q, want %q", status, got, want)
		}
	}
}

func TestRefSpellings(t *testing.T) {
	got := refSpellings("nginx:latest")
	for _, want := range []string{"nginx:latest", "nginx", "docker.io/library/nginx:latest", "docker.io/library/nginx"} {
		if !slices.Contains(got, want) {
			t.Errorf("refSpellings(nginx:latest) = %v, missing %q", got, want)
		}
	}
	got = refSpellings("127.0.0.1:5000/app:v1")
	if !slices.Contains(got, "127.0.0.1:5000/app:v1") || slices.Contains(got, "127.0.0.1:5000/app") {
		t.Errorf("refSpellings(127.0.0.1:5000/app:v1) = %v", got)
	}
	if got := refSpellings("<none>:<none>"); got != nil {
		t.Errorf("refSpellings(<none>:<none>) = %v", got)
	}
}

func TestUpdateConfig(t *testing.T) {
	spec := fleets.Spec{Restart: "unless-stopped", Resources: fleets.Resources{Memory: 128 << 20, NanoCPUs: 1e9}}
	uc, err := updateConfig(spec, &container.HostConfig{Resources: container.Resources{Memory: 64 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "MemorySwap", uc.MemorySwap, int64(256<<20))
	check(t, "PidsLimit", *uc.PidsLimit, int64(0))
	check(t, "RestartPolicy", uc.RestartPolicy.Name, container.RestartPolicyUnlessStopped)

	_, err = updateConfig(fleets.Spec{}, &container.HostConfig{Resources: container.Resources{Memory: 64 << 20, CPUShares: 512}})
	if !errors.Is(err, ErrUpdateUnsupported) || !strings.Contains(err.Error(), "memory, cpu_shares") {
		t.Errorf("reset to unlimited: err = %v, want ErrUpdateUnsupported naming memory, cpu_shares", err)
	}
}

func TestTarFiles(t *testing.T) {
	buf, err := tarFiles([]file{
		{Target: "/run/secrets/db", Mode: 0o400, Data: []byte("s3cret")},
		{Target: "/etc/app.conf", Mode: 0o444, Data: []byte("x=1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := readTar(t, buf)
	check(t, "entries", got, map[string]string{"run/secrets/db": "400:s3cret", "etc/app.conf": "444:x=1"})
}

func TestTarContextDockerignore(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM scratch")
	write(".dockerignore", "Dockerfile\n*.log\nsecret/\nnode_modules\n!keep.log\n")
	write("app.txt", "app")
	write("debug.log", "x")
	write("keep.log", "k")
	write("secret/key", "k")
	write("node_modules/a/b.js", "x")
	write("src/main.go", "package main")
	if err := os.Symlink("app.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tarContext(&buf, dir, "Dockerfile"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range readTar(t, &buf) {
		names = append(names, name)
	}
	slices.Sort(names)
	check(t, "context", names, []string{".dockerignore", "Dockerfile", "app.txt", "keep.log", "link", "src/", "src/main.go"})
}

func readTar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeReg {
			out[hdr.Name] = strconv.FormatInt(hdr.Mode, 8) + ":" + string(data)
		} else {
			out[hdr.Name] = ""
		}
	}
}

func TestRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	cred := base64.StdEncoding.EncodeToString([]byte("bob:pa:ss"))
	cfg := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + cred + `"},"127.0.0.1:5000":{"auth":"` + cred + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, registry := range []string{"docker.io", "127.0.0.1:5000"} {
		enc, err := registryAuth(dir, registry)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.URLEncoding.DecodeString(enc)
		if err != nil {
			t.Fatalf("%s: %v", registry, err)
		}
		if !strings.Contains(string(raw), `"username":"bob"`) || !strings.Contains(string(raw), `"password":"pa:ss"`) {
			t.Errorf("%s: auth = %s", registry, raw)
		}
	}
	if enc, err := registryAuth(dir, "ghcr.io"); err != nil || enc != "" {
		t.Errorf("ghcr.io: auth = %q, %v; want none", enc, err)
	}
	if enc, err := registryAuth(t.TempDir(), "ghcr.io"); err != nil || enc != "" {
		t.Errorf("no config: auth = %q, %v; want none", enc, err)
	}
}

// Credential helpers, as the Docker CLI uses them: credHelpers for one
// registry, else credsStore; a helper that knows nothing means no auth.
func TestRegistryAuthHelpers(t *testing.T) {
	bin := t.TempDir()
	helper := `#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
case "$server" in
  registry.example.com) echo '{"ServerURL":"registry.example.com","Username":"alice","Secret":"from-helper"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"id-token"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`
	for _, name := range []string{"docker-credential-fleetdtest", "docker-credential-store"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(helper), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	cfg := `{"credsStore":"store","credHelpers":{"registry.example.com":"fleetdtest"},"auths":{"registry.example.com":{"auth":"` +
		base64.StdEncoding.EncodeToString([]byte("file:ignored")) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	decoded := func(registry string) string {
		t.Helper()
		enc, err := registryAuth(dir, registry)
		if err != nil {
			t.Fatalf("%s: %v", registry, err)
		}
		raw, _ := base64.URLEncoding.DecodeString(enc)
		return string(raw)
	}
	if got := decoded("registry.example.com"); !strings.Contains(got, `"username":"alice"`) || !strings.Contains(got, `"password":"from-helper"`) {
		t.Errorf("credHelpers: %s", got)
	}
	if got := decoded("docker.io"); !strings.Contains(got, `"identitytoken":"id-token"`) || strings.Contains(got, "<token>") {
		t.Errorf("credsStore with an identity token: %s", got)
	}
	if got := decoded("ghcr.io"); got != "" {
		t.Errorf("a registry the store does not know: %s, want no auth", got)
	}
}

// A named pipe in the build context, or as its .dockerignore, is refused
// with its name rather than hanging the archive (issue 17 W5).
func TestTarContextRefusesNamedPipes(t *testing.T) {
	for name, fifo := range map[string]string{"in the context": "sub/pipe", "as .dockerignore": ".dockerignore"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(dir, fifo), 0o644); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tarContext(io.Discard, dir, "Dockerfile") }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), filepath.Base(fifo)) {
					t.Fatalf("tarContext = %v, want an error naming %s", err, fifo)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("tarContext hangs on a named pipe")
			}
		})
	}
}
