package dockertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory" // storage driver "inmemory"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/sirupsen/logrus"
)

// emptyAuth is base64("{}"): the engine rejects a push without an
// X-Registry-Auth header, and the test registry needs no credentials.
const emptyAuth = "e30="

const pushTimeout = 2 * time.Minute

// quietRegistry silences the registry's per-request logging, which goes
// through the process-wide logrus logger and reports every expected 404 (the
// engine probes for blobs before pushing them) as an error. Real failures
// reach the test through the engine's push and pull streams.
var quietRegistry sync.Once

// StartRegistry starts an in-process registry with in-memory storage on
// 127.0.0.1 and a free port, stops it when the test ends, and returns its
// "127.0.0.1:PORT". The engine treats 127.0.0.0/8 registries as insecure
// (plain HTTP) by default, so no daemon configuration is needed; this relies
// on dockerd sharing the host's network namespace (not rootless Docker).
func StartRegistry(t testing.TB) string {
	t.Helper()
	return StartRegistryOn(t, "127.0.0.1")
}

// StartRegistryOn is StartRegistry listening on host: an engine's RootAddr,
// for a registry every engine of a test swarm reaches (linked engines take
// it as plain HTTP).
func StartRegistryOn(t testing.TB, host string) string {
	t.Helper()
	return StartRegistryWith(t, host, nil)
}

// StartRegistryWith is StartRegistryOn with the registry's handler wrapped
// by wrap (nil: none), e.g. to count the requests it serves.
func StartRegistryWith(t testing.TB, host string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	quietRegistry.Do(func() { logrus.SetLevel(logrus.FatalLevel) })

	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("dockertest: registry listen: %v", err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory":    configuration.Parameters{},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = RunID()
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	var handler http.Handler = app
	if wrap != nil {
		handler = wrap(app)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("dockertest: registry: %v", err)
		}
		_ = app.Shutdown()
		cancel()
	})
	return ln.Addr().String()
}

// Push tags the local image imageID as <registry>/<repoTag> and pushes it,
// returning that reference. Name repoTag with Name so that Cleanup removes
// the local tag, e.g. Push(t, cli, id, reg, Name(t, "app")+":v1").
func Push(t testing.TB, cli *client.Client, imageID, registry, repoTag string) string {
	t.Helper()
	ref := registry + "/" + repoTag
	ctx, cancel := context.WithTimeout(t.Context(), pushTimeout)
	defer cancel()
	if err := cli.ImageTag(ctx, imageID, ref); err != nil {
		t.Fatalf("dockertest: tag %s as %s: %v", imageID, ref, err)
	}
	if err := push(ctx, cli, ref); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return ref
}

// Pull pulls ref (normally from StartRegistry) and fails the test if the
// engine reports an error in the pull stream.
func Pull(t testing.TB, cli *client.Client, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), pushTimeout)
	defer cancel()
	rc, err := cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: emptyAuth})
	if err != nil {
		t.Fatalf("dockertest: pull %s: %v", ref, err)
	}
	defer rc.Close()
	if err := readStream(rc); err != nil {
		t.Fatalf("dockertest: pull %s: %v", ref, err)
	}
}

func push(ctx context.Context, cli *client.Client, ref string) error {
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: emptyAuth})
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	defer rc.Close()
	if err := readStream(rc); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
