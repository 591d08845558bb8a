package enginetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

var _ reconcile.Engine = (*Fake)(nil)

// Errors Fake returns, wrapped. They mirror those of package engine, and
// where engine.Docker classifies a failure (package fault) the fake wraps
// them in the same class, reason and object (see the package doc).
var (
	ErrNotManaged        = errors.New("not managed by fleetd")
	ErrConflict          = errors.New("name held by an unmanaged object")
	ErrNotFound          = errors.New("not found")
	ErrInUse             = errors.New("in use")
	ErrUpdateUnsupported = errors.New("docker update cannot reset this limit; recreate the container")
	ErrUnreachable       = errors.New("docker daemon unreachable")
)

// epoch is the fake clock's start: every state change advances it by one
// second, so timestamps are deterministic and ordered.
var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Fake is an in-memory engine. The zero value is not usable; call New. It
// is safe for concurrent use.
type Fake struct {
	t  testing.TB
	mu sync.Mutex

	containers map[string]*ctr // by ID
	networks   map[string]*drift.Network
	volumes    map[string]*drift.Volume
	images     map[string]string // local ref → image ID
	remote     map[string]string // pullable ref → image ID
	seq        int
	calls      []string
	failures   []*failure
	onStart    func(c *drift.Container)
	heldPorts  map[string]bool // host addresses held out of band (HoldPort)
	down       bool            // SetDown
	hookRuns   []HookRun       // ExecHook
}

// ctr is one container: its list entry plus what only an inspect shows.
type ctr struct {
	c    drift.Container
	in   drift.Inspected
	spec fleets.Spec
}

type failure struct {
	op, target string
	err        error
	once       bool
}

// New returns an empty engine. t reports misuse of the out-of-band helpers
// (an unknown container name).
func New(t testing.TB) *Fake {
	return &Fake{
		t:          t,
		containers: map[string]*ctr{},
		networks:   map[string]*drift.Network{},
		volumes:    map[string]*drift.Volume{},
		images:     map[string]string{},
		remote:     map[string]string{},
		heldPorts:  map[string]bool{},
	}
}

// Calls returns the operations applied so far, one "Op target" entry each
// (target: container or network name, image ref); a failed operation ends
// in " -> error: <err>". Observe is logged as "Observe".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls clears the call log.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// FailOn makes every call of op (a method name such as "StartContainer")
// on target (a container name or ID, network name or image ref; "" for any)
// fail with err until ClearFailures. The operation changes nothing.
func (f *Fake) FailOn(op, target string, err error) { f.addFailure(op, target, err, false) }

// FailOnce is FailOn for the next matching call only.
func (f *Fake) FailOnce(op, target string, err error) { f.addFailure(op, target, err, true) }

// ClearFailures removes every injected failure.
func (f *Fake) ClearFailures() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = nil
}

func (f *Fake) addFailure(op, target string, err error, once bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, &failure{op: op, target: target, err: err, once: once})
}

// OnStart sets a hook run, under the fake's lock, each time a container
// starts, after its state is set to running and its health to "healthy"
// (when it has a healthcheck). It may change c (State, Health, Status is
// recomputed) to simulate a crashing or unhealthy release; it must not call
// the Fake.
func (f *Fake) OnStart(hook func(c *drift.Container)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStart = hook
}

// SetDown makes the engine unreachable, as a stopped daemon is: while down
// every call fails (logged in Calls) with a Retryable EngineUnreachable
// error wrapping ErrUnreachable, before injected failures are considered,
// and changes nothing. The out-of-band helpers keep working.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// call logs op on target and returns the failure the call meets first: the
// engine being down, the context's error, an injected failure. Callers hold
// f.mu.
func (f *Fake) call(ctx context.Context, op string, targets ...string) error {
	err := ctxFault(ctx.Err())
	if f.down {
		err = fault.New(fault.Retryable, fault.EngineUnreachable, "", ErrUnreachable)
	}
	for i, fl := range f.failures {
		if err == nil && fl.op == op && (fl.target == "" || slices.Contains(targets, fl.target)) {
			err = fl.err
			if fl.once {
				f.failures = slices.Delete(f.failures, i, i+1)
			}
			break
		}
	}
	f.calls = append(f.calls, strings.TrimSpace(op+" "+first(targets)))
	return err
}

// ctxFault classifies a context's error as engine.Docker does: a deadline
// is a Retryable Timeout, a cancellation stays as it is.
func ctxFault(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fault.New(fault.Retryable, fault.Timeout, "", err)
	}
	return err
}

// done records the outcome of the call logged last.
func (f *Fake) done(err error) error {
	if err != nil && len(f.calls) > 0 {
		f.calls[len(f.calls)-1] += " -> error: " + err.Error()
	}
	return err
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// tick advances the fake clock.
func (f *Fake) tick() time.Time {
	f.seq++
	return epoch.Add(time.Duration(f.seq) * time.Second)
}

// newID is a deterministic 64-hex-digit ID.
func (f *Fake) newID(kind, name string) string {
	f.seq++
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", kind, name, f.seq))
	return hex.EncodeToString(sum[:])
}

func managed(labels map[string]string) bool { return labels[fleets.LabelManaged] == "true" }

// ownedLabels are user labels plus fleetd's ownership and Compose's
// project labels, as engine.Docker sets them on networks and volumes.
func ownedLabels(user map[string]string, fleet, keyLabel, key string) map[string]string {
	out := maps.Clone(user)
	if out == nil {
		out = map[string]string{}
	}
	out[fleets.LabelManaged] = "true"
	out[fleets.LabelFleet] = fleet
	out[fleets.LabelComposeProject] = fleet
	out[keyLabel] = key
	return out
}
