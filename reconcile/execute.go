package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fleetd/fleetd/fleets"
)

// Status is the outcome of one action.
type Status string

// Outcomes.
const (
	Done    Status = "done"
	Failed  Status = "failed"
	Skipped Status = "skipped" // an action it waited for did not succeed
)

// Result is what executing one action did.
type Result struct {
	Action   Action        `json:"action"`
	Status   Status        `json:"status"`
	Err      error         `json:"-"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
	// Output is the ID of the image or container the action produced.
	Output string `json:"output,omitempty"`
}

// Report is the result of every action of a plan, in plan order.
type Report struct {
	Results []Result `json:"results"`
}

// Failed returns the results that failed (not the skipped ones).
func (r Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == Failed {
			out = append(out, res)
		}
	}
	return out
}

// OK reports whether every action succeeded.
func (r Report) OK() bool {
	for _, res := range r.Results {
		if res.Status != Done {
			return false
		}
	}
	return true
}

// ExecOptions tunes Execute.
type ExecOptions struct {
	// Parallelism bounds the engine-changing actions in flight (default
	// 4). Waits (health gates, readiness) do not count: they only follow
	// events, and a batch of gates must not hold back the next batch's
	// hand-over. They have their own bound, maxWaits (the Docker engine
	// serves them all from one shared events subscription; a wait is a
	// goroutine and a registration).
	Parallelism int
	// Progress, when set, is called after each action finishes (from the
	// goroutine that ran it; it must be safe for concurrent use).
	Progress func(Result)
	// BuildLog, when set, is handed each line of a build action's output
	// as it comes (from the goroutine running the build; it must be safe
	// for concurrent use).
	BuildLog func(a Action, line string)
	// Router runs the route and drain actions of ingress services; a plan
	// with one and no Router fails that action (ErrNoRouter).
	Router Router
}

// ErrNoRouter fails a route or drain action when no ingress is wired in.
var ErrNoRouter = errors.New("the service goes through fleetd's ingress, which this command does not run")

// Execute applies a plan. It decides nothing: each action runs once every
// action it waits for has succeeded, at most Parallelism at a time, and is
// skipped when one of them failed, so a failing service does not stop
// unrelated ones. Progress lives in the engine's objects (names and labels),
// so a killed fleetd resumes from a fresh observation.
func Execute(ctx context.Context, eng Engine, p ActionPlan, opts ExecOptions) Report {
	limit := opts.Parallelism
	if limit <= 0 {
		limit = 4
	}
	results := make([]Result, len(p.Actions))
	done := make([]chan struct{}, len(p.Actions))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var mu sync.Mutex // guards results
	sem := make(chan struct{}, limit)
	waitSem := make(chan struct{}, max(maxWaits, limit))
	var g errgroup.Group
	for i, a := range p.Actions {
		g.Go(func() error {
			defer close(done[i])
			s := sem
			if a.Op.waits() {
				s = waitSem
			}
			res := runWhenReady(ctx, eng, opts, a, done, results, &mu, s)
			mu.Lock()
			results[i] = res
			mu.Unlock()
			if opts.Progress != nil {
				opts.Progress(res)
			}
			return nil
		})
	}
	_ = g.Wait() // goroutines report through results, never an error
	return Report{Results: results}
}

func runWhenReady(ctx context.Context, eng Engine, opts ExecOptions, a Action, done []chan struct{}, results []Result, mu *sync.Mutex, sem chan struct{}) Result {
	for _, dep := range a.After {
		<-done[dep-1]
		mu.Lock()
		st := results[dep-1].Status
		mu.Unlock()
		if st != Done {
			return Result{Action: a, Status: Skipped, Error: fmt.Sprintf("action %d did not succeed", dep)}
		}
	}
	if a.ImageFrom != 0 && a.Instance != nil {
		mu.Lock()
		imageID := results[a.ImageFrom-1].Output
		mu.Unlock()
		inst := *a.Instance
		inst.Labels = maps.Clone(inst.Labels)
		inst.Labels[fleets.LabelImageID] = imageID
		a.Instance = &inst
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return Result{Action: a, Status: Skipped, Err: ctx.Err(), Error: ctx.Err().Error()}
	}
	defer func() { <-sem }()
	start := time.Now()
	out, err := apply(ctx, eng, opts, a)
	res := Result{Action: a, Status: Done, Duration: time.Since(start), Output: out}
	if err != nil {
		res.Status, res.Err, res.Error = Failed, err, err.Error()
	}
	return res
}

// maxWaits bounds the waits in flight at once.
const maxWaits = 64

// waits reports whether the op only waits for a container's state.
func (o Op) waits() bool {
	switch o {
	case OpWaitHealthy, OpWaitExit, OpWaitUp, OpWaitRecovered, OpDrain:
		return true
	}
	return false
}

// errNoEngineCall is returned for an action that lacks the data its op
// needs; it means a planner bug, never an input problem.
var errNoEngineCall = errors.New("malformed action")

// apply performs one action with one engine call (two for waits), or one
// call of the router.
func apply(ctx context.Context, eng Engine, opts ExecOptions, a Action) (string, error) {
	ref := a.ContainerID
	if ref == "" {
		ref = a.Target
	}
	router := opts.Router
	switch a.Op {
	case OpRoute, OpDrain:
		if router == nil {
			return "", ErrNoRouter
		}
		if a.Op == OpRoute {
			return "", router.Route(ctx, a.Fleet, a.Service, ref)
		}
		return "", router.Drain(ctx, a.Fleet, a.Service, ref, a.Timeout)
	case OpEnsureNetwork:
		if a.Network == nil {
			return "", errNoEngineCall
		}
		return "", eng.EnsureNetwork(ctx, a.Fleet, *a.Network)
	case OpEnsureVolume:
		if a.Volume == nil {
			return "", errNoEngineCall
		}
		return "", eng.EnsureVolume(ctx, a.Fleet, *a.Volume)
	case OpPull:
		return eng.PullImage(ctx, a.Target)
	case OpBuild:
		if a.Build == nil {
			return "", errNoEngineCall
		}
		var logf func(string)
		if opts.BuildLog != nil {
			logf = func(line string) { opts.BuildLog(a, line) }
		}
		return eng.BuildImage(ctx, *a.Build, a.Target, logf)
	case OpCreate:
		if a.Instance == nil {
			return "", errNoEngineCall
		}
		return eng.CreateContainer(ctx, *a.Instance)
	case OpStart:
		return "", eng.StartContainer(ctx, ref)
	case OpStop:
		return "", eng.StopContainer(ctx, ref, a.Timeout)
	case OpRestart:
		return "", eng.RestartContainer(ctx, ref, a.Timeout)
	case OpRemove:
		return "", eng.RemoveContainer(ctx, ref)
	case OpRename:
		return "", eng.RenameContainer(ctx, ref, a.NewName)
	case OpUnpause:
		return "", eng.UnpauseContainer(ctx, ref)
	case OpConnect:
		if a.Attachment == nil {
			return "", errNoEngineCall
		}
		return "", eng.ConnectNetwork(ctx, ref, *a.Attachment, a.Target)
	case OpUpdate:
		if a.Spec == nil {
			return "", errNoEngineCall
		}
		return "", eng.UpdateResources(ctx, ref, *a.Spec)
	case OpRemoveNetwork:
		return "", eng.RemoveNetwork(ctx, a.Target)
	case OpWaitHealthy:
		return "", eng.WaitHealthy(ctx, ref, a.Timeout)
	case OpWaitRecovered:
		return "", eng.WaitRecovered(ctx, ref, a.Timeout)
	case OpWaitUp:
		return "", eng.WaitUp(ctx, ref, a.Readiness, a.Monitor, a.Timeout)
	case OpWaitExit:
		return "", eng.WaitExit(ctx, ref, a.Timeout)
	case OpPostStart, OpPreStop:
		if a.Hook == nil {
			return "", errNoEngineCall
		}
		err := eng.ExecHook(ctx, ref, a.HookName, *a.Hook, a.Timeout)
		if a.Op == OpPreStop && errors.Is(err, ErrNotRunning) {
			return "", nil // stopped meanwhile: its stop has nothing to stop either
		}
		return "", err
	}
	return "", fmt.Errorf("%w: unknown op %q", errNoEngineCall, a.Op)
}
