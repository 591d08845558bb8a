package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Revision is one revision of the fleet repository, checked out on disk.
type Revision struct {
	Commit  string    `json:"commit"`
	Subject string    `json:"subject,omitempty"`
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	Dir     string    `json:"-"`
}

// Source follows the fleet repository: Sync asks the remote for its head
// and fetches and checks out only when it moved (changed reports that).
type Source interface {
	Sync(ctx context.Context) (rev Revision, changed bool, err error)
	// Checkout returns a commit the source already has, without the
	// network: the last good revision after a restart.
	Checkout(ctx context.Context, commit string) (Revision, error)
}

// Notifier takes events for people. Notify must not block.
type Notifier interface{ Notify(Event) }

// Metrics is what the agent reports to monitoring.
type Metrics interface {
	ObserveReconcile(fleet, result string, d time.Duration)
	SetDrift(byKind map[string]int)
	SetApplied(fleet, revision string)
	ObserveFetch(d time.Duration, err error)
	SetBackoff(d time.Duration)
	ObserveRollout(outcome string)
}

// AgentState is what the agent persists: it survives restarts.
type AgentState struct {
	Rollouts Rollouts          `json:"rollouts"`
	Applied  map[string]string `json:"applied"` // fleet -> commit last applied
	// LastGood is the last revision that loaded without problems: after a
	// restart on an invalid head, the agent goes on with it.
	LastGood string `json:"last_good,omitempty"`
}

// Store persists AgentState (atomically).
type Store interface {
	Load() (AgentState, error)
	Save(AgentState) error
}

// AgentConfig configures the daemon loop.
type AgentConfig struct {
	Host fleets.Host
	// Load loads the fleets of a checked-out revision for Host.
	Load func(ctx context.Context, dir string) ([]fleets.Fleet, error)
	// Poll says when to ask the source for news: given the last poll, it
	// returns the next (a jittered interval, or a cron schedule).
	Poll func(last time.Time) time.Time
	// InWindow reports whether changes may be applied at a time (sync
	// windows); nil means always. Outside a window drift is reported only.
	InWindow func(time.Time) bool
	// Events, when set, subscribes to engine events of managed containers
	// (subscribe before listing); every event triggers a reconcile.
	Events func(ctx context.Context) (<-chan string, <-chan error)
	// Resync is the period of full resyncs that inspect every managed
	// container (default 5m).
	Resync         time.Duration
	Parallelism    int
	AllowMassPrune bool
	Log            *slog.Logger
	// Version is fleetd's version, for the daemon-started event.
	Version string
}

// Agent is the daemon: one serialized loop that follows the source and
// converges the host, woken by polls, webhooks, manual syncs and engine
// events. Triggers coalesce: a burst of them causes one reconcile, and no
// two reconciles ever run at once.
type Agent struct {
	cfg     AgentConfig
	eng     Engine
	src     Source
	notify  Notifier
	metrics Metrics
	store   Store

	wake    chan struct{}
	wantGit atomic.Bool
	manual  atomic.Bool
	full    atomic.Bool

	mu     sync.Mutex
	status AgentStatus
}

// AgentStatus is the agent's state for /v1/status.
type AgentStatus struct {
	Host      string         `json:"host"`
	Revision  *Revision      `json:"revision,omitempty"` // last good revision loaded
	Fetched   time.Time      `json:"fetched,omitzero"`   // last successful ask of the source
	LastSync  time.Time      `json:"last_sync,omitzero"`
	Ready     bool           `json:"ready"`
	Error     string         `json:"error,omitempty"`       // the last cycle's error, if any
	Invalid   string         `json:"invalid,omitempty"`     // problems of the newest revision, if it failed to load
	Backoff   string         `json:"git_backoff,omitempty"` // while the source is unreachable
	Fleets    []FleetStatus  `json:"fleets"`
	DriftKind map[string]int `json:"drift"`
}

// FleetStatus is one fleet's line in the status.
type FleetStatus struct {
	Name     string          `json:"name"`
	Desired  string          `json:"desired_revision"`
	Applied  string          `json:"applied_revision,omitempty"`
	Drift    []drift.Item    `json:"drift"`
	Rollouts []RolloutRecord `json:"rollouts,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// NewAgent builds the agent; Run runs it.
func NewAgent(cfg AgentConfig, eng Engine, src Source, n Notifier, m Metrics, store Store) *Agent {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	a := &Agent{cfg: cfg, eng: eng, src: src, notify: n, metrics: m, store: store, wake: make(chan struct{}, 1)}
	a.status.Host = cfg.Host.Name
	return a
}

// Trigger asks for a reconcile. It never blocks: triggers that arrive while
// one is pending coalesce into it. A "manual" trigger also retries failed
// rollouts and asks the source.
func (a *Agent) Trigger(kind TriggerKind) {
	switch kind {
	case TriggerManual:
		a.manual.Store(true)
		a.wantGit.Store(true)
	case TriggerGit:
		a.wantGit.Store(true)
	case TriggerResync:
		a.full.Store(true)
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// TriggerKind says what woke the agent.
type TriggerKind int

// Trigger kinds.
const (
	TriggerEngine TriggerKind = iota // an engine event: converge, no Git
	TriggerGit                       // a poll or webhook: ask the source first
	TriggerManual                    // POST /v1/sync, fleetd sync: Git, and retry failed rollouts
	TriggerResync                    // periodic full resync: inspect everything
)

// Status returns a copy of the current status.
func (a *Agent) Status() AgentStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Ready reports whether the source was synced at least once; the caller
// adds the engine check.
func (a *Agent) Ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.status.Ready {
		return errors.New("source not synced yet")
	}
	return nil
}

// Run runs the loop until ctx ends. It returns nil on a clean stop.
func (a *Agent) Run(ctx context.Context) error {
	state, err := a.store.Load()
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	if state.Applied == nil {
		state.Applied = map[string]string{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); a.poll(ctx) }()
	go func() { defer wg.Done(); a.watch(ctx) }()
	l := loop{Agent: a, state: state}
	l.init()
	l.tell(Event{Kind: EventDaemonStarted, Message: fmt.Sprintf("fleetd %s started on %s", a.cfg.Version, a.cfg.Host.Name)})
	a.wantGit.Store(true)
	a.full.Store(true)
	for {
		l.cycle(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		}
	}
}

// poll triggers the source on the configured schedule, and a full resync
// every Resync.
func (a *Agent) poll(ctx context.Context) {
	next := a.cfg.Poll(time.Now())
	resync := time.Now().Add(jitter(a.cfg.Resync))
	for {
		wait := min(time.Until(next), time.Until(resync))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case now := <-t.C:
			if !now.Before(next) {
				next = a.cfg.Poll(now)
				a.Trigger(TriggerGit)
			}
			if !now.Before(resync) {
				resync = now.Add(jitter(a.cfg.Resync))
				a.Trigger(TriggerResync)
			}
		}
	}
}

// watch turns engine events into reconciles. Events can be lost, so after
// a reconnect it asks for a full resync.
func (a *Agent) watch(ctx context.Context) {
	if a.cfg.Events == nil {
		return
	}
	backoff := newBackoff(500*time.Millisecond, time.Minute)
	for ctx.Err() == nil {
		events, errs := a.cfg.Events(ctx)
		a.Trigger(TriggerResync) // subscribed: now list everything
	recv:
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					break recv
				}
				backoff.reset()
				a.Trigger(TriggerEngine)
			case err := <-errs:
				if err != nil {
					a.cfg.Log.Warn("engine events interrupted; resubscribing", "err", err)
				}
				break recv
			}
		}
		if sleep(ctx, backoff.next()) != nil {
			return
		}
	}
}

// jitter spreads d by ±10% so that a fleet of hosts does not poll in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// backoff is exponential, jittered, between a floor and a ceiling.
type backoff struct {
	floor, ceil, cur time.Duration
}

func newBackoff(floor, ceil time.Duration) *backoff { return &backoff{floor: floor, ceil: ceil} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.floor
	} else {
		b.cur = min(b.cur*2, b.ceil)
	}
	return jitter(b.cur)
}

func (b *backoff) reset() { b.cur = 0 }
