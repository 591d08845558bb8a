package dockertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// sweepTimeout is generous: on a loaded host with fuse-overlayfs, removing
// an image can take a minute.
const sweepTimeout = 5 * time.Minute

// imagePasses bounds the retries of image removal, which can fail while
// another process removes images that share parents.
const imagePasses = 3

// state is shared by every test in the process. users counts the tests that
// registered Cleanup and have not ended; the sweep runs only when it drops to
// zero, so a test never removes objects a parallel test is still using.
var state struct {
	mu     sync.Mutex
	users  int
	images map[string]*testImage // version -> build; emptied by the sweep
}

// Cleanup makes sure that everything this test process created on the
// engine is removed: when the last test that called Cleanup (or TestImage)
// ends, it force-removes every container, network, volume and image that
// belongs to RunID (see Sweep), and reports failures as test errors. Call it
// right after Client in every test that creates objects, before t.Parallel.
func Cleanup(t testing.TB, cli *client.Client) {
	t.Helper()
	state.mu.Lock()
	state.users++
	state.mu.Unlock()
	t.Cleanup(func() {
		// Holding the lock for the whole sweep keeps a test that starts
		// meanwhile from being handed an image that is being removed.
		state.mu.Lock()
		defer state.mu.Unlock()
		if state.users--; state.users > 0 {
			return
		}
		state.images = nil
		ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
		defer cancel()
		if err := Sweep(ctx, cli, RunID()); err != nil {
			t.Errorf("dockertest: cleanup of run %[1]s: %[2]v\n(by hand: docker rm -f $(docker ps -aq --filter name=%[1]s); docker rmi -f $(docker images -q --filter label=%[3]s=%[1]s))",
				RunID(), err, LabelTestRun)
		}
	})
}

// Sweep force-removes every container (with its anonymous volumes), network,
// volume and image that belongs to runID: its name starts with runID, its
// io.fleetd.test-run label is runID, or its io.fleetd.fleet label starts with
// runID. Use it from TestMain as a last resort; tests use Cleanup.
func Sweep(ctx context.Context, cli *client.Client, runID string) error {
	if !strings.HasPrefix(runID, runIDPrefix) {
		return fmt.Errorf("sweep: refusing run ID %q without the %q prefix", runID, runIDPrefix)
	}
	// Containers first: they hold networks, volumes and images. A create
	// the daemon was still processing for a killed client can land after
	// the container list, and then holds a network: sweep again.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = errors.Join(
			sweepContainers(ctx, cli, runID),
			sweepNetworks(ctx, cli, runID),
			sweepVolumes(ctx, cli, runID),
			sweepImages(ctx, cli, runID),
		)
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

func owned(runID, name string, labels map[string]string) bool {
	return strings.HasPrefix(name, runID) ||
		labels[LabelTestRun] == runID ||
		strings.HasPrefix(labels[LabelFleet], runID)
}

func sweepContainers(ctx context.Context, cli *client.Client, runID string) error {
	ctrs, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, ctr := range ctrs {
		name := ""
		if len(ctr.Names) > 0 {
			name = strings.TrimPrefix(ctr.Names[0], "/")
		}
		if !owned(runID, name, ctr.Labels) {
			continue
		}
		err := cli.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func sweepNetworks(ctx context.Context, cli *client.Client, runID string) error {
	nets, err := cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	var errs []error
	for _, n := range nets {
		if !owned(runID, n.Name, n.Labels) {
			continue
		}
		if err := cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) && !staleEndpoint(ctx, cli, n.ID, err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func sweepVolumes(ctx context.Context, cli *client.Client, runID string) error {
	vols, err := cli.VolumeList(ctx, volume.ListOptions{})
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	var errs []error
	for _, v := range vols.Volumes {
		if !owned(runID, v.Name, v.Labels) {
			continue
		}
		if err := cli.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

func sweepImages(ctx context.Context, cli *client.Client, runID string) error {
	var err error
	for range imagePasses {
		var left bool
		if left, err = sweepImagesOnce(ctx, cli, runID); !left || ctx.Err() != nil {
			break
		}
	}
	return err
}

// sweepImagesOnce removes what it finds and says whether it found anything.
func sweepImagesOnce(ctx context.Context, cli *client.Client, runID string) (bool, error) {
	// Top-level images only: PruneChildren removes the untagged parents, and
	// removing a parent directly would conflict with its children.
	imgs, err := cli.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return true, fmt.Errorf("list images: %w", err)
	}
	var found bool
	var errs []error
	for _, img := range imgs {
		for _, target := range imageTargets(runID, img) {
			found = true
			_, err := cli.ImageRemove(ctx, target, image.RemoveOptions{Force: true, PruneChildren: true})
			if err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", target, err))
			}
		}
	}
	return found, errors.Join(errs...)
}

// imageTargets is what to remove of img: the whole image (by ID, with every
// tag, including its copies pulled from a test registry) when it carries the
// run's label, otherwise only the tags named with the RunID, so that tagging
// someone else's image in a test never deletes it. A tag matches on the
// repository's last path component ("127.0.0.1:5000/<RunID>-app:v1").
func imageTargets(runID string, img image.Summary) []string {
	if owned(runID, "", img.Labels) {
		return []string{img.ID}
	}
	var tags []string
	for _, ref := range img.RepoTags {
		repo := ref
		if i := strings.LastIndex(repo, "/"); i >= 0 {
			repo = repo[i+1:]
		}
		if strings.HasPrefix(repo, runID) {
			tags = append(tags, ref)
		}
	}
	return tags
}

// staleEndpoint reports whether a network removal failed only because
// dockerd kept an endpoint of a container that no longer exists (Docker
// 20.10 can leak one when a client is killed mid-create). No API call can
// remove it, so it is left behind (named with the run ID) rather than failing
// the test.
func staleEndpoint(ctx context.Context, cli *client.Client, id string, err error) bool {
	if !strings.Contains(err.Error(), "active endpoints") {
		return false
	}
	n, ierr := cli.NetworkInspect(ctx, id, network.InspectOptions{})
	return ierr == nil && len(n.Containers) == 0
}
