package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

// fakeEvents is an events source the test drives: each subscription gets
// its own stream; the test sends messages to the newest one or ends it.
type fakeEvents struct {
	mu      sync.Mutex
	streams []*fakeStream
	opts    []events.ListOptions
	refuse  error // the next subscription fails with it
}

type fakeStream struct {
	msgs chan events.Message
	errs chan error
}

func (f *fakeEvents) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &fakeStream{msgs: make(chan events.Message), errs: make(chan error, 1)}
	f.opts = append(f.opts, opts)
	if f.refuse != nil {
		s.errs <- f.refuse
		f.refuse = nil
		return s.msgs, s.errs
	}
	f.streams = append(f.streams, s)
	go func() {
		<-ctx.Done()
		select {
		case s.errs <- ctx.Err():
		default:
		}
	}()
	return s.msgs, s.errs
}

func (f *fakeEvents) current(t *testing.T) *fakeStream {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.streams) == 0 {
		t.Fatal("no subscription")
	}
	return f.streams[len(f.streams)-1]
}

func (f *fakeEvents) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

// send delivers an event on the current stream and returns once the hub
// dispatched it.
func (f *fakeEvents) send(t *testing.T, id, name, action string, attrs ...string) {
	t.Helper()
	a := map[string]string{"name": name}
	for i := 0; i+1 < len(attrs); i += 2 {
		a[attrs[i]] = attrs[i+1]
	}
	m := events.Message{Type: events.ContainerEventType, Action: events.Action(action), Actor: events.Actor{ID: id, Attributes: a},
		TimeNano: time.Now().UnixNano()}
	// The hub dispatches one message before it takes the next: once a
	// second one is taken, the first is recorded and fanned out.
	sync := events.Message{Type: events.ContainerEventType, Action: "exec_sync", Actor: events.Actor{ID: "sync"}}
	for _, m := range []events.Message{m, sync} {
		select {
		case f.current(t).msgs <- m:
		case <-time.After(5 * time.Second):
			t.Fatalf("hub did not take %s %s", id, action)
		}
	}
}

func testHub(src eventSource) *hub {
	h := newHub(src, func(l map[string]string) bool { return l["io.fleetd.managed"] == "true" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.backoff, h.maxBackoff = time.Millisecond, 5*time.Millisecond
	return h
}

func receive(t *testing.T, s *hubSub) ctrEvent {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return ctrEvent{}
}

// One stream for every wait, each event to the waits of its container
// only, by ID or by name.
func TestHubFansOut(t *testing.T) {
	src := &fakeEvents{}
	h := testHub(src)
	defer h.close()
	ctx := t.Context()
	a, _, err := h.watch(ctx, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := h.watch(ctx, "web-2")
	if err != nil {
		t.Fatal(err)
	}
	b2, _, _ := h.watch(ctx, "web-2")
	if n := src.count(); n != 1 {
		t.Fatalf("%d subscriptions for three waits, want one", n)
	}
	src.send(t, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "web-2", "health_status: healthy")
	src.send(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "web-1", "die", "exitCode", "3")
	if ev := receive(t, b); ev.Action != "health_status" || ev.Detail != "healthy" {
		t.Errorf("web-2's wait got %+v", ev)
	}
	if ev := receive(t, b2); ev.Action != "health_status" {
		t.Errorf("web-2's second wait got %+v", ev)
	}
	if ev := receive(t, a); ev.Action != "die" || ev.Detail != "3" {
		t.Errorf("web-1's wait got %+v, want die with exit code 3", ev)
	}
	select {
	case ev := <-b.ch:
		t.Errorf("web-2's wait also got %+v", ev)
	default:
	}
	opts := src.opts[0]
	if got := opts.Filters.Get("type"); len(got) != 1 || got[0] != "container" {
		t.Errorf("subscribed to types %v, want containers only", got)
	}
	if opts.Filters.ExactMatch("event", "exec_start") || !opts.Filters.ExactMatch("event", "health_status") {
		t.Errorf("subscribed to actions %v: want health_status and no exec_*", opts.Filters.Get("event"))
	}
}

// A wait that registers after the event still learns of it from the
// record, and of the container's name and labels.
func TestHubLateWaitSeesRecord(t *testing.T) {
	src := &fakeEvents{}
	h := testHub(src)
	defer h.close()
	ctx := t.Context()
	if err := h.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	id := "cccccccccccccccccccccccccccccccc"
	src.send(t, id, "web-1.new", "create", "io.fleetd.managed", "true")
	h.note(id, "web-1.new", healthYes)
	src.send(t, id, "web-1.new", "start")
	src.send(t, id, "web-1.new", "health_status: healthy")
	s, k, err := h.watch(ctx, "web-1.new")
	if err != nil {
		t.Fatal(err)
	}
	defer h.unwatch(s)
	if k.id != id || !k.whole || k.health != healthYes || !k.managed {
		t.Fatalf("known %+v; want the ID, whole, with a healthcheck, managed", k)
	}
	if v := lastVerdict(k.events, healthyVerdict, k.health); v != waitOver {
		t.Errorf("recorded %v judged %v, want over", k.events, v)
	}
	// A rename moves the name; the old one no longer resolves.
	src.send(t, id, "web-1", "rename", "oldName", "/web-1.new")
	if got, _, ok := h.managed("web-1"); !ok || got != id {
		t.Errorf("managed(web-1) = %q, %v; want %s", got, ok, id)
	}
	if _, _, ok := h.managed("web-1.new"); ok {
		t.Error("the old name still resolves after the rename")
	}
	// A container seen only after its create is not whole: a wait
	// inspects it.
	src.send(t, "dddddddddddddddddddddddddddddddd", "other", "start")
	if _, k, _ := h.watch(ctx, "other"); k.whole {
		t.Error("a container whose create the hub did not see is whole")
	}
}

// After a stream error the hub resubscribes from the last event's time
// and every wait is told to resync (inspect once); records no longer
// count as whole.
func TestHubResubscribesAfterError(t *testing.T) {
	src := &fakeEvents{}
	h := testHub(src)
	defer h.close()
	ctx := t.Context()
	id := "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	if err := h.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	src.send(t, id, "web-1", "create")
	s, k, err := h.watch(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.unwatch(s)
	if !k.whole {
		t.Fatal("not whole before the error")
	}
	src.mu.Lock()
	src.refuse = errors.New("connection refused") // the first retry fails too
	src.mu.Unlock()
	src.current(t).errs <- io.ErrUnexpectedEOF
	deadline := time.Now().Add(5 * time.Second)
	for src.count() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if src.count() != 2 {
		t.Fatalf("%d streams opened, want a resubscribe after the refused retry", src.count())
	}
	src.mu.Lock()
	last := src.opts[len(src.opts)-1]
	src.mu.Unlock()
	if last.Since == "" {
		t.Error("resubscribed without since: what the engine still has is lost")
	}
	select {
	case <-s.resync:
	case <-time.After(5 * time.Second):
		t.Fatal("no resync after resubscribing")
	}
	if _, k, _ := h.watch(ctx, "web-1"); k.whole {
		t.Error("a record stays whole across a lost stream")
	}
	src.send(t, id, "web-1", "health_status: healthy")
	if ev := receive(t, s); ev.Detail != "healthy" {
		t.Errorf("after resubscribing the wait got %+v", ev)
	}
}

// With no wait registered, a failed stream is not reopened until a wait
// needs it (no reconnect loop while the engine is down).
func TestHubIdleDoesNotReconnect(t *testing.T) {
	src := &fakeEvents{}
	h := testHub(src)
	defer h.close()
	if err := h.ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	src.current(t).errs <- io.ErrUnexpectedEOF
	time.Sleep(50 * time.Millisecond)
	if n := src.count(); n != 1 {
		t.Fatalf("%d streams with no wait, want 1", n)
	}
	// With no stream, a name may be stale: only an ID resolves.
	id := "ffffffffffffffffffffffffffffffff"
	h.note(id, "web-9", healthYes)
	if _, _, ok := h.managed("web-9"); ok {
		t.Error("a name resolved while no stream keeps names current")
	}
	if got, _, ok := h.managed(id); !ok || got != id {
		t.Errorf("managed(ID) = %q, %v; want it known", got, ok)
	}
	s, _, err := h.watch(t.Context(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	h.unwatch(s)
	if n := src.count(); n != 2 {
		t.Fatalf("%d streams after a wait registered, want 2", n)
	}
}

func TestVerdicts(t *testing.T) {
	ev := func(action, detail string) ctrEvent { return ctrEvent{Action: action, Detail: detail} }
	cases := []struct {
		name   string
		decide func(ctrEvent, healthKnown) verdict
		ev     ctrEvent
		health healthKnown
		want   verdict
	}{
		{"healthy ends the gate", healthyVerdict, ev("health_status", "healthy"), healthYes, waitOver},
		{"unhealthy is named from an inspect", healthyVerdict, ev("health_status", "unhealthy"), healthYes, inspectNow},
		{"start ends it without a healthcheck", healthyVerdict, ev("start", ""), healthNo, waitOver},
		{"start is not healthy", healthyVerdict, ev("start", ""), healthYes, keepWaiting},
		{"exit", healthyVerdict, ev("die", "1"), healthYes, inspectNow},
		{"oom", healthyVerdict, ev("oom", ""), healthYes, inspectNow},
		{"pause alone decides nothing", healthyVerdict, ev("pause", ""), healthYes, keepWaiting},
		{"recovery tolerates unhealthy", recoveredVerdict, ev("health_status", "unhealthy"), healthYes, keepWaiting},
		{"recovery: unpause may already be healthy", recoveredVerdict, ev("unpause", ""), healthYes, inspectNow},
		{"recovery: healthy", recoveredVerdict, ev("health_status", "healthy"), healthYes, waitOver},
		{"exit wait: die is judged", exitVerdict, ev("die", "0"), healthUnknown, inspectNow},
		{"exit wait: start", exitVerdict, ev("start", ""), healthUnknown, keepWaiting},
		{"monitor: healthy again", monitorVerdict, ev("health_status", "healthy"), healthYes, keepWaiting},
		{"monitor: unhealthy", monitorVerdict, ev("health_status", "unhealthy"), healthYes, inspectNow},
		{"monitor: restart", monitorVerdict, ev("restart", ""), healthYes, inspectNow},
	}
	for _, c := range cases {
		if got := c.decide(c.ev, c.health); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// The record is judged to its end: healthy, then an exit, is not over.
	evs := []ctrEvent{ev("create", ""), ev("start", ""), ev("health_status", "healthy"), ev("die", "137")}
	if v := lastVerdict(evs, healthyVerdict, healthYes); v != inspectNow {
		t.Errorf("healthy then die: %v, want inspect", v)
	}
	if v := lastVerdict(evs[:3], healthyVerdict, healthYes); v != waitOver {
		t.Errorf("healthy: %v, want over", v)
	}
	if v := lastVerdict(evs[:2], healthyVerdict, healthYes); v != keepWaiting {
		t.Errorf("started: %v, want waiting", v)
	}
}
