package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

const (
	// LabelTestRun marks every object this package creates with the RunID;
	// Cleanup removes whatever carries it.
	LabelTestRun = "io.fleetd.test-run"
	// LabelFleet is fleetd's fleet label; Cleanup also removes objects whose
	// fleet name starts with the RunID, i.e. fleets named with Name.
	LabelFleet = "io.fleetd.fleet"

	testappPkg   = "github.com/fleetd/fleetd/engine/dockertest/testapp"
	buildTimeout = 3 * time.Minute
)

// validVersion is a Docker tag that is also safe inside -ldflags.
var validVersion = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)

// testImage is one version's build, shared by every test in the process.
type testImage struct {
	once    sync.Once
	ref, id string
	err     error
}

// binaries caches the static testapp binary per version and architecture: a
// go build costs seconds, and it does not change within a process.
var binaries sync.Map // "<version>/<goarch>" -> func() ([]byte, error)

// TestImage returns the reference ("<RunID>-testapp:<version>") and ID of the
// test application image for version, building it on first use in the process
// and sharing it afterwards. The image is FROM scratch with the static testapp
// binary as its ENTRYPOINT, an exec-form HEALTHCHECK (interval 1s, timeout 3s,
// retries 2), EXPOSE 8080 and the label io.fleetd.test-run=<RunID>; version is
// baked into the binary as its default VERSION, so two versions have two IDs.
// The probe's timeout is 3s, not 1s: on a loaded two-CPU machine the exec of
// one probe alone took over a second and turned a healthy replica unhealthy.
//
// TestImage registers Cleanup for t, so the image is removed once no test
// that uses it is still running.
func TestImage(t testing.TB, cli *client.Client, version string) (ref, id string) {
	t.Helper()
	if !validVersion.MatchString(version) {
		t.Fatalf("dockertest.TestImage: version %q is not a valid image tag", version)
	}
	Cleanup(t, cli)

	state.mu.Lock()
	if state.images == nil {
		state.images = make(map[string]*testImage)
	}
	img, ok := state.images[version]
	if !ok {
		img = &testImage{}
		state.images[version] = img
	}
	state.mu.Unlock()

	img.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		img.ref = RunID() + "-testapp:" + version
		img.id, img.err = buildTestImage(ctx, cli, img.ref, version)
	})
	if img.err != nil {
		t.Fatalf("dockertest.TestImage(%s): %v", version, img.err)
	}
	return img.ref, img.id
}

func buildTestImage(ctx context.Context, cli *client.Client, ref, version string) (string, error) {
	srv, err := cli.ServerVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	bin, err := testappBinary(version, srv.Arch)
	if err != nil {
		return "", err
	}
	buildCtx, err := contextTar(dockerfile(), bin)
	if err != nil {
		return "", err
	}
	resp, err := cli.ImageBuild(ctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{ref},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // BuildKit over the API needs a session
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	defer resp.Body.Close()
	// The build endpoint answers 200 even when the build fails; the error
	// is a message in the stream.
	if err := readStream(resp.Body); err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	inspect, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspect built image %s: %w", ref, err)
	}
	return inspect.ID, nil
}

// dockerfile puts the run's label first: layers cached by the classic
// builder then never chain onto another test process's images, whose
// concurrent removal would otherwise break this process's parent chain.
func dockerfile() []byte {
	return fmt.Appendf(nil, `FROM scratch
LABEL %s=%s
COPY testapp /testapp
EXPOSE 8080
HEALTHCHECK --interval=1s --timeout=3s --retries=2 CMD ["/testapp", "-health"]
ENTRYPOINT ["/testapp"]
`, LabelTestRun, RunID())
}

func testappBinary(version, goarch string) ([]byte, error) {
	f, _ := binaries.LoadOrStore(version+"/"+goarch, sync.OnceValues(func() ([]byte, error) {
		return goBuild(version, goarch)
	}))
	return f.(func() ([]byte, error))()
}

// goBuild compiles testapp statically for the daemon's architecture.
func goBuild(version, goarch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "dockertest-testapp-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "testapp")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.buildVersion="+version, "-o", out, testappPkg)
	cmd.Dir = sourceDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build testapp: %w\n%s", err, msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("read testapp binary: %w", err)
	}
	return bin, nil
}

// sourceDir is a directory inside this module, so that "go build" resolves
// testappPkg even when the test binary runs from elsewhere; with -trimpath
// the recorded path is not absolute and the working directory must do.
func sourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Dir(file)
}

func contextTar(dockerfile, bin []byte) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, dockerfile},
		{"testapp", 0o755, bin},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("tar: %w", err)
	}
	return &buf, nil
}
