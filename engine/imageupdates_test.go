package engine_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// registryCounter counts the requests a registry serves.
type registryCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	paths []string
}

func (c *registryCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		c.mu.Lock()
		c.paths = append(c.paths, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *registryCounter) since(i int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.paths[i:])
}

// TestCheckImage asks a loopback registry about a tag: in step, moved, a
// local build (no digest: not asked), a digest reference (not asked), an
// unreachable registry (an error, nothing pulled).
func TestCheckImage(t *testing.T) {
	cli, d := setup(t)
	ctx := t.Context()
	_, v1 := dockertest.TestImage(t, cli, "v1")
	_, v2 := dockertest.TestImage(t, cli, "v2")
	counter := &registryCounter{}
	reg := dockertest.StartRegistryWith(t, "127.0.0.1", counter.wrap)
	repo := dockertest.Name(t, "checked")
	ref := dockertest.Push(t, cli, v1, reg, repo+":1")
	digest1 := repoDigestOf(t, cli, ref)

	c := d.CheckImage(ctx, ref)
	if c.Err != nil || c.Running != digest1 || c.Remote != digest1 {
		t.Fatalf("in step: %+v, want running = remote = %s", c, digest1)
	}

	// The tag moves at the registry; the local tag stays on v1.
	dockertest.Push(t, cli, v2, reg, repo+":1")
	digest2 := repoDigestOf(t, cli, ref)
	if err := cli.ImageTag(ctx, v1, ref); err != nil {
		t.Fatal(err)
	}
	before := imageIDs(t, cli)
	d.ResetCalls()
	n := len(counter.since(0))
	c = d.CheckImage(ctx, ref)
	if c.Err != nil || c.Running != digest1 || c.Remote != digest2 {
		t.Fatalf("moved: %+v, want %s → %s", c, digest1, digest2)
	}
	asked := counter.since(n)
	t.Logf("registry requests for one image check: %d %v", len(asked), asked)
	// The engine reads the manifest and the image's config (for its
	// platform), never a layer: the config blob's digest is v2's ID.
	layer := func(p string) bool { return strings.Contains(p, "/blobs/") && !strings.HasSuffix(p, "/blobs/"+v2) }
	if len(asked) == 0 || slices.ContainsFunc(asked, layer) {
		t.Errorf("registry requests %v: want the manifest and config only, no layer", asked)
	}
	if calls := d.Calls(); calls["POST /images/create"] > 0 {
		t.Errorf("the check pulled: engine calls %v", calls)
	}
	if id := imageID(t, cli, ref); id != v1 || !slices.Equal(imageIDs(t, cli), before) {
		t.Errorf("the check changed the local images: %s now names %s", ref, id)
	}

	// A local build has no digest: the registry is not asked.
	local := dockertest.Name(t, "local") + ":1"
	if err := cli.ImageTag(ctx, v1, local); err != nil {
		t.Fatal(err)
	}
	n = len(counter.since(0))
	if c := d.CheckImage(ctx, local); c.Err != nil || c.Running != "" || c.Remote != "" {
		t.Errorf("local image: %+v, want nothing to compare", c)
	}
	pinned := reg + "/" + repo + "@" + digest1
	if c := d.CheckImage(ctx, pinned); c.Err != nil || c.Remote != "" {
		t.Errorf("digest reference: %+v, want it skipped", c)
	}
	if asked := counter.since(n); len(asked) != 0 {
		t.Errorf("skipped images asked the registry: %v", asked)
	}

	// Unreachable: a tag pulled from a registry that is gone since is an
	// error naming the image; the local image stays.
	var gone string
	t.Run("registry gone", func(t *testing.T) {
		other := dockertest.StartRegistry(t)
		gone = dockertest.Push(t, cli, v1, other, dockertest.Name(t, "gone")+":1")
	})
	c = d.CheckImage(ctx, gone)
	if c.Err == nil || !strings.Contains(c.Err.Error(), gone) || c.Running == "" || c.Remote != "" {
		t.Errorf("registry gone: %+v, want an error naming %s", c, gone)
	}
	t.Logf("registry gone: %v", c.Err)
	if id := imageID(t, cli, gone); id != v1 {
		t.Errorf("registry gone: %s names %s, want v1", gone, id)
	}
}

// TestImageUpdateAgent runs the agent against a loopback registry: a
// fleet runs a tag pushed there; the tag moves; the check reports the
// update (status, one notification) without pulling; with
// image_updates: apply the agent pulls the tag and the fleet rolls out the
// new image through its health gate.
func TestImageUpdateAgent(t *testing.T) {
	cli, d := setup(t)
	ctx := t.Context()
	_, v1 := dockertest.TestImage(t, cli, "v1")
	_, v2 := dockertest.TestImage(t, cli, "v2")
	counter := &registryCounter{}
	reg := dockertest.StartRegistryWith(t, "127.0.0.1", counter.wrap)
	repo := dockertest.Name(t, "upd")
	ref := dockertest.Push(t, cli, v1, reg, repo+":1")
	digest1 := repoDigestOf(t, cli, ref)

	fleet := dockertest.Name(t, "updfleet")
	models := map[string][]fleets.Fleet{
		"c1": loadFleet(t, fleet, ref, "notify"),
		"c2": loadFleet(t, fleet, ref, "apply"),
	}
	src := &headSource{head: "c1"}
	told := &toldEvents{}
	gauges := &updateGauges{set: map[string]bool{}}
	var checks []int // registry requests per image checked
	var checkMu sync.Mutex
	var checkPulled atomic.Bool
	ag := agent.New(agent.Config{
		Rules: agent.Rules{Host: "h1", Poll: func(last time.Time) time.Time { return last.Add(500 * time.Millisecond) }, ImageCheck: 2 * time.Second},
		Load: func(_ context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
			return models[rev.Commit], nil
		},
		Ping: d.Ping,
		CheckImages: func(ctx context.Context, refs []string) []agent.ImageCheck {
			var out []agent.ImageCheck
			for _, r := range refs {
				before, calls := counter.n.Load(), d.Calls()["POST /images/create"]
				c := d.CheckImage(ctx, r)
				if d.Calls()["POST /images/create"] != calls {
					checkPulled.Store(true)
				}
				checkMu.Lock()
				checks = append(checks, int(counter.n.Load()-before))
				checkMu.Unlock()
				ic := agent.ImageCheck{Ref: c.Ref, Running: c.Running, Remote: c.Remote}
				if c.Err != nil {
					ic.Err = c.Err.Error()
				}
				out = append(out, ic)
			}
			return out
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, d, src, told, gauges, &memoryStore{})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	name := fleet + "-web-1"
	waitFor(t, 60*time.Second, "the fleet running v1", func() bool { return containerImage(cli, name) == v1 })

	// The tag moves at the registry; the host keeps v1 under the tag.
	dockertest.Push(t, cli, v2, reg, repo+":1")
	digest2 := repoDigestOf(t, cli, ref)
	if err := cli.ImageTag(ctx, v1, ref); err != nil {
		t.Fatal(err)
	}
	var upd agent.ImageUpdate
	waitFor(t, 30*time.Second, "the update in the status", func() bool {
		for _, f := range ag.Status().Fleets {
			if f.Name == fleet && len(f.Updates) == 1 && f.Updates[0].Available != "" {
				upd = f.Updates[0]
				return true
			}
		}
		return false
	})
	want := agent.ImageUpdate{Service: "web", Image: ref, Running: digest1, Available: digest2, Since: upd.Since, Policy: "notify"}
	if upd != want {
		t.Errorf("status update %+v, want %+v", upd, want)
	}
	t.Logf("fleetd status: %s/%s: %s", fleet, upd.Service, upd)
	gauge := fleet + "/web/" + ref
	if v, ok := gauges.get(gauge); !ok || !v {
		t.Errorf("fleetd_image_update_available for %s: %v (set %v), want 1", gauge, v, ok)
	}
	// More checks come and go; the update is told once, nothing pulled.
	time.Sleep(5 * time.Second)
	if n := told.count(fleet, reconcile.EventImageUpdateAvailable); n != 1 {
		t.Errorf("image-update-available told %d times, want once", n)
	}
	if checkPulled.Load() {
		t.Error("a check pulled an image")
	}
	if id := imageID(t, cli, ref); id != v1 || containerImage(cli, name) != v1 {
		t.Fatalf("notify changed the host: %s names %s, %s runs %s", ref, id, name, containerImage(cli, name))
	}
	checkMu.Lock()
	t.Logf("registry requests per image check: %v", checks)
	checkMu.Unlock()

	// image_updates: apply: the next check pulls and the fleet rolls out.
	src.push("c2")
	waitFor(t, 90*time.Second, "the fleet running v2", func() bool { return containerImage(cli, name) == v2 })
	if id := imageID(t, cli, ref); id != v2 {
		t.Errorf("after the rollout %s names %s, want v2 %s", ref, id, v2)
	}
	waitFor(t, 30*time.Second, "the rollout's success", func() bool {
		return told.count(fleet, reconcile.EventRolloutSucceeded) > 0
	})
	if n := told.count(fleet, reconcile.EventRolloutStarted); n == 0 {
		t.Errorf("no rollout-started: the new image did not go through a rollout (told %v)", told.kinds(fleet))
	}
	waitFor(t, 30*time.Second, "no update left in the status", func() bool {
		for _, f := range ag.Status().Fleets {
			if f.Name == fleet {
				return len(f.Updates) == 0
			}
		}
		return false
	})
	if v, ok := gauges.get(gauge); !ok || v {
		t.Errorf("fleetd_image_update_available for %s after the rollout: %v (set %v), want 0", gauge, v, ok)
	}
}

// updateGauges records the image update metric; the agent's other
// metrics are dropped.
type updateGauges struct {
	mu  sync.Mutex
	set map[string]bool
}

func (g *updateGauges) SetImageUpdate(fleet, service, image string, available bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set[fleet+"/"+service+"/"+image] = available
}

func (g *updateGauges) get(key string) (bool, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.set[key]
	return v, ok
}

func (*updateGauges) ObserveReconcile(string, string, time.Duration) {}
func (*updateGauges) SetDrift(map[string]int)                        {}
func (*updateGauges) SetApplied(string, string)                      {}
func (*updateGauges) ObserveFetch(time.Duration, error)              {}
func (*updateGauges) SetBackoff(time.Duration)                       {}
func (*updateGauges) ObserveRollout(string)                          {}
func (*updateGauges) SetCondition(string, string, bool, string)      {}
func (*updateGauges) ForgetFleet(string)                             {}

// loadFleet loads a one-service fleet running ref with image_updates
// policy, as the agent would from a checkout.
func loadFleet(t *testing.T, name, ref, policy string) []fleets.Fleet {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	compose := fmt.Sprintf("name: %s\nservices:\n  web:\n    image: %s\n    x-fleetd: {image_updates: %s}\n    deploy:\n      update_config: {monitor: 1s}\n", name, ref, policy)
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := fleets.Load(t.Context(), filepath.Dir(dir), fleets.Host{Name: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func repoDigestOf(t *testing.T, cli *client.Client, ref string) string {
	t.Helper()
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	repo, _, _ := strings.Cut(ref[strings.Index(ref, "/")+1:], ":")
	for _, rd := range img.RepoDigests {
		if name, digest, ok := strings.Cut(rd, "@"); ok && strings.HasSuffix(name, "/"+repo) {
			return digest
		}
	}
	t.Fatalf("%s: no repo digest in %v", ref, img.RepoDigests)
	return ""
}

func imageID(t *testing.T, cli *client.Client, ref string) string {
	t.Helper()
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return img.ID
}

func imageIDs(t *testing.T, cli *client.Client) []string {
	t.Helper()
	list, err := cli.ImageList(t.Context(), image.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, img := range list {
		out = append(out, img.ID)
	}
	slices.Sort(out)
	return out
}

func containerImage(cli *client.Client, name string) string {
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/"+name+"$"))})
	if err != nil || len(list) != 1 || list[0].State != "running" {
		return ""
	}
	return list[0].ImageID
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// headSource serves the revision named head; Sync reports when it moved.
type headSource struct {
	mu           sync.Mutex
	head, served string
}

func (s *headSource) push(commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.head = commit
}

func (s *headSource) Sync(context.Context) (reconcile.Revision, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.served != s.head
	s.served = s.head
	return reconcile.Revision{Commit: s.head}, changed, nil
}

func (s *headSource) Checkout(_ context.Context, commit string) (reconcile.Revision, error) {
	return reconcile.Revision{Commit: commit}, nil
}

type memoryStore struct {
	mu sync.Mutex
	p  agent.Persisted
}

func (m *memoryStore) Load() (agent.Persisted, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p, nil
}

func (m *memoryStore) Save(p agent.Persisted) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.p = p
	return nil
}

type toldEvents struct {
	mu sync.Mutex
	ev []reconcile.Event
}

func (e *toldEvents) Notify(ev reconcile.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev)
}

func (e *toldEvents) count(fleet string, kind reconcile.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Fleet == fleet && ev.Kind == kind {
			n++
		}
	}
	return n
}

func (e *toldEvents) kinds(fleet string) []reconcile.EventKind {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []reconcile.EventKind
	for _, ev := range e.ev {
		if ev.Fleet == fleet {
			out = append(out, ev.Kind)
		}
	}
	return out
}
