package fleets

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/sync/errgroup"
)

// benchFleet is a realistic five-service fleet: web, api with a build-free
// image, worker, postgres-like db with a volume and healthcheck, cache.
const benchFleet = `
services:
  web:
    image: nginx:1.27
    ports: ["%d:80"]
    depends_on:
      api: {condition: service_healthy}
    networks: [default, front]
  api:
    image: myorg/api:${TAG}
    environment: {DB_HOST: db, CACHE: cache, LOG_LEVEL: info}
    healthcheck: {test: [CMD, curl, -f, http://localhost/health], interval: 10s}
    deploy: {replicas: 2, resources: {limits: {memory: 256M, cpus: "0.5"}}}
  worker:
    image: myorg/api:${TAG}
    command: [worker]
    depends_on: [db, cache]
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
    healthcheck: {test: pg_isready, interval: 5s}
  cache:
    image: redis:7
networks:
  front: {}
volumes:
  data: {}
`

func benchRepo(b *testing.B, fleets int) string {
	root := b.TempDir()
	for i := range fleets {
		dir := filepath.Join(root, fmt.Sprintf("fleet%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		compose := fmt.Sprintf(benchFleet, 10000+i)
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TAG=1.0\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkLoad loads repositories of 50, 100 and 200 fleets of 5 services;
// the time per op should grow linearly with the fleet count.
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{50, 100, 200} {
		b.Run(fmt.Sprintf("fleets=%d", n), func(b *testing.B) {
			root := benchRepo(b, n)
			host := Host{Name: "h"}
			b.ReportAllocs()
			for b.Loop() {
				fleets, err := Load(b.Context(), root, host)
				if err != nil || len(fleets) != n {
					b.Fatalf("Load: %d fleets, %v", len(fleets), err)
				}
			}
		})
	}
}

// BenchmarkLoadVsCompose loads 1,000 services (200 fleets of 5) with
// fleetd and with compose-go alone (the same files, .env and project
// names, the same number of workers) and reports fleetd's time as a ratio
// of compose-go's: what fleetd adds (conversion, validation, confinement,
// the checks across fleets).
func BenchmarkLoadVsCompose(b *testing.B) {
	root := benchRepo(b, 200)
	host := Host{Name: "h"}
	dirs, err := os.ReadDir(root)
	if err != nil {
		b.Fatal(err)
	}
	composeOnly := func() {
		g := errgroup.Group{}
		g.SetLimit(runtime.GOMAXPROCS(0))
		for _, d := range dirs {
			g.Go(func() error {
				dir := filepath.Join(root, d.Name())
				env, err := dotenv.Read(filepath.Join(dir, ".env"))
				if err != nil {
					return err
				}
				_, err = loader.LoadWithContext(b.Context(), types.ConfigDetails{
					WorkingDir:  dir,
					ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
					Environment: env,
				}, func(o *loader.Options) { o.SetProjectName(d.Name(), true) })
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	var fleetd, compose time.Duration
	for b.Loop() {
		start := time.Now()
		composeOnly()
		compose += time.Since(start)
		start = time.Now()
		fleets, err := Load(b.Context(), root, host)
		if err != nil || len(fleets) != 200 {
			b.Fatalf("Load: %d fleets, %v", len(fleets), err)
		}
		fleetd += time.Since(start)
	}
	b.ReportMetric(float64(compose.Milliseconds())/float64(b.N), "ms-compose-go/op")
	b.ReportMetric(float64(fleetd.Milliseconds())/float64(b.N), "ms-fleetd/op")
	b.ReportMetric(float64(fleetd)/float64(compose), "ratio")
}
