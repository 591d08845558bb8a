package fleets

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// loadOne writes files (path -> contents) under a fresh repository and
// loads it on host1, failing the test on any error.
func loadOne(t *testing.T, files map[string]string) []Fleet {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		writeFile(t, root, name, []byte(data))
	}
	fleets, err := Load(t.Context(), root, Host{Name: "host1", Labels: map[string]string{"zone": "a"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return fleets
}

// serviceHash loads one compose file as fleet f and returns the hash of
// service web.
func serviceHash(t *testing.T, compose string, extra ...string) string {
	t.Helper()
	files := map[string]string{"f/compose.yaml": compose}
	for i := 0; i+1 < len(extra); i += 2 {
		files[extra[i]] = extra[i+1]
	}
	for _, f := range loadOne(t, files) {
		for _, s := range f.Services {
			if s.Name == "web" {
				return s.Hash
			}
		}
	}
	t.Fatal("no service web")
	return ""
}

const baseWeb = `
services:
  web:
    image: nginx:1.27
    ports: ["8080:80", "8443:443"]
    environment: {A: "1", B: "2"}
    cap_add: [NET_ADMIN, SYS_TIME]
    labels: {x: "1", y: "2"}
  db:
    image: postgres
`

func TestHashStableAcrossLoads(t *testing.T) {
	a, b := serviceHash(t, baseWeb), serviceHash(t, baseWeb)
	if a != b || len(a) != 64 {
		t.Fatalf("hashes differ or malformed: %q %q", a, b)
	}
}

// Spelling the same service differently must not change its hash.
func TestHashEquivalentSpellings(t *testing.T) {
	base := serviceHash(t, baseWeb)
	for name, compose := range map[string]string{
		"reordered keys and lists": `
services:
  db:
    image: postgres
  web:
    labels: {y: "2", x: "1"}
    cap_add: [SYS_TIME, NET_ADMIN]
    environment: {B: "2", A: "1"}
    ports: ["8443:443", "8080:80"]
    image: nginx:1.27
`,
		"env list form, long port syntax, defaults spelled out": `
services:
  web:
    image: nginx:1.27
    ports:
      - target: 443
        published: "8443"
        protocol: tcp
      - "8080:80/tcp"
    environment: ["A=1", "B=2"]
    cap_add: [NET_ADMIN, SYS_TIME, NET_ADMIN]
    labels: ["x=1", "y=2"]
    restart: "no"
    stop_grace_period: 10s
    networks: [default]
  db:
    image: postgres
`,
		"rollout, replicas and depends_on are not hashed": `
services:
  web:
    image: nginx:1.27
    ports: ["8080:80", "8443:443"]
    environment: {A: "1", B: "2"}
    cap_add: [NET_ADMIN, SYS_TIME]
    labels: {x: "1", y: "2"}
    depends_on: [db]
    deploy:
      replicas: 0
      update_config: {parallelism: 2, order: start-first}
      rollback_config: {parallelism: 3}
    x-fleetd: {readiness: 30s}
  db:
    image: postgres
`,
	} {
		if got := serviceHash(t, compose); got != base {
			t.Errorf("%s: hash changed", name)
		}
	}
}

// Changing any container-relevant field must change the hash.
func TestHashChangesWithSpec(t *testing.T) {
	base := serviceHash(t, "services:\n  web:\n    image: nginx\n")
	for _, field := range []string{
		"image: nginx:2",
		"command: [serve]",
		"entrypoint: [/init]",
		"environment: {A: b}",
		"labels: {a: b}",
		"user: '1000'",
		"working_dir: /app",
		"hostname: web1",
		"domainname: example.com",
		"ports: ['80']",
		"expose: ['80']",
		"volumes: [/data]",
		"network_mode: host",
		`healthcheck: {test: [CMD, "true"]}`,
		"restart: always",
		"mem_limit: 1g",
		"cpus: 0.5",
		"cpu_shares: 100",
		"pids_limit: 10",
		"stop_signal: SIGINT",
		"stop_grace_period: 1m",
		"init: true",
		"privileged: true",
		"read_only: true",
		"tty: true",
		"stdin_open: true",
		"cap_add: [NET_ADMIN]",
		"cap_drop: [ALL]",
		"dns: [1.1.1.1]",
		"dns_search: [example.com]",
		"extra_hosts: ['a:1.2.3.4']",
		"security_opt: ['no-new-privileges:true']",
		"tmpfs: [/tmp]",
		"devices: ['/dev/fuse']",
		"group_add: [video]",
		"sysctls: {net.core.somaxconn: '1024'}",
		"ulimits: {nofile: 1024}",
		"logging: {driver: local}",
		"shm_size: 64m",
		"container_name: web",
	} {
		compose := "services:\n  web:\n    image: nginx\n    " + field + "\n"
		if field == "image: nginx:2" {
			compose = "services:\n  web:\n    " + field + "\n"
		}
		if got := serviceHash(t, compose); got == base {
			t.Errorf("%s: hash unchanged", field)
		}
	}
}

func TestHashChangesWithSecretContent(t *testing.T) {
	compose := "services:\n  web:\n    image: nginx\n    secrets: [s]\nsecrets:\n  s: {file: ./s.txt}\n"
	a := serviceHash(t, compose, "f/s.txt", "one")
	b := serviceHash(t, compose, "f/s.txt", "two")
	if a == b {
		t.Fatal("secret content change did not change the hash")
	}
}

func TestHashIndependentOfCheckoutPath(t *testing.T) {
	compose := "services:\n  web:\n    image: nginx\n    volumes: [./conf:/conf]\n"
	a := serviceHash(t, compose, "f/conf/x", "1")
	b := serviceHash(t, compose, "f/conf/x", "1")
	if a != b {
		t.Fatal("hash depends on the checkout directory")
	}
}

func TestBuildContextHash(t *testing.T) {
	compose := "services:\n  web:\n    build: ./src\n"
	load := func(files ...string) string {
		t.Helper()
		m := map[string]string{
			"f/compose.yaml":      compose,
			"f/src/Dockerfile":    "FROM alpine\n",
			"f/src/.dockerignore": "*.log\n",
		}
		for i := 0; i+1 < len(files); i += 2 {
			m[files[i]] = files[i+1]
		}
		s := loadOne(t, m)[0].Services[0]
		if !strings.HasPrefix(s.Spec.Image, "f-web:ctx-") || s.Spec.Image != "f-web:ctx-"+s.Build.ContextHash[:12] {
			t.Fatalf("image %q does not carry the context hash %q", s.Spec.Image, s.Build.ContextHash)
		}
		return s.Build.ContextHash
	}
	base := load("f/src/app.go", "package main")
	if got := load("f/src/app.go", "package main", "f/src/debug.log", "x"); got != base {
		t.Error("an ignored file changed the context hash")
	}
	if got := load("f/src/app.go", "package main // v2"); got == base {
		t.Error("a source change did not change the context hash")
	}
	if got := load("f/src/app.go", "package main", "f/src/Dockerfile", "FROM debian\n"); got == base {
		t.Error("a Dockerfile change did not change the context hash")
	}
}

// The agent's process environment must not reach interpolation.
func TestLoadIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("FLEETD_TEST_LEAK", "leaked")
	fleets := loadOne(t, map[string]string{"f/compose.yaml": `
services:
  web:
    image: nginx
    environment:
      V: ${FLEETD_TEST_LEAK:-absent}
      FLEETD_TEST_LEAK:
`})
	env := fleets[0].Services[0].Spec.Environment
	if env["V"] != "absent" {
		t.Errorf("V = %q, want absent", env["V"])
	}
	if v, ok := env["FLEETD_TEST_LEAK"]; ok {
		t.Errorf("FLEETD_TEST_LEAK = %q leaked from the process environment", v)
	}
}

func TestLoadSizeLimits(t *testing.T) {
	root := t.TempDir()
	big := "services:\n  web:\n    image: nginx\n" + "# " + strings.Repeat("x", maxComposeFileSize) + "\n"
	writeFile(t, root, "big/compose.yaml", []byte(big))
	writeFile(t, root, "env/compose.yaml", []byte("services:\n  web:\n    image: nginx\n    env_file: big.env\n"))
	writeFile(t, root, "env/big.env", []byte("A="+strings.Repeat("x", maxDataFileSize)+"\n"))
	writeFile(t, root, "dotenv/compose.yaml", []byte("services:\n  web:\n    image: nginx\n"))
	writeFile(t, root, "dotenv/.env", []byte("A="+strings.Repeat("x", maxDataFileSize)+"\n"))
	writeFile(t, root, "ok/compose.yaml", []byte("services:\n  web:\n    image: nginx\n"))
	fleets, err := Load(t.Context(), root, Host{Name: "h"})
	if len(fleets) != 1 || fleets[0].Name != "ok" {
		t.Errorf("fleets = %v, want only ok", fleets)
	}
	for _, want := range []string{
		"big/compose.yaml: fleet big: compose.yaml: file too large",
		"fleet env: service web: env_file.0: env/big.env: file too large",
		"dotenv/.env: fleet dotenv: .env: file too large",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadCanceled(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f/compose.yaml", []byte("services: {web: {image: x}}\n"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Load(ctx, root, Host{}); err == nil {
		t.Fatal("Load on a canceled context succeeded")
	}
}

func TestLoadMissingRoot(t *testing.T) {
	_, err := Load(t.Context(), filepath.Join(t.TempDir(), "nope"), Host{})
	var pl ProblemList
	if err == nil || errors.As(err, &pl) {
		t.Fatalf("err = %v, want a plain error", err)
	}
}
