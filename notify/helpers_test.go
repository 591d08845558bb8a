package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// clock is a settable clock for dedup and reminders.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recordSink keeps what it is sent; gate, when set, holds every Send until
// it is closed.
type recordSink struct {
	name    string
	gate    chan struct{}
	entered atomic.Int64 // Send calls begun
	fail    error
	mu      sync.Mutex
	got     []Message
	sent    chan Message
}

func newRecordSink(name string) *recordSink {
	return &recordSink{name: name, sent: make(chan Message, 1000)}
}

func (s *recordSink) Name() string { return s.name }

func (s *recordSink) Send(ctx context.Context, m Message) error {
	s.entered.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail != nil {
		return s.fail
	}
	s.mu.Lock()
	s.got = append(s.got, m)
	s.mu.Unlock()
	s.sent <- m
	return nil
}

func (s *recordSink) messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.got...)
}

// next waits for the next delivered message.
func (s *recordSink) next(t *testing.T) Message {
	t.Helper()
	select {
	case m := <-s.sent:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no message delivered", s.name)
		return Message{}
	}
}

// closeDispatcher flushes d at the end of the test.
func closeDispatcher(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

var testRev = &reconcile.Revision{Commit: "0123456789abcdef0123456789abcdef01234567", Subject: "web: bump nginx to 1.27", Author: "Ada Lovelace"}

func driftEvent(fleet string, items ...drift.Item) reconcile.Event {
	return reconcile.Event{Kind: reconcile.EventDriftDetected, Host: "h1", Fleet: fleet, Revision: testRev, Drift: items,
		Message: fmt.Sprintf("%d containers drifted", len(items))}
}

func resolvedEvent(fleet string) reconcile.Event {
	return reconcile.Event{Kind: reconcile.EventDriftResolved, Host: "h1", Fleet: fleet, Revision: testRev, Message: "drift resolved: in sync again"}
}

func stopped(container string) drift.Item {
	return drift.Item{Fleet: "web", Service: "app", Container: container, Kind: drift.Stopped, Detail: "exited (137)"}
}

// slackPost is one chat.postMessage, chat.update or incoming-webhook
// call; Path tells which, TS is the message chat.update changes.
type slackPost struct {
	Path      string
	TS        string
	Channel   string
	Text      string
	Blocks    string // the blocks as JSON text
	ThreadTS  string
	Broadcast bool
	At        time.Time
	Token     string
}

// fakeSlack stands in for Slack: the Web API under /api/ and an incoming
// webhook under /hook/. limited answers the first N calls with 429 and
// Retry-After: 1.
type fakeSlack struct {
	*httptest.Server
	mu      sync.Mutex
	posts   []slackPost
	calls   []time.Time
	limited int
	ts      int
	posted  chan slackPost
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{posted: make(chan slackPost, 100)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	if f.limited > 0 {
		f.limited--
		f.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"ok":false,"error":"ratelimited"}`, http.StatusTooManyRequests)
		return
	}
	f.mu.Unlock()
	p := slackPost{Path: r.URL.Path, At: time.Now(), Token: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Channel   string          `json:"channel"`
			Text      string          `json:"text"`
			Blocks    json.RawMessage `json:"blocks"`
			ThreadTS  string          `json:"thread_ts"`
			Broadcast bool            `json:"reply_broadcast"`
			TS        string          `json:"ts"`
		}
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.Channel, p.Text, p.Blocks, p.ThreadTS, p.Broadcast, p.TS = body.Channel, body.Text, string(body.Blocks), body.ThreadTS, body.Broadcast, body.TS
	} else {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.Channel, p.Text, p.Blocks, p.ThreadTS = r.Form.Get("channel"), r.Form.Get("text"), r.Form.Get("blocks"), r.Form.Get("thread_ts")
		p.Broadcast = r.Form.Get("reply_broadcast") == "true"
		p.TS = r.Form.Get("ts")
		if tok := r.Form.Get("token"); tok != "" {
			p.Token = tok
		}
	}
	f.mu.Lock()
	f.ts++
	ts := fmt.Sprintf("1700000000.%06d", f.ts)
	f.posts = append(f.posts, p)
	f.mu.Unlock()
	f.posted <- p
	if strings.HasPrefix(r.URL.Path, "/hook/") {
		io.WriteString(w, "ok")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": p.Channel, "ts": ts})
}

func (f *fakeSlack) next(t *testing.T) slackPost {
	t.Helper()
	select {
	case p := <-f.posted:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no Slack post")
		return slackPost{}
	}
}

func (f *fakeSlack) allPosts() []slackPost {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slackPost(nil), f.posts...)
}

// fastRetry keeps backoff short in tests; Retry-After is still honoured.
var fastRetry = Retry{Attempts: 3, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxRetryAfter: 5 * time.Second}

func botSlack(t *testing.T, f *fakeSlack, channel string) *Slack {
	t.Helper()
	s, err := NewSlack(SlackConfig{Token: "xoxb-test-token-123456", Channel: channel, APIURL: f.URL + "/api/", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hookSlack(t *testing.T, f *fakeSlack) *Slack {
	t.Helper()
	s, err := NewSlack(SlackConfig{WebhookURL: f.URL + "/hook/T000/B000/XXXXSECRETXXXX", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
