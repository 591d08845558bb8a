package agent

import (
	"maps"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// State is everything the agent decides from. Next returns a new State; it
// never changes the one it is given.
type State struct {
	Started bool
	// Revision is the newest revision at least one fleet took; Invalid
	// the problems of the newest revision loaded, "" when it loaded
	// cleanly. Clean says that the newest revision loaded without any
	// problem: only then are fleets that left it pruned.
	Revision *reconcile.Revision
	Invalid  string
	Clean    bool
	// invalidCommit is the last revision told as invalid, so that it is
	// told once.
	InvalidCommit string
	// Refused is the head the source refused (untrusted, a rewind) while
	// it is the head: every fleet keeps what it has and is Stalled.
	Refused *Refusal

	Source SourceState
	Engine EngineState
	Fleets map[string]Fleet
	// Running counts the applies in flight (Rules.Parallel bounds it).
	Running int
	// Surveying is set while a Survey is in flight.
	Surveying bool
	// Resuming holds the older commits being loaded for fleets that lack a
	// model (after a restart on an invalid head, or with the source down).
	Resuming map[string]bool

	// WindowOpen says whether changes could be applied at the last step
	// (sync windows).
	WindowOpen bool

	NextPoll, NextResync time.Time

	// Images is what the registries said of the tags the fleets run
	// (imageupdates.go); NextImageCheck is when they are asked again,
	// CheckingImages set while a CheckImages is in flight.
	Images         map[string]ImageState
	NextImageCheck time.Time
	CheckingImages bool
	// TimerAt is the time the shell's timer is armed for (zero: none).
	TimerAt time.Time
}

// SourceState is the Git source's side of the state.
type SourceState struct {
	Fetching bool // a Fetch effect is in flight
	// Again asks for one more fetch once the one in flight ends, or once
	// the backoff after a failure ends; AgainManual when one of the asks
	// was a manual sync (it does not wait for the backoff).
	Again       bool
	AgainManual bool
	Failures    int
	RetryAt     time.Time
	Err         string
	Since       time.Time // failing since
	Ready       bool      // synced at least once
	Fetched     time.Time // last successful ask
}

// EngineState is the engine connection's side: Up once events are
// subscribed to and the engine answered; applies wait for it.
type EngineState struct {
	Up       bool
	Watching bool // a Watch effect is in flight
	Failures int
	RetryAt  time.Time
	Err      string
	Since    time.Time // down since
}

// Wake says why a fleet is due for an apply; wake-ups coalesce into a set.
type Wake uint8

// Wake-ups.
const (
	WakeRevision Wake = 1 << iota // its spec changed, or it left the spec
	WakeEvent                     // an engine event about its own containers
	WakeObject                    // an engine event about what its stall names
	WakeSync                      // a manual sync
	WakeResync                    // the start, a periodic full resync, the engine back
	WakeRetry                     // its retry or rollout-delay timer
	WakeImage                     // a tag it runs was pulled at a new digest (image_updates: apply)
)

// Fleet is one fleet's side of the state.
type Fleet struct {
	Name string
	// Model is the fleet as loaded from Rev; nil for a fleet that left the
	// spec (Gone) or whose model is not loaded yet.
	Model  *fleets.Fleet
	Digest string
	Rev    reconcile.Revision
	// Saved is the commit the state file names for its model, until the
	// model is loaded again after a restart.
	Saved string
	// Gone marks a fleet that left the spec (or containers of a fleet no
	// revision names): its apply prunes what it left, then it is dropped.
	Gone bool

	Pending      Wake
	PendingSince time.Time
	Full         bool // the next apply inspects every container (resync)
	Retry        bool // the next apply retries failed rollouts (manual sync)

	Running bool
	Started time.Time

	// Failures counts the applies in a row that failed with a retryable
	// fault; RetryAt is when the next one is due.
	Failures int
	RetryAt  time.Time
	Faults   []Fault // the retryable faults of the last apply
	// Delay is when a rollout's delayed batch is due (update_config delay).
	Delay time.Time
	// Stall holds the permanent faults of the last apply: the fleet waits
	// for something that can change them. Invalid holds the problems of
	// the newest revision for this fleet, whose older model it keeps.
	Stall   *Stall
	Invalid string

	// Deferred marks a fleet whose last apply only reported (outside the
	// sync windows) and left something to do: it is applied when a window
	// opens.
	Deferred bool

	// Standby names the agent that holds the swarm's lease when this one
	// does not: a swarm fleet's last apply did nothing, and the fleet waits
	// for this agent to take the lease (LeaderChanged).
	Standby string

	Applied       string // commit last applied without a fault
	LastAttempt   time.Time
	Took          time.Duration
	Drift         []drift.Item // left after the last apply
	DriftReported bool
	Rollouts      []reconcile.RolloutRecord

	Conditions []Condition

	// Posted is the commit status last posted (status_commit.go).
	Posted CommitStatus

	// Announced is, per image tag, the registry digest people were told
	// of (imageupdates.go): each new digest is told once.
	Announced map[string]string
}

// Stall is why a fleet waits: permanent faults and what they are about.
// Reason is the first fault's (for the condition); any fault's object or
// kind of event can wake it.
type Stall struct {
	Reason  fault.Reason
	Message string
	Objects []string
	Faults  []Fault
	Since   time.Time
}

// Fault is one failure of an apply, classified.
type Fault struct {
	Class   fault.Class  `json:"class"`
	Reason  fault.Reason `json:"reason"`
	Object  string       `json:"object,omitempty"`
	Message string       `json:"message"`
}

// Rules is the policy Next applies: plain data and pure functions.
type Rules struct {
	Host    string
	Version string
	// Parallel bounds the applies in flight (default 4).
	Parallel int
	// Retry is the backoff of a fleet's retryable failures; SourceRetry
	// that of the Git source, EngineRetry of the engine connection.
	Retry, SourceRetry, EngineRetry Backoff
	// Poll returns the next time to ask the source after last (an
	// interval or a cron schedule); it must be pure.
	Poll func(last time.Time) time.Time
	// Resync is the period of full resyncs (default 5m).
	Resync time.Duration
	// InWindow reports whether changes may be applied at a time (sync
	// windows); nil means always. Outside a window drift is reported only.
	InWindow func(time.Time) bool
	// Seed spreads the jitter of backoffs and resyncs across hosts.
	Seed uint64
	// ImageCheck is the period of the image update check (the registry
	// asked which digest each tag names now); 0 never checks.
	ImageCheck time.Duration
}

// WithDefaults fills in what r leaves unset.
func (r Rules) WithDefaults() Rules {
	if r.Parallel <= 0 {
		r.Parallel = 4
	}
	if r.Retry == (Backoff{}) {
		r.Retry = Backoff{Floor: 5 * time.Second, Ceil: 5 * time.Minute}
	}
	if r.SourceRetry == (Backoff{}) {
		r.SourceRetry = Backoff{Floor: 500 * time.Millisecond, Ceil: 15 * time.Minute}
	}
	if r.EngineRetry == (Backoff{}) {
		r.EngineRetry = Backoff{Floor: 500 * time.Millisecond, Ceil: 30 * time.Second}
	}
	if r.Resync <= 0 {
		r.Resync = 5 * time.Minute
	}
	if r.Poll == nil {
		r.Poll = func(last time.Time) time.Time { return last.Add(time.Minute) }
	}
	return r
}

// Next is the agent's decision: given the state, one input and the time,
// the next state and the effects to run, in order. It is pure.
func Next(s State, in Input, now time.Time, r Rules) (State, []Effect) {
	m := &machine{s: s.clone(), r: r.WithDefaults(), now: now}
	in.apply(m)
	if m.s.Started {
		m.due()
		m.imagesDue()
		m.schedule()
		m.refresh()
		m.arm()
	}
	return m.s, m.fx
}

// machine is one step of Next.
type machine struct {
	s   State
	r   Rules
	now time.Time
	fx  []Effect
}

func (m *machine) emit(e Effect) { m.fx = append(m.fx, e) }

func (s State) clone() State {
	s.Fleets = maps.Clone(s.Fleets)
	if s.Fleets == nil {
		s.Fleets = map[string]Fleet{}
	}
	s.Resuming = maps.Clone(s.Resuming)
	if s.Resuming == nil {
		s.Resuming = map[string]bool{}
	}
	s.Images = maps.Clone(s.Images)
	return s
}

// update applies fn to the fleet named name, creating it when absent.
func (m *machine) update(name string, fn func(*Fleet)) {
	f, ok := m.s.Fleets[name]
	if !ok {
		f = Fleet{Name: name}
	}
	fn(&f)
	m.s.Fleets[name] = f
}

// wake adds w to the fleet's pending wake-ups.
func (m *machine) wake(f *Fleet, w Wake) {
	if f.Pending == 0 {
		f.PendingSince = m.now
	}
	f.Pending |= w
}

// live reports whether a fleet has something to apply: a model, or what
// it left behind.
func (f Fleet) live() bool { return f.Model != nil || f.Gone }

// wakeAll wakes every fleet that has something to apply.
func (m *machine) wakeAll(w Wake, full, retry bool) {
	for name, f := range m.s.Fleets {
		if !f.live() {
			continue
		}
		m.wake(&f, w)
		f.Full = f.Full || full
		f.Retry = f.Retry || retry
		m.s.Fleets[name] = f
	}
}

// tell emits a notification, routed by the fleet's policy, redacted
// with every fleet's known secret values.
func (m *machine) tell(e reconcile.Event) {
	e.Time, e.Host = m.now, m.r.Host
	if f, ok := m.s.Fleets[e.Fleet]; ok && f.Model != nil {
		e.SlackChannel = f.Model.Policy.Notify.SlackChannel
	}
	m.emit(Notify{Event: redactEvent(e, redactorOf(m.s))})
}

// persist emits the state worth keeping across restarts.
func (m *machine) persist() {
	saved := map[string]SavedFleet{}
	for name, f := range m.s.Fleets {
		commit := f.Saved
		if f.Model != nil {
			commit = f.Rev.Commit
		}
		saved[name] = SavedFleet{Commit: commit, Applied: f.Applied, Gone: f.Gone, Posted: f.Posted}
	}
	m.emit(Persist{Fleets: saved})
}
