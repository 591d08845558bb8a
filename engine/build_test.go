package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// probeSource is a static program a build RUNs in a FROM scratch stage
// (exec form: there is no shell). It records into /out what the build
// step saw: the sha256 of the secret named by its first argument (never
// the secret itself), /etc/hosts, the size of /dev/shm, the network
// interfaces and the GREETING build arg.
const probeSource = `package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
)

func main() {
	must(os.MkdirAll("/out", 0o755))
	if len(os.Args) > 1 {
		data, err := os.ReadFile("/run/secrets/" + os.Args[1])
		must(err)
		fmt.Println("probe: read the secret")
		write("secret.sha", fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
	}
	hosts, _ := os.ReadFile("/etc/hosts")
	write("hosts", string(hosts))
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil {
		write("shm", fmt.Sprint(uint64(st.Blocks)*uint64(st.Bsize)))
	}
	ifaces, _ := net.Interfaces()
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	write("interfaces", strings.Join(names, " "))
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	write("resolv.conf", string(resolv))
	write("greeting", os.Getenv("GREETING"))
}

func write(name, data string) { must(os.WriteFile("/out/"+name, []byte(data), 0o644)) }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}
`

var probe = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "fleetd-buildprobe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, data := range map[string]string{"main.go": probeSource, "go.mod": "module probe\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", "probe", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.New("build the probe: " + err.Error() + ": " + string(out))
	}
	return os.ReadFile(filepath.Join(dir, "probe"))
})

// probeContext writes a build context: the probe, and a Dockerfile whose
// "probe" stage RUNs it (reading the secret "token" when secret is set)
// and whose "final" stage keeps only what it recorded and labels it with
// GREETING; a later stage, "broken", fails if it is ever built, so a
// build that succeeds stopped at its target.
func probeContext(t *testing.T, secret bool) string {
	t.Helper()
	bin, err := probe()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "probe"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The run's ID makes the RUN step this process's own: not a cache hit
	// of an earlier run, whose output would not be streamed.
	writeFile(t, dir, "run-id", dockertest.RunID())
	run := `RUN ["/probe"]`
	if secret {
		run = `RUN --mount=type=secret,id=token ["/probe", "token"]`
	}
	// The run's label first in each stage: the classic builder leaves the
	// images of the stages before the last one behind, untagged, and the
	// sweep removes images by this label.
	label := "LABEL " + dockertest.LabelTestRun + "=" + dockertest.RunID()
	writeFile(t, dir, "Dockerfile", `FROM scratch AS probe
`+label+`
ARG GREETING
COPY probe run-id /
`+run+`
FROM scratch AS final
`+label+`
ARG GREETING
COPY --from=probe /out/ /out/
LABEL greeting=$GREETING
FROM scratch AS broken
COPY missing.txt /
`)
	return dir
}

// pruneBuildCache removes, when the test ends, the BuildKit cache records
// made since it started that no build uses: they carry no name or label
// for dockertest's sweep to find them by. (Sibling tests' records may go
// too, when unused: the cache is only a cache.)
func pruneBuildCache(t *testing.T, cli *client.Client) {
	t.Helper()
	before, err := cacheIDs(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A record goes only once its children have: prune in passes.
		for range 3 {
			after, err := cacheIDs(ctx, cli)
			if err != nil {
				t.Errorf("build cache: %v", err)
				return
			}
			deleted := 0
			for id := range after {
				if before[id] {
					continue
				}
				// The engine takes one value per filter key.
				rep, err := cli.BuildCachePrune(ctx, build.CachePruneOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
				if err != nil {
					t.Errorf("prune build cache %s: %v", id, err)
					return
				}
				deleted += len(rep.CachesDeleted)
			}
			if deleted == 0 {
				return
			}
		}
	})
}

// diskUsage serializes this process's disk usage calls: the engine runs
// one at a time and refuses the others.
var diskUsage sync.Mutex

func cacheIDs(ctx context.Context, cli *client.Client) (map[string]bool, error) {
	diskUsage.Lock()
	defer diskUsage.Unlock()
	var du types.DiskUsage
	var err error
	for range 20 { // another process's call may be running
		du, err = cli.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.BuildCacheObject}})
		if err == nil || !strings.Contains(err.Error(), "already running") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("disk usage: %w", err)
	}
	ids := map[string]bool{}
	for _, r := range du.BuildCache {
		ids[r.ID] = true
	}
	return ids, nil
}

// buildLog collects the lines a build hands out.
type buildLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *buildLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *buildLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// has reports whether some line contains every one of parts.
func (l *buildLog) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, func(line string) bool {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				return false
			}
		}
		return true
	})
}

// imageFiles returns the files under dir of image ref, read through a
// container that is created and never started (a FROM scratch image has
// nothing to run).
func imageFiles(t *testing.T, cli *client.Client, ref, dir string) map[string]string {
	t.Helper()
	ctx := t.Context()
	ctr, err := cli.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: []string{"/none"}}, nil, nil, nil, dockertest.Name(t, "files-"+t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cli.ContainerRemove(context.Background(), ctr.ID, container.RemoveOptions{Force: true}) }()
	rc, _, err := cli.CopyFromContainer(ctx, ctr.ID, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(hdr.Name)] = string(data)
	}
}

// imageHolds reports whether the saved image (its layers, config and
// history, as docker save writes them) contains s.
func imageHolds(t *testing.T, cli *client.Client, ref, s string) bool {
	t.Helper()
	rc, err := cli.ImageSave(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, []byte(s))
}

const secretText = "fleetd-build-secret-4f1e"

func probeBuild(t *testing.T, dir string) fleets.Build {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, filepath.Dir(secretFile), "token", secretText)
	return fleets.Build{
		Context: dir, ContextDir: "app", Target: "final",
		Args:       map[string]string{"GREETING": "hi"},
		Labels:     map[string]string{"org.example.team": "shop"},
		ExtraHosts: []string{"db.internal:10.1.2.3"},
		Network:    "none",
		Secrets:    []fleets.BuildSecret{{ID: "token", Name: "token", Digest: digest(secretText), Source: secretFile}},
	}
}

// A BuildKit build takes the build arg, labels, target, extra hosts,
// network and a secret that RUN --mount=type=secret reads and the image
// does not keep; its steps are streamed line by line.
func TestBuildKit(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	ctx := t.Context()
	b := probeBuild(t, probeContext(t, true))
	ref := dockertest.Name(t, "kit") + ":1"
	var log buildLog
	id, err := d.BuildImage(ctx, b, ref, log.add)
	t.Logf("build log:\n%s", &log)
	if err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	labels := img.Config.Labels
	if img.ID != id || labels[fleets.LabelManaged] != "true" || labels["org.example.team"] != "shop" || labels["greeting"] != "hi" {
		t.Errorf("built %s: image %s, labels %v", id, img.ID, labels)
	}
	files := imageFiles(t, cli, ref, "/out")
	if files["secret.sha"] != digest(secretText) {
		t.Errorf("the RUN step read the secret as %q, want %s", files["secret.sha"], digest(secretText))
	}
	if files["greeting"] != "hi" || !strings.Contains(files["hosts"], "10.1.2.3\tdb.internal") && !strings.Contains(files["hosts"], "10.1.2.3 db.internal") {
		t.Errorf("the RUN step saw GREETING=%q and /etc/hosts %q", files["greeting"], files["hosts"])
	}
	if files["interfaces"] != "lo" {
		t.Errorf("the RUN step saw the network interfaces %q, want lo (network none)", files["interfaces"])
	}
	if imageHolds(t, cli, ref, secretText) {
		t.Error("the image holds the build secret")
	}
	if !log.has("#", "[probe 2/2] RUN --mount=type=secret,id=token") || !log.has("#", "DONE") || log.has("classic builder") {
		t.Error("the log lacks BuildKit's numbered steps")
	}
	if log.has(secretText) || !log.has("probe: read the secret") {
		t.Error("the log shows the secret, or lacks the RUN step's output")
	}
}

// A secret that a RUN prints is redacted from the streamed log.
func TestBuildKitRedactsSecrets(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	dir := t.TempDir()
	bin, err := probe()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A missing secret makes the probe fail, printing the path it
	// tried; the secret's ID is the secret's contents here.
	writeFile(t, dir, "Dockerfile", "FROM scratch\nCOPY probe /probe\nRUN [\"/probe\", \""+secretText+"\"]\n")
	b := fleets.Build{Context: dir, ContextDir: "leak", Secrets: []fleets.BuildSecret{{ID: "token", Name: "token", Digest: digest(secretText), Content: fleets.SecretBytes(secretText)}}}
	var log buildLog
	_, err = d.BuildImage(t.Context(), b, dockertest.Name(t, "leak")+":1", log.add)
	t.Logf("build log:\n%s\nerr: %v", &log, err)
	if err == nil {
		t.Fatal("the build succeeded, want the probe's failure")
	}
	if strings.Contains(err.Error(), secretText) || log.has(secretText) {
		t.Errorf("secret shown: err %v", err)
	}
	if !log.has("[redacted]") {
		t.Error("no line was redacted")
	}
}

// A BuildKit build for another platform (FROM scratch and COPY: nothing
// runs) makes an image of that platform.
func TestBuildKitPlatform(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
	writeFile(t, dir, "hello.txt", "hello")
	arch := "arm64"
	if runtime.GOARCH == "arm64" {
		arch = "amd64"
	}
	ref := dockertest.Name(t, "platform") + ":1"
	if _, err := d.BuildImage(t.Context(), fleets.Build{Context: dir, ContextDir: "app", Platform: "linux/" + arch}, ref, nil); err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Architecture != arch {
		t.Errorf("built for %s/%s, want linux/%s", img.Os, img.Architecture, arch)
	}
}

// cache_from imports BuildKit's inline cache from an image in a
// registry.
func TestBuildKitCacheFrom(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	ctx := t.Context()
	registry := dockertest.StartRegistry(t)
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
	writeFile(t, dir, "hello.txt", "hello "+dockertest.RunID())
	b := fleets.Build{Context: dir, ContextDir: "app", Args: map[string]string{"BUILDKIT_INLINE_CACHE": "1"}}
	id, err := d.BuildImage(ctx, b, dockertest.Name(t, "cache")+":seed", nil)
	if err != nil {
		t.Fatal(err)
	}
	cache := dockertest.Push(t, cli, id, registry, dockertest.Name(t, "cache")+":main")

	b.CacheFrom = []string{cache}
	var log buildLog
	if _, err := d.BuildImage(ctx, b, dockertest.Name(t, "cache")+":2", log.add); err != nil {
		t.Fatal(err)
	}
	t.Logf("build log:\n%s", &log)
	if !log.has("importing cache manifest from " + cache) {
		t.Errorf("the build did not import the cache from %s", cache)
	}
}

// With BuildKit turned off (DOCKER_BUILDKIT=0, as the Docker CLI reads
// it) the classic builder builds the same options but secrets and ssh,
// which are refused naming the field; its output is streamed too.
func TestBuildClassicFallback(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Setenv("DOCKER_BUILDKIT", "0") // not parallel: the environment is the process's
	ctx := t.Context()
	b := probeBuild(t, probeContext(t, false))
	b.Secrets, b.Network = nil, "" // the classic builder's RUN has no --mount
	b.ShmSize = 96 << 20
	ref := dockertest.Name(t, "classic") + ":1"
	var log buildLog
	id, err := d.BuildImage(ctx, b, ref, log.add)
	t.Logf("build log:\n%s", &log)
	if err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	labels := img.Config.Labels
	if img.ID != id || labels[fleets.LabelManaged] != "true" || labels["org.example.team"] != "shop" || labels["greeting"] != "hi" {
		t.Errorf("built %s: image %s, labels %v", id, img.ID, labels)
	}
	files := imageFiles(t, cli, ref, "/out")
	if files["greeting"] != "hi" || !strings.Contains(files["hosts"], "db.internal") || files["shm"] != "100663296" {
		t.Errorf("the RUN step saw GREETING=%q, /etc/hosts %q, /dev/shm of %s bytes", files["greeting"], files["hosts"], files["shm"])
	}
	if !log.has("classic builder: DOCKER_BUILDKIT=0") || !log.has("Step 5/", "RUN") {
		t.Error("the log lacks the classic builder's steps")
	}

	b.CacheFrom = []string{ref}
	log = buildLog{}
	if _, err := d.BuildImage(ctx, b, dockertest.Name(t, "classic")+":2", log.add); err != nil {
		t.Fatal(err)
	}
	if !log.has("Using cache") {
		t.Errorf("cache_from %s: the classic builder used no cache:\n%s", ref, &log)
	}

	for field, nb := range map[string]fleets.Build{
		"build.secrets": {Context: b.Context, ContextDir: "app", Secrets: probeBuild(t, b.Context).Secrets},
		"build.ssh":     {Context: b.Context, ContextDir: "app", SSH: []fleets.BuildSSH{{ID: "default"}}},
	} {
		_, err := d.BuildImage(ctx, nb, dockertest.Name(t, "refused")+":1", nil)
		if err == nil || !strings.Contains(err.Error(), field+" needs BuildKit") || fault.Of(err).Class != fault.Permanent {
			t.Errorf("%s with the classic builder: err = %v, want a permanent error naming the field", field, err)
		}
	}
}

// shm_size sizes the RUN steps' /dev/shm. The engine's BuildKit takes it
// from API 1.42 on; an older engine builds such a build with the classic
// builder, and refuses it when it needs BuildKit too.
func TestBuildShmSize(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	ctx := t.Context()
	b := fleets.Build{Context: probeContext(t, false), ContextDir: "app", Target: "final", ShmSize: 96 << 20}
	ref := dockertest.Name(t, "shm") + ":1"
	var log buildLog
	_, err := d.BuildImage(ctx, b, ref, log.add)
	t.Logf("build log:\n%s", &log)
	if err != nil {
		t.Fatal(err)
	}
	if got := imageFiles(t, cli, ref, "/out")["shm"]; got != "100663296" {
		t.Errorf("the RUN step saw /dev/shm of %s bytes, want 100663296", got)
	}
	old := !versions.GreaterThanOrEqualTo(d.APIVersion(), "1.42")
	if classic := log.has("classic builder: build.shm_size"); classic != old {
		t.Errorf("API %s: built with the classic builder = %v, want %v", d.APIVersion(), classic, old)
	}
	if !old {
		return
	}
	b.Secrets = probeBuild(t, b.Context).Secrets
	_, err = d.BuildImage(ctx, b, ref, nil)
	if err == nil || !strings.Contains(err.Error(), "build.secrets needs BuildKit") || !strings.Contains(err.Error(), "build.shm_size") {
		t.Errorf("shm_size and secrets on API %s: err = %v, want one naming both", d.APIVersion(), err)
	}
}

// A network BuildKit does not build on (any but default, host and none)
// is the classic builder's, which runs the RUN steps on it; with a secret
// too, the build is refused naming both.
func TestBuildNetwork(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	ctx := t.Context()
	net := dockertest.Name(t, "buildnet")
	if _, err := cli.NetworkCreate(ctx, net, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The arg keeps the classic builder from reusing another test's RUN
	// step: its cache does not tell networks apart.
	b := fleets.Build{Context: probeContext(t, false), ContextDir: "app", Target: "final", Network: net,
		Args: map[string]string{"GREETING": "net"}}
	ref := dockertest.Name(t, "net") + ":1"
	var log buildLog
	_, err := d.BuildImage(ctx, b, ref, log.add)
	t.Logf("build log:\n%s", &log)
	if err != nil {
		t.Fatal(err)
	}
	if !log.has("classic builder: build.network") {
		t.Error("not built by the classic builder")
	}
	// A user-defined network answers DNS from the engine's resolver.
	if got := imageFiles(t, cli, ref, "/out")["resolv.conf"]; !strings.Contains(got, "127.0.0.11") {
		t.Errorf("the RUN step's /etc/resolv.conf is %q, want the engine's resolver of %s", got, net)
	}
	b.Secrets = probeBuild(t, b.Context).Secrets
	_, err = d.BuildImage(ctx, b, ref, nil)
	if err == nil || !strings.Contains(err.Error(), "build.secrets needs BuildKit") || !strings.Contains(err.Error(), "build.network") {
		t.Errorf("network and secrets: err = %v, want one naming both", err)
	}
}

// An engine whose /session endpoint cannot be reached (a proxy in
// front of the socket refuses the upgrade) builds with the classic
// builder.
func TestBuildSessionRefused(t *testing.T) {
	cli, _ := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	sock := refusingProxy(t, cli)
	d, err := engine.New(t.Context(), engine.WithHost("unix://"+sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
	writeFile(t, dir, "hello.txt", "hello")
	var log buildLog
	if _, err := d.BuildImage(t.Context(), fleets.Build{Context: dir, ContextDir: "app"}, dockertest.Name(t, "nosession")+":1", log.add); err != nil {
		t.Fatal(err)
	}
	if !log.has("classic builder: no BuildKit session") || !log.has("Step 2/3 : COPY hello.txt") {
		t.Errorf("log:\n%s\nwant the classic builder, for want of a session", &log)
	}
}

// refusingProxy serves the engine's API on a socket of its own, refusing
// /session as a socket proxy may.
func refusingProxy(t *testing.T, cli *client.Client) string {
	t.Helper()
	target, err := url.Parse("http://docker")
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	proxy.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return cli.Dialer()(ctx)
	}}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/session") {
			http.Error(w, "session refused by the proxy", http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

func digest(s string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))
}
