package enginetest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// HookRun is one lifecycle hook ExecHook ran.
type HookRun struct {
	Container string // its name when the hook ran
	Name      string // "post_start hook 1/2"
	Hook      fleets.Hook
}

// ExecHook runs hook in a running managed container: it records the run
// (HookRuns) and changes nothing else, as a hook that exits 0 would. A
// container that is not running is an error wrapping
// reconcile.ErrNotRunning. FailOn("ExecHook", container, err) makes the
// hooks run in that container fail with err, as one that exits non-zero
// would: logged in Calls, not recorded as run.
func (f *Fake) ExecHook(ctx context.Context, id, name string, hook fleets.Hook, timeout time.Duration) error {
	return f.withManaged(ctx, "ExecHook", "run hook in", id, func(x *ctr) error {
		if x.c.State != "running" {
			return fmt.Errorf("%s: container is %s: %w", name, x.c.State, reconcile.ErrNotRunning)
		}
		f.hookRuns = append(f.hookRuns, HookRun{Container: x.c.Name, Name: name, Hook: hook})
		return nil
	})
}

// HookRuns returns the hooks ExecHook ran, in order.
func (f *Fake) HookRuns() []HookRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hookRuns)
}
