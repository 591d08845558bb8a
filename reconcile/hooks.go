package reconcile

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// ErrNotRunning is wrapped by Engine.ExecHook when the container does not
// run: a hook has no process to exec in.
var ErrNotRunning = errors.New("container is not running")

// Lifecycle hooks run as docker compose runs them (pkg/compose: after each
// container start, post_start; before each container stop, pre_stop), one
// action per hook, each after the one before, so the first that fails
// skips the rest and what waits for them:
//
//   - post_start after every start or restart fleetd makes (a new
//     container, a replacement, a heal), before its health gate, waits and
//     dependents;
//   - pre_stop before every stop fleetd makes of a running container (a
//     replacement, a scale down, a prune of an orphan whose service the
//     desired state still describes), after its drain from the ingress.
//
// Not before the restart of an unhealthy container (a heal): a hook that
// cannot succeed in a container that stopped answering must not keep it
// from being restarted.

// postStart adds the service's post_start hooks after action after (the
// start or restart of container name) and returns the action that what
// follows the start waits for: its last hook, or after itself.
func (b *builder) postStart(sc serviceCtx, name string, after int) int {
	id := b.actions[after-1].ContainerID
	return b.hooks(sc.fleet.Name, sc.svc, OpPostStart, "post_start", sc.svc.PostStart, id, name, after)
}

// preStop adds the service's pre_stop hooks for the running container id
// (name) after action after, and returns the action its stop waits for.
// The hooks run only in a container created with the same ones (its
// io.fleetd.pre-stop label): a hook a new revision adds or changes may
// need what only the new image has, and compose runs no pre_stop on a
// recreate either, so a container of older hooks is stopped without them.
func (b *builder) preStop(fleet string, svc fleets.Service, id, name string, after int) int {
	if c := b.container(id); c == nil || c.Labels[fleets.LabelPreStop] != fleets.HooksDigest(svc.PreStop) {
		return after
	}
	return b.hooks(fleet, svc, OpPreStop, "pre_stop", svc.PreStop, id, name, after)
}

func (b *builder) hooks(fleet string, svc fleets.Service, op Op, stage string, hooks []fleets.Hook, id, name string, after int) int {
	prev := after
	for i := range hooks {
		h := hooks[i]
		hookName := fmt.Sprintf("%s hook %d/%d", stage, i+1, len(hooks))
		prev = b.add(Action{Op: op, Fleet: fleet, Service: svc.Name, Target: name, ContainerID: id,
			Cause: hookName + ": " + describeHook(h), After: []int{prev},
			Hook: &h, HookName: hookName, Timeout: svc.HealthTimeout})
	}
	return prev
}

// describeHook is a hook as plans show it: its command, unless a word of
// it looks secret (then all of it is hidden), and how it runs. Its
// environment is never shown.
func describeHook(h fleets.Hook) string {
	cmd := drift.Redacted
	if !slices.ContainsFunc(h.Command, drift.LooksSecret) {
		cmd = shellWords(h.Command)
	}
	var how []string
	if h.User != "" {
		how = append(how, "user "+h.User)
	}
	if h.Privileged {
		how = append(how, "privileged")
	}
	if h.WorkingDir != "" {
		how = append(how, "in "+h.WorkingDir)
	}
	if len(how) == 0 {
		return cmd
	}
	return cmd + " (" + strings.Join(how, ", ") + ")"
}

// shellWords joins a command, quoting the words a shell would split.
func shellWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n\"'\\$`") {
			w = strconv.Quote(w)
		}
		out[i] = w
	}
	return strings.Join(out, " ")
}
