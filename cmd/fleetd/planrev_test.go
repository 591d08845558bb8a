package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkPlanRevisions times a whole plan between two revisions, as
// `fleetd plan --base/--head` runs it: export both trees from a local Git
// repository, load them for every host, review. The repository holds 200
// fleets of three services; 10 of them change between the commits (image
// bumps, environment changes, scaling).
func BenchmarkPlanRevisions(b *testing.B) {
	repo := generatedRepo(b, 200, 10)
	for _, hosts := range []int{1, 3} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			l := &liveFlags{repo: repo, format: "text"}
			rf := &revFlags{base: "HEAD~1", head: "HEAD", path: "fleets"}
			if hosts == 1 {
				l.hostFlags = hostFlags{name: "web-1", labels: []string{"role=web"}}
			} else {
				rf.inventory = "inventory.yaml"
			}
			for b.Loop() {
				rv, err := planRevisions(b.Context(), l, rf, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if got := changedFleets(rv.Hosts[0].Fleets); got != 10 || len(rv.Hosts) != hosts {
					b.Fatalf("%d hosts, %d fleets changed on the first, want %d and 10", len(rv.Hosts), got, hosts)
				}
			}
		})
	}
}

func changedFleets[T any](fs []T) int { return len(fs) }

// generatedRepo commits n fleets, then changes `changed` of them.
func generatedRepo(b *testing.B, n, changed int) string {
	b.Helper()
	dir := b.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, data string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("inventory.yaml", "hosts:\n  - {name: web-1, labels: {role: web}}\n  - {name: web-2, labels: {role: web}}\n  - {name: db-1, labels: {role: db}}\n")
	for i := range n {
		write(fmt.Sprintf("fleets/f%03d/compose.yaml", i), benchFleet(i, "1.0", "info", 2))
	}
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	for i := range changed {
		version, level, replicas := "1.0", "info", 2
		switch i % 3 {
		case 0:
			version = "1.1"
		case 1:
			level = "debug"
		case 2:
			replicas = 3
		}
		write(fmt.Sprintf("fleets/f%03d/compose.yaml", i*(n/changed)), benchFleet(i*(n/changed), version, level, replicas))
	}
	git("commit", "-q", "-am", "head")
	return dir
}

func benchFleet(i int, version, level string, replicas int) string {
	return strings.NewReplacer("$I", fmt.Sprint(i), "$V", version, "$L", level, "$R", fmt.Sprint(replicas)).Replace(`name: f$I
services:
  web:
    image: registry.example.com/web-$I:$V
    environment:
      LOG_LEVEL: $L
      DB_URL: postgres://db/f$I
    ports: ["127.0.0.1::8080"]
    depends_on: [cache]
    healthcheck:
      test: ["CMD", "/web", "-health"]
      interval: 5s
    deploy:
      replicas: $R
      update_config: {parallelism: 1, order: start-first}
  worker:
    image: registry.example.com/worker-$I:$V
    command: ["work", "--queue", "q$I"]
  cache:
    image: redis:7.2
    volumes: [cache:/data]
volumes:
  cache:
`)
}
