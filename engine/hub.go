package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// The hub is the one subscription to the engine's container events that
// every wait of a Docker shares: rollout gates, dependency waits, hook
// waits. It starts on first use, fans each event out to the waits that
// follow that container, and keeps a short record per container, so that
// a wait that registers after an event (a health check that passed before
// the gate was set) still learns of it. A container the hub saw from its
// create on, and whose healthcheck it knows, needs no inspect to be
// judged; otherwise a wait inspects once to learn where it stands. When
// the stream fails the hub resubscribes (from the last event's time, so
// the engine replays what it can) and tells every wait to inspect once,
// since what happened in between may be lost.

// eventSource is the part of the SDK client the hub reads.
type eventSource interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

// hubActions are the container actions the hub follows: the lifecycle and
// the health verdicts, not the exec_* events of every health probe.
var hubActions = []string{"create", "start", "die", "stop", "kill", "oom", "restart", "pause", "unpause", "destroy", "rename", "health_status"}

// hubFilters subscribes to containers' lifecycle and health events. They
// are not filtered to this instance's label: a wait may follow any
// container (a hook's, a test's), and the label is not on every event of
// an older engine's containers either.
func hubFilters() filters.Args {
	args := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for _, a := range hubActions {
		args.Add("event", a)
	}
	return args
}

// ctrEvent is one container event as the waits judge it.
type ctrEvent struct {
	Seq    uint64 // the hub's order of arrival
	ID     string
	Name   string // the container's name at the time of the event
	Action string // start, die, health_status, ...
	Detail string // health_status: healthy | unhealthy; die: the exit code
	Time   time.Time
}

// ctrEventFrom reads an engine event.
func ctrEventFrom(m events.Message) ctrEvent {
	action, detail, _ := strings.Cut(string(m.Action), ":")
	ev := ctrEvent{ID: m.Actor.ID, Name: strings.TrimPrefix(m.Actor.Attributes["name"], "/"), Action: action,
		Detail: strings.TrimSpace(detail), Time: time.Unix(0, m.TimeNano)}
	if action == "die" {
		ev.Detail = m.Actor.Attributes["exitCode"]
	}
	return ev
}

// healthKnown is what the hub knows of a container's healthcheck.
type healthKnown int

const (
	healthUnknown healthKnown = iota
	healthYes
	healthNo
)

// recordEvents is how many events the hub keeps per container.
const recordEvents = 32

// maxRecords bounds the containers the hub keeps a record of; the
// destroyed and the least recently seen go first.
const maxRecords = 2048

type ctrRecord struct {
	name    string
	events  []ctrEvent // the last recordEvents, oldest first
	managed bool       // this agent's (from its labels or its create)
	health  healthKnown
	// whole: the hub saw the container's create and every event since,
	// so events tells its state without an inspect.
	whole   bool
	gone    bool
	touched uint64 // seq of its last event or note
}

// hubSub is one wait's registration.
type hubSub struct {
	ref    string // as the wait names the container (name, ID or ID prefix)
	id     string // its ID, once known
	ch     chan ctrEvent
	resync chan struct{} // cap 1: inspect, events may have been lost
}

type hub struct {
	src       eventSource
	isManaged func(map[string]string) bool
	log       *slog.Logger
	// backoff is the first wait before a resubscribe; it doubles up to
	// maxBackoff.
	backoff, maxBackoff time.Duration

	startMu sync.Mutex // serialises subscribing
	mu      sync.Mutex
	live    bool // a stream is open
	stop    context.CancelFunc
	closed  bool
	seq     uint64
	last    time.Time // engine time of the last event: where a resubscribe starts
	recs    map[string]*ctrRecord
	names   map[string]string // container name -> ID, as the events tell
	subs    map[*hubSub]struct{}
	streams int // subscriptions made, for tests
}

func newHub(src eventSource, isManaged func(map[string]string) bool, log *slog.Logger) *hub {
	return &hub{src: src, isManaged: isManaged, log: log, backoff: 250 * time.Millisecond, maxBackoff: 10 * time.Second,
		recs: map[string]*ctrRecord{}, names: map[string]string{}, subs: map[*hubSub]struct{}{}}
}

// ensure opens the stream unless it is open. It returns once the engine
// has answered the subscription: every event after that reaches the hub.
func (h *hub) ensure(ctx context.Context) error {
	h.mu.Lock()
	live, closed := h.live, h.closed
	h.mu.Unlock()
	if live || closed {
		return nil
	}
	h.startMu.Lock()
	defer h.startMu.Unlock()
	return h.subscribe(ctx)
}

// subscribe opens a stream (startMu held). After a failure it starts from
// the last event seen, so that the engine replays what it still has.
func (h *hub) subscribe(ctx context.Context) error {
	h.mu.Lock()
	if h.live || h.closed {
		h.mu.Unlock()
		return nil
	}
	since := h.last
	h.mu.Unlock()
	opts := events.ListOptions{Filters: hubFilters()}
	if !since.IsZero() {
		opts.Since = sinceParam(since)
	}
	sctx, cancel := context.WithCancel(context.Background())
	answered := make(chan struct{})
	go func() { // the stream outlives ctx, but its opening must not
		select {
		case <-ctx.Done():
			cancel()
		case <-answered:
		}
	}()
	msgs, errs := h.src.Events(sctx, opts)
	close(answered)
	select {
	case err := <-errs:
		cancel()
		if err == nil || ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return classify(err)
	default:
	}
	h.mu.Lock()
	h.live, h.stop = true, cancel
	h.streams++
	h.mu.Unlock()
	go h.run(sctx, msgs, errs)
	return nil
}

// sinceParam renders t as the engine's since parameter:
// seconds.nanoseconds.
func sinceParam(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// run reads one stream until it ends; then, if any wait follows a
// container, it resubscribes and tells the waits to resync.
func (h *hub) run(ctx context.Context, msgs <-chan events.Message, errs <-chan error) {
	for {
		select {
		case m := <-msgs:
			h.dispatch(ctrEventFrom(m), m.Actor.Attributes)
			continue
		case err := <-errs:
			h.lost(ctx, err)
		}
		return
	}
}

// lost handles the end of a stream.
func (h *hub) lost(ctx context.Context, err error) {
	h.mu.Lock()
	h.live = false
	for _, r := range h.recs {
		r.whole = false // what happened while no stream was open is unknown
	}
	for s := range h.subs {
		signal(s.resync) // an inspect tells them now (or fails as the stream did)
	}
	closed, waiting := h.closed, len(h.subs) > 0
	h.mu.Unlock()
	if closed || ctx.Err() != nil {
		return
	}
	h.log.Debug("engine events stream ended", "err", err)
	if !waiting {
		return // the next wait subscribes again
	}
	h.startMu.Lock()
	defer h.startMu.Unlock()
	for delay := h.backoff; ; delay = min(2*delay, h.maxBackoff) {
		h.mu.Lock()
		closed, waiting = h.closed, len(h.subs) > 0
		h.mu.Unlock()
		if closed || !waiting {
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := h.subscribe(sctx)
		cancel()
		if err == nil {
			break
		}
		h.log.Debug("resubscribe to engine events", "err", err)
		time.Sleep(delay)
	}
	h.mu.Lock()
	for s := range h.subs {
		signal(s.resync)
	}
	h.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// dispatch records an event and hands it to the waits following its
// container.
func (h *hub) dispatch(ev ctrEvent, attrs map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	ev.Seq = h.seq
	if ev.Time.After(h.last) {
		h.last = ev.Time
	}
	r := h.record(ev.ID)
	if ev.Action == "create" {
		r.whole = true
	}
	if h.isManaged != nil && h.isManaged(attrs) {
		r.managed = true
	}
	if ev.Name != "" && ev.Name != r.name {
		if h.names[r.name] == ev.ID {
			delete(h.names, r.name)
		}
		r.name = ev.Name
	}
	if r.name != "" && !r.gone {
		h.names[r.name] = ev.ID
	}
	if ev.Action == "destroy" {
		r.gone = true
		if h.names[r.name] == ev.ID {
			delete(h.names, r.name)
		}
	}
	if len(r.events) == recordEvents {
		r.events = append(r.events[:0], r.events[1:]...)
		r.whole = false // its start may be what fell off
	}
	r.events = append(r.events, ev)
	for s := range h.subs {
		if !s.follows(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			signal(s.resync) // too slow: it inspects instead
		}
	}
}

// record returns the record of id, creating it (and making room).
func (h *hub) record(id string) *ctrRecord {
	r := h.recs[id]
	if r == nil {
		if len(h.recs) >= maxRecords {
			h.evict()
		}
		r = &ctrRecord{}
		h.recs[id] = r
	}
	r.touched = h.seq
	return r
}

// evict drops the destroyed containers' records, or else the least
// recently touched quarter.
func (h *hub) evict() {
	n := len(h.recs)
	for id, r := range h.recs {
		if r.gone {
			delete(h.recs, id)
		}
	}
	if len(h.recs) < n {
		return
	}
	cut := h.seq - h.seq/4
	for id, r := range h.recs {
		if r.touched < cut {
			if h.names[r.name] == id {
				delete(h.names, r.name)
			}
			delete(h.recs, id)
		}
	}
}

// follows reports whether ev is about the container s follows.
func (s *hubSub) follows(ev ctrEvent) bool {
	if s.id != "" {
		return ev.ID == s.id
	}
	return ev.ID == s.ref || (ev.Name != "" && ev.Name == s.ref) || (isIDPrefix(s.ref) && strings.HasPrefix(ev.ID, s.ref))
}

// isIDPrefix reports whether ref can only be an ID (or a prefix of one).
func isIDPrefix(ref string) bool {
	if len(ref) < 12 || len(ref) > 64 {
		return false
	}
	for _, c := range ref {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// known is what the hub knows of a container when a wait registers.
type known struct {
	id      string     // "" when the hub cannot tell which container ref is
	events  []ctrEvent // its recorded events, oldest first
	whole   bool       // events tell its whole state
	health  healthKnown
	managed bool
}

// watch registers a wait for the container ref and returns what the hub
// knows of it so far; every later event of it is sent on the
// registration's channel. Release it with unwatch.
func (h *hub) watch(ctx context.Context, ref string) (*hubSub, known, error) {
	if err := h.ensure(ctx); err != nil {
		return nil, known{}, err
	}
	s := &hubSub{ref: ref, ch: make(chan ctrEvent, 64), resync: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.knownLocked(ref)
	s.id = k.id
	h.subs[s] = struct{}{}
	if !h.live {
		signal(s.resync) // the stream ended between ensure and here
	}
	return s, k, nil
}

func (h *hub) knownLocked(ref string) known {
	id := ref
	r := h.recs[ref]
	if r == nil {
		if id = h.names[ref]; id != "" {
			r = h.recs[id]
		}
	}
	if r == nil || r.gone {
		return known{}
	}
	return known{id: id, events: append([]ctrEvent(nil), r.events...), whole: r.whole, health: r.health, managed: r.managed}
}

// bind makes s follow the container with this ID (learnt by inspecting
// it), and records what the inspect told about its healthcheck.
func (h *hub) bind(s *hubSub, id string, health healthKnown) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.id = id
	if r := h.recs[id]; r != nil && health != healthUnknown {
		r.health = health
	}
}

func (h *hub) unwatch(s *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// note records a container this engine created, as name, with what its
// spec says of its healthcheck: it is this agent's, and when the stream
// was open before the create, the hub has its whole history.
func (h *hub) note(id, name string, health healthKnown) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.record(id)
	r.managed = true
	if health != healthUnknown {
		r.health = health
	}
	if r.name == "" {
		r.name = name
		h.names[name] = id
	}
}

// managed returns the ID of the container ref when the hub knows it as
// this agent's (labels never change, so it stays so); ok is false when it
// does not know. A name resolves only while the stream is open (renames
// and removals keep the names current).
func (h *hub) managed(ref string) (id, name string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.knownLocked(ref)
	if k.id == "" || !k.managed || (k.id != ref && !h.live) {
		return "", "", false // a name is only as current as the stream
	}
	return k.id, h.recs[k.id].name, true
}

// learnManaged records that the containers with these IDs are this
// agent's (from a list that showed their labels). Names are not taken
// from a list: only the events keep them current.
func (h *hub) learnManaged(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		h.record(id).managed = true
	}
}

// close ends the stream for good.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.stop != nil {
		h.stop()
	}
}
