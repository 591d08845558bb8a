package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Source follows the fleet repository: Sync asks the remote for its head
// and fetches and checks out only when it moved (changed reports that).
type Source interface {
	Sync(ctx context.Context) (rev reconcile.Revision, changed bool, err error)
	// Checkout returns a commit the source already has, without the
	// network, writing its tree again if it was pruned.
	Checkout(ctx context.Context, commit string) (reconcile.Revision, error)
}

// Notifier takes events for people. Notify must not block.
type Notifier interface{ Notify(reconcile.Event) }

// Statuses posts commit statuses to the forge (CommitStatus). Post must
// not block.
type Statuses interface{ Post(CommitStatus) }

// Metrics is what the agent reports to monitoring.
type Metrics interface {
	ObserveReconcile(fleet, result string, d time.Duration)
	SetDrift(byKind map[string]int)
	SetApplied(fleet, revision string)
	ObserveFetch(d time.Duration, err error)
	SetBackoff(d time.Duration)
	ObserveRollout(outcome string)
	// SetCondition sets one condition of a fleet; ForgetFleet drops a
	// fleet that left the host.
	SetCondition(fleet, typ string, status bool, reason string)
	ForgetFleet(fleet string)
	// SetImageUpdate says whether a service's image tag names a new
	// digest at its registry.
	SetImageUpdate(fleet, service, image string, available bool)
}

// Persisted is the state file: the rollout records (shared with `fleetd
// apply`) and, per fleet, what a restart needs.
type Persisted struct {
	Rollouts reconcile.Rollouts    `json:"rollouts"`
	Fleets   map[string]SavedFleet `json:"fleets,omitempty"`
	// Applied and LastGood are how fleetd before per-fleet state saved
	// it; they are read, never written.
	Applied  map[string]string `json:"applied,omitempty"`
	LastGood string            `json:"last_good,omitempty"`
}

// fleets returns the per-fleet state, from the older layout if need be.
func (p Persisted) fleets() map[string]SavedFleet {
	if len(p.Fleets) > 0 || len(p.Applied) == 0 {
		return p.Fleets
	}
	out := map[string]SavedFleet{}
	for name, commit := range p.Applied {
		out[name] = SavedFleet{Commit: p.LastGood, Applied: commit}
	}
	return out
}

// Store persists the state file atomically.
type Store interface {
	Load() (Persisted, error)
	Save(Persisted) error
}

// EngineWatch subscribes to engine events. Both channels end when ctx ends
// or the stream breaks; a break is sent on the error channel first.
type EngineWatch func(ctx context.Context) (<-chan EngineEvent, <-chan error)

// Config wires the agent.
type Config struct {
	Rules Rules
	// Load loads the fleets of a checked-out revision for this host; an
	// error that is a fleets.ProblemList comes with the valid fleets.
	Load func(ctx context.Context, rev reconcile.Revision) ([]fleets.Fleet, error)
	// Watch subscribes to engine events; Ping checks that the engine
	// answers. Nil Watch means no events (tests); nil Ping always answers.
	Watch EngineWatch
	Ping  func(ctx context.Context) error
	// Parallelism bounds the engine-changing actions of one apply.
	Parallelism    int
	AllowMassPrune bool
	// Swarm runs the swarm fleets; nil when this agent drives no swarm
	// (a swarm fleet then stalls, saying so).
	Swarm reconcile.SwarmEngine
	// Router runs fleetd's ingress for the services behind it; nil when
	// none is wired in (their route and drain actions then fail).
	Router reconcile.Router
	Log    *slog.Logger

	// Statuses posts commit statuses to the forge; nil turns them off.
	Statuses Statuses

	// CheckImages asks the registries which digest each tag names now,
	// without pulling (engine.Docker.CheckImage); nil checks nothing.
	CheckImages func(ctx context.Context, refs []string) []ImageCheck
}

// Agent runs Next: it feeds it inputs and runs its effects. It decides
// nothing.
type Agent struct {
	cfg     Config
	eng     reconcile.Engine
	src     Source
	notify  Notifier
	metrics Metrics
	store   Store

	wake      chan struct{}
	syncAsked atomic.Bool
	pushAsked atomic.Bool
	leadAsked atomic.Bool

	mu     sync.Mutex
	status Status
	view   State // the state status was rendered from (Preview)

	changes Changes // signalled after each step

	fileMu sync.Mutex
	file   Persisted
	heals  map[string]map[string]reconcile.HealRecord // fleet -> container -> record
}

// New builds the agent; Run runs it.
func New(cfg Config, eng reconcile.Engine, src Source, n Notifier, m Metrics, store Store) *Agent {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Rules = cfg.Rules.WithDefaults()
	a := &Agent{cfg: cfg, eng: eng, src: src, notify: n, metrics: m, store: store,
		wake: make(chan struct{}, 1), heals: map[string]map[string]reconcile.HealRecord{}}
	a.status = Status{Host: cfg.Rules.Host, Fleets: []FleetStatus{}, DriftKind: map[string]int{}}
	return a
}

// RequestSync asks for a manual sync: ask the source, apply every fleet,
// retry failed rollouts. It never blocks, and is never lost: asks that
// come together coalesce.
func (a *Agent) RequestSync() {
	a.syncAsked.Store(true)
	a.poke()
}

// LeadershipChanged tells the agent it took (or lost) the swarm's lease;
// for a swarm.Campaign's OnChange. It never blocks.
func (a *Agent) LeadershipChanged(leading bool) {
	if leading {
		a.leadAsked.Store(true)
		a.poke()
	}
}

// RequestFetch asks the source for news (a webhook's push).
func (a *Agent) RequestFetch() {
	a.pushAsked.Store(true)
	a.poke()
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Status returns a copy of the current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Subscribe is the change feed (see Changes): a signal after every step
// of the agent, for the live pages of the dashboard.
func (a *Agent) Subscribe() (<-chan struct{}, func()) { return a.changes.Subscribe() }

// Ready reports whether the source was synced at least once; the caller
// adds the engine check.
func (a *Agent) Ready() error {
	if !a.Status().Ready {
		return errors.New("source not synced yet")
	}
	return nil
}

// shell is the state of Run's goroutine; only it touches it.
type shell struct {
	*Agent
	state     State
	inputs    chan Input
	timer     *time.Timer
	work      sync.WaitGroup // goroutines running effects
	watchGen  int
	stopWatch context.CancelFunc
}

// pingTimeout bounds the check that the engine answers after a
// (re)subscription.
const pingTimeout = 10 * time.Second

// watched is an input of one engine subscription; inputs of a replaced
// subscription are dropped.
type watched struct {
	gen int
	in  Input
}

func (watched) apply(*machine) {}

// Run runs the agent until ctx ends; it returns nil on a clean stop, once
// the applies in flight have ended.
func (a *Agent) Run(ctx context.Context) error {
	file, err := a.store.Load()
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	if file.Rollouts == nil {
		file.Rollouts = reconcile.Rollouts{}
	}
	a.file = file
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sh := &shell{Agent: a, inputs: make(chan Input), timer: time.NewTimer(time.Hour), stopWatch: func() {}}
	sh.timer.Stop()
	defer func() {
		cancel()
		sh.stopWatch()
		sh.work.Wait()
	}()
	sh.step(ctx, Start{Fleets: file.fleets()})
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
			if a.syncAsked.Swap(false) {
				sh.step(ctx, SyncRequested{})
			}
			if a.pushAsked.Swap(false) {
				sh.step(ctx, FetchRequested{})
			}
			if a.leadAsked.Swap(false) {
				sh.step(ctx, LeaderChanged{Leading: true})
			}
		case in := <-sh.inputs:
			if w, ok := in.(watched); ok {
				if w.gen != sh.watchGen {
					continue
				}
				in = w.in
			}
			sh.step(ctx, in)
		case <-sh.timer.C:
			sh.step(ctx, TimerFired{})
		}
	}
}

// step runs Next and its effects, and publishes the new state.
func (sh *shell) step(ctx context.Context, in Input) {
	now := time.Now()
	prev := sh.state
	next, effects := Next(sh.state, in, now, sh.cfg.Rules)
	sh.state = next
	for _, e := range effects {
		sh.run(ctx, e)
	}
	sh.publish(prev, now)
}

// send hands an input to the loop, unless the agent is stopping.
func (sh *shell) send(ctx context.Context, in Input) {
	select {
	case sh.inputs <- in:
	case <-ctx.Done():
	}
}

// run runs one effect; whatever does I/O runs in a goroutine of its own
// and reports back as an input, so the loop never waits on the engine or
// the network.
func (sh *shell) run(ctx context.Context, e Effect) {
	switch e := e.(type) {
	case Fetch:
		sh.async(ctx, func() Input { return sh.fetch(ctx, e) })
	case Resume:
		sh.async(ctx, func() Input { return sh.resume(ctx, e) })
	case Apply:
		sh.async(ctx, func() Input { return sh.apply(ctx, e) })
	case Survey:
		sh.async(ctx, func() Input { return sh.survey(ctx, e) })
	case CheckImages:
		sh.async(ctx, func() Input { return sh.checkImages(ctx, e) })
	case PullImage:
		sh.async(ctx, func() Input {
			_, err := sh.eng.PullImage(ctx, e.Ref)
			return ImagePulled{Ref: e.Ref, Digest: e.Digest, Err: errText(err)}
		})
	case Watch:
		sh.watch(ctx)
	case Notify:
		sh.tell(e.Event)
	case ArmTimer:
		sh.timer.Stop()
		if !e.At.IsZero() {
			sh.timer.Reset(max(time.Until(e.At), 0))
		}
	case CommitStatus:
		if sh.cfg.Statuses != nil {
			sh.cfg.Statuses.Post(e)
		}
	case Persist:
		sh.persist(func(p *Persisted) { p.Fleets, p.Applied, p.LastGood = e.Fleets, nil, "" })
	}
}

// async runs work in a goroutine and sends its result to the loop; Run
// waits for these goroutines before it returns.
func (sh *shell) async(ctx context.Context, work func() Input) {
	sh.work.Add(1)
	go func() {
		defer sh.work.Done()
		sh.send(ctx, work())
	}()
}

// fetch asks the source and loads what it brings.
func (sh *shell) fetch(ctx context.Context, e Fetch) Input {
	start := time.Now()
	rev, changed, err := sh.src.Sync(ctx)
	var refused *RefusedError
	if errors.As(err, &refused) {
		sh.metric(func(m Metrics) { m.ObserveFetch(time.Since(start), nil) }) // fetched; not taken
		return FetchRefused{Commit: refused.Commit, Reason: refused.Reason, Why: refused.Why}
	}
	sh.metric(func(m Metrics) { m.ObserveFetch(time.Since(start), err) })
	if err != nil {
		return FetchFailed{Err: err.Error()}
	}
	in := Fetched{Rev: rev, Changed: changed}
	if changed || e.Load {
		in.Loaded = true
		in.Fleets, in.Problems, in.LoadErr = sh.load(ctx, rev)
	}
	return in
}

// survey observes the whole host once and names the fleets that drifted.
func (sh *shell) survey(ctx context.Context, e Survey) Input {
	obs, err := sh.eng.Observe(ctx, drift.ObserveOptions{InspectAll: true})
	if err != nil {
		return Surveyed{Err: err.Error()}
	}
	return surveyOf(e.Desired, obs)
}

// resume loads an older commit the source already has.
func (sh *shell) resume(ctx context.Context, e Resume) Input {
	in := Resumed{Rev: reconcile.Revision{Commit: e.Commit}, For: e.Fleets}
	rev, err := sh.src.Checkout(ctx, e.Commit)
	if err != nil {
		in.Err = err.Error()
		return in
	}
	in.Rev = rev
	in.Fleets, in.Problems, in.Err = sh.load(ctx, rev)
	return in
}

func (sh *shell) load(ctx context.Context, rev reconcile.Revision) ([]fleets.Fleet, []fleets.Problem, string) {
	loaded, err := sh.cfg.Load(ctx, rev)
	var problems fleets.ProblemList
	switch {
	case err == nil:
		return loaded, nil, ""
	case errors.As(err, &problems):
		return loaded, problems, ""
	}
	return nil, nil, err.Error()
}

// watch replaces the engine subscription: subscribe, then ping, then
// forward events until the stream breaks.
func (sh *shell) watch(parent context.Context) {
	sh.stopWatch()
	sh.watchGen++
	gen := sh.watchGen
	ctx, cancel := context.WithCancel(parent)
	sh.stopWatch = cancel
	sh.work.Add(1)
	go func() {
		defer sh.work.Done()
		out := func(in Input) { sh.send(ctx, watched{gen: gen, in: in}) }
		var events <-chan EngineEvent
		var errs <-chan error
		if sh.cfg.Watch != nil {
			// Subscribing waits for the daemon's answer: off the loop.
			events, errs = sh.cfg.Watch(ctx)
		}
		if sh.cfg.Ping != nil {
			pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
			err := sh.cfg.Ping(pctx)
			pcancel()
			if err != nil {
				out(EngineLost{Err: err.Error()})
				cancel()
				return
			}
		}
		out(EngineUp{})
		if events == nil {
			return
		}
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					if ctx.Err() == nil {
						out(EngineLost{Err: "engine event stream ended"})
					}
					return
				}
				out(ev)
			case err, ok := <-errs:
				if ctx.Err() != nil {
					return
				}
				if !ok || err == nil {
					err = errors.New("engine event stream ended")
				}
				out(EngineLost{Err: err.Error()})
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (sh *shell) tell(e reconcile.Event) {
	sh.cfg.Log.Info(e.Message, "event", e.Kind, "fleet", e.Fleet, "service", e.Service, "reason", e.Reason)
	if sh.notify != nil {
		sh.notify.Notify(e)
	}
}

// publish makes the new state visible: status, and the metrics of what
// changed.
func (sh *shell) publish(prev State, now time.Time) {
	st := StatusOf(sh.state, sh.cfg.Rules.Host, now)
	sh.mu.Lock()
	sh.status, sh.view = st, sh.state
	sh.mu.Unlock()
	sh.changes.Signal()
	if sh.metrics == nil {
		return
	}
	for name, f := range sh.state.Fleets {
		if p, ok := prev.Fleets[name]; !ok || !conditionsEqual(p.Conditions, f.Conditions) {
			for _, c := range f.Conditions {
				sh.metrics.SetCondition(name, c.Type, c.Status == condTrue, c.Reason)
			}
		}
		if p, ok := prev.Fleets[name]; f.Applied != "" && (!ok || p.Applied != f.Applied) {
			sh.metrics.SetApplied(name, f.Applied)
		}
	}
	for name := range prev.Fleets {
		if _, ok := sh.state.Fleets[name]; !ok {
			sh.metrics.ForgetFleet(name)
		}
	}
	sh.publishImageUpdates(prev)
	sh.metrics.SetDrift(st.DriftKind)
	if sh.state.Source.Err != "" {
		sh.metrics.SetBackoff(max(sh.state.Source.RetryAt.Sub(now), 0))
	} else if prev.Source.Err != "" {
		sh.metrics.SetBackoff(0)
	}
}

func conditionsEqual(a, b []Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Status != b[i].Status || a[i].Reason != b[i].Reason {
			return false
		}
	}
	return true
}

func (sh *shell) metric(f func(Metrics)) {
	if sh.metrics != nil {
		f(sh.metrics)
	}
}

// persist changes the state file and saves it.
func (a *Agent) persist(change func(*Persisted)) {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	change(&a.file)
	if err := a.store.Save(a.file); err != nil {
		a.cfg.Log.Error("save state", "err", err)
	}
}

// rollouts returns the rollout records of one fleet.
func (a *Agent) rollouts(fleet string) reconcile.Rollouts {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	out := reconcile.Rollouts{}
	for k, r := range a.file.Rollouts {
		if r.Fleet == fleet {
			out[k] = r
		}
	}
	return out
}

// saveRollouts replaces one fleet's rollout records and saves the file.
func (a *Agent) saveRollouts(fleet string, rs reconcile.Rollouts) error {
	a.fileMu.Lock()
	defer a.fileMu.Unlock()
	next := maps.Clone(a.file.Rollouts)
	maps.DeleteFunc(next, func(_ string, r reconcile.RolloutRecord) bool { return r.Fleet == fleet })
	for k, r := range rs {
		if r.Fleet == fleet {
			next[k] = r
		}
	}
	a.file.Rollouts = next
	return a.store.Save(a.file)
}

// treeOf makes sure the revision's tree is on disk: the source prunes old
// trees, and a fleet kept at an older revision still needs its files.
func (a *Agent) treeOf(ctx context.Context, rev reconcile.Revision) (reconcile.Revision, error) {
	if rev.Dir == "" {
		return rev, nil
	}
	if _, err := os.Stat(rev.Dir); err == nil {
		return rev, nil
	}
	return a.src.Checkout(ctx, rev.Commit)
}
