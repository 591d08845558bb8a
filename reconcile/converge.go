package reconcile

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// ConvergeOptions tunes Converge.
type ConvergeOptions struct {
	Exec ExecOptions
	// InspectAll makes the first observation inspect every managed
	// container, so that `docker update` changes are seen (a full resync);
	// otherwise observations are list calls plus what they cannot settle.
	InspectAll bool
	// OnPlan is called with each pass's plan before it executes.
	OnPlan func(ActionPlan)
	// OnEvent is called with each rollout event as it happens.
	OnEvent func(Event)
	// Save persists the rollout state after every pass that changed it, so
	// that a killed fleetd resumes (and never retries a failed spec).
	Save func(Rollouts) error
	// ReturnOnDelay makes Converge return instead of sleeping until a
	// rollout's delayed batch is due (update_config delay): the agent
	// arms a timer for Outcome.Last.NextAt and frees the apply slot.
	ReturnOnDelay bool
	// Targeted observes only the containers of the one fleet in
	// pol.Scope (drift.ObserveOptions.Fleet) for as long as what it
	// plans is a heal (healOnly); any other plan is made again from the
	// whole host. Converged then holds that fleet's containers only.
	Targeted bool
	// MaxPasses bounds the passes (default: enough for every replica to be
	// rolled out one at a time, plus slack).
	MaxPasses int
	// Now and Sleep are the clock (defaults: time.Now, a timer).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Outcome is what one Converge did.
type Outcome struct {
	Passes   int          `json:"passes"`
	Plans    []ActionPlan `json:"plans"`
	Reports  []Report     `json:"reports"`
	Events   []Event      `json:"events"`
	Rollouts Rollouts     `json:"rollouts"`
	// Heals is the self-heal history afterwards (the next Policy.Heals).
	Heals map[string]HealRecord `json:"-"`
	// Last is the plan of the final pass: empty when the host converged,
	// else what is still left (blocked, refused or failed).
	Last ActionPlan `json:"last"`
	// Converged is the observation that showed nothing left to do, when
	// Converge ended so; nil otherwise. A caller that reads the host
	// right after (apply's wait for health) starts from it instead of
	// observing again.
	Converged *drift.Observed `json:"-"`
}

// Converge brings the host to the desired state: observe, plan, execute,
// judge the rollout batches, and again, until a plan is empty, a pass makes
// no progress, or a rollout is stalled. It decides nothing itself: Plan and
// Advance do. pol.Rollouts is the starting rollout state.
func Converge(ctx context.Context, eng Engine, desired []fleets.Fleet, pol Policy, opts ConvergeOptions) (out Outcome, err error) {
	opts = opts.withDefaults(desired)
	out.Rollouts = Forget(pol.Rollouts, desired)
	defer func() { out.Heals = pol.Heals }()
	// Not fatal yet: a service moving onto the ingress holds the port the
	// ingress needs until this pass stops its old replicas, and the route
	// actions that need the ingress fail on their own if it is down. With
	// nothing to do, though, it is the apply's outcome.
	ingressErr := syncIngress(ctx, opts.Exec.Router, desired, pol.Scope)
	var obs drift.Observed
	target := targetOf(pol, opts)
	for waits, current := 0, false; out.Passes < opts.MaxPasses && waits <= opts.MaxPasses; {
		// A pass that executed no action (it only recorded rollouts'
		// outcomes) changed nothing: its observation is still the
		// latest, and planning again from it costs no engine call.
		if !current {
			obs, err = eng.Observe(ctx, drift.ObserveOptions{InspectAll: opts.InspectAll && out.Passes == 0, Fleet: target})
			if err != nil {
				return out, fmt.Errorf("observe: %w", err)
			}
		}
		current = false
		pol.Now, pol.Rollouts = opts.Now(), out.Rollouts
		p := Plan(desired, obs, pol)
		if target != "" && !healOnly(p) {
			target = "" // it needs the whole host: observe it
			continue
		}
		out.Last = p
		if p.Empty() && len(p.Rollouts) == 0 {
			if p.NextAt.IsZero() || opts.ReturnOnDelay {
				out.Converged = &obs
				return out, ingressErr
			}
			waits++
			if err := opts.Sleep(ctx, p.NextAt.Sub(opts.Now())); err != nil {
				return out, err
			}
			continue
		}
		out.Passes++
		if opts.OnPlan != nil {
			opts.OnPlan(p)
		}
		out.tell(opts, Started(out.Rollouts, p, opts.Now()))
		j := newJudge(ctx, p, &out, opts)
		exec := opts.Exec
		exec.Progress = j.progress(opts.Exec.Progress)
		rep := Execute(ctx, eng, p, exec)
		j.finish(rep)
		out.Plans, out.Reports = append(out.Plans, p), append(out.Reports, rep)
		pol.Heals = RecordHeals(pol.Heals, rep, opts.Now())
		if ingressErr = syncIngress(ctx, opts.Exec.Router, desired, pol.Scope); ingressErr != nil {
			return out, ingressErr
		}
		if j.err != nil {
			return out, j.err
		}
		if opts.Save != nil && (len(p.Rollouts) > 0 || len(out.Rollouts) != len(pol.Rollouts)) {
			if err := opts.Save(out.Rollouts); err != nil {
				return out, fmt.Errorf("save rollout state: %w", err)
			}
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		if !worthAnotherPass(p, rep) {
			return out, nil
		}
		current = len(p.Actions) == 0
	}
	return out, nil
}

// judge advances the rollout state batch by batch while a plan executes:
// a batch is judged (Advance) as soon as every action of its replicas has
// finished, so that its events are told and the state saved as they
// happen, not when the whole plan, with the later batches it chains, ends.
type judge struct {
	// ctx ends the plan: once it is done, nothing more is judged — a
	// batch cut short by a shutdown did not fail, and the next run
	// resumes it.
	ctx     context.Context
	mu      sync.Mutex
	plan    ActionPlan
	out     *Outcome
	opts    ConvergeOptions
	step    map[int]int    // action ID -> index of the rollout step it belongs to
	pending []int          // per step: its actions not finished yet
	failed  map[string]int // per service: failures of its batches judged so far
	judged  []bool
	results []Result // finished so far
	err     error    // the first failed save
}

func newJudge(ctx context.Context, p ActionPlan, out *Outcome, opts ConvergeOptions) *judge {
	j := &judge{ctx: ctx, plan: p, out: out, opts: opts, step: map[int]int{}, failed: map[string]int{},
		pending: make([]int, len(p.Rollouts)), judged: make([]bool, len(p.Rollouts))}
	for _, a := range p.Actions {
		if !a.Rollout {
			continue
		}
		for i, st := range p.Rollouts {
			if a.Fleet == st.Fleet && a.Service == st.Service && slices.Contains(st.Slots, a.Slot) {
				j.step[a.ID] = i
				j.pending[i]++
				break
			}
		}
	}
	return j
}

// progress wraps the caller's progress callback.
func (j *judge) progress(then func(Result)) func(Result) {
	return func(res Result) {
		if then != nil {
			then(res)
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		j.results = append(j.results, res)
		i, ok := j.step[res.Action.ID]
		if !ok {
			return
		}
		j.pending[i]--
		if j.ctx.Err() != nil {
			return
		}
		waiting := map[string]bool{} // services with an earlier batch not judged yet
		for k, st := range j.plan.Rollouts {
			key := rolloutKey(st.Fleet, st.Service)
			switch {
			case j.judged[k]:
			case len(st.Slots) == 0 || j.pending[k] > 0 || waiting[key]:
				waiting[key] = true
			default:
				j.advance(k, Report{Results: j.results})
			}
		}
	}
}

// finish judges the steps left once the plan has run.
func (j *judge) finish(rep Report) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ctx.Err() != nil {
		return
	}
	for k := range j.plan.Rollouts {
		if !j.judged[k] {
			j.advance(k, rep)
		}
	}
}

func (j *judge) advance(k int, rep Report) {
	j.judged[k] = true
	step := j.plan.Rollouts[k]
	key := rolloutKey(step.Fleet, step.Service)
	if step.Chained {
		// The plan counted on every earlier batch succeeding; the
		// replicas a tolerated failure left behind are still to do.
		step.Remaining += j.failed[key]
	}
	before := j.out.Rollouts[key].Failures
	next, events := Advance(j.out.Rollouts, ActionPlan{Rollouts: []RolloutStep{step}}, rep, j.opts.Now())
	if r, ok := next[key]; ok {
		j.failed[key] += r.Failures - before
	}
	j.out.Rollouts = next
	j.out.tell(j.opts, events)
	if j.opts.Save != nil && j.err == nil && len(j.plan.Rollouts[k].Slots) > 0 {
		if err := j.opts.Save(next); err != nil {
			j.err = fmt.Errorf("save rollout state: %w", err)
		}
	}
}

func (o *Outcome) tell(opts ConvergeOptions, events []Event) {
	o.Events = append(o.Events, events...)
	if opts.OnEvent == nil {
		return
	}
	for _, e := range events {
		opts.OnEvent(e)
	}
}

// worthAnotherPass reports whether re-planning can get further: a rollout
// batch ran (its next batch, or its rollback, comes in the next plan), or
// every action succeeded (what follows from them, such as a freed name, is
// planned next). A pass with failures outside rollouts would only fail the
// same way again.
func worthAnotherPass(p ActionPlan, rep Report) bool {
	return len(p.Rollouts) > 0 || rep.OK()
}

func (o ConvergeOptions) withDefaults(desired []fleets.Fleet) ConvergeOptions {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.MaxPasses <= 0 {
		replicas := 0
		for _, f := range desired {
			for _, s := range f.Services {
				replicas += s.Replicas
			}
		}
		o.MaxPasses = 2*replicas + 5
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncIngress brings fleetd's ingress in line with the fleets in scope
// and the host before a Converge and after each of its passes: replicas
// gone leave the pool. Its failure stops only the applies of fleets with
// a service behind the ingress; the others go on (their next sync tries
// again).
func syncIngress(ctx context.Context, r Router, desired []fleets.Fleet, scope []string) error {
	if r == nil {
		return nil
	}
	err := r.Sync(ctx, desired, scope)
	if err == nil || !usesIngress(desired, scope) {
		return nil
	}
	return fmt.Errorf("ingress: %w", err)
}

// usesIngress reports whether a fleet in scope has a service behind the
// ingress.
func usesIngress(desired []fleets.Fleet, scope []string) bool {
	for _, f := range desired {
		if (Policy{Scope: scope}).InScope(f.Name) && f.UsesIngress() {
			return true
		}
	}
	return false
}
