package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// optionSecret is a value given in Options.Secrets; each test's URL has
// a secret of its own.
const optionSecret = "opt-Secret-7f3a9c2e1b"

// secretEvent names both secrets in its free text.
func secretEvent(urlSecret string) reconcile.Event {
	return reconcile.Event{Kind: reconcile.EventRolloutFailed, Host: "h1", Fleet: "web", Service: "app", Revision: testRev,
		Message: "batch failed with token " + optionSecret, Reason: "pull: auth with " + urlSecret + " refused"}
}

// chatWant is what every chat service must show of secretEvent.
var chatWant = []string{"Rollout failed: app", "[web @ h1]", "batch failed with token " + Mask, "pull: auth with " + Mask + " refused",
	"commit 0123456 web: bump nginx to 1.27 — Ada Lovelace", webURL + "/commit/" + testRev.Commit}

// deliver sends secretEvent through a dispatcher with the URL's secrets
// and optionSecret, the way cmd/fleetd wires it, and flushes.
func deliver(t *testing.T, s Sink, rawURL, urlSecret string) {
	t.Helper()
	var dead atomic.Int64
	d := New(Options{Routes: []Route{{Sink: s}}, WebURL: webURL, Secrets: append(URLSecrets(rawURL), optionSecret),
		OnDeadLetter: func(string, int) { dead.Add(1) }})
	d.Notify(secretEvent(urlSecret))
	closeDispatcher(t, d)
	if dead.Load() != 0 {
		t.Fatalf("%d dead letters", dead.Load())
	}
}

// checkText asserts that got has chatWant and none of the secrets.
func checkText(t *testing.T, got string, secrets ...string) {
	t.Helper()
	for _, w := range chatWant {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	for _, s := range append(secrets, optionSecret) {
		if strings.Contains(got, s) {
			t.Errorf("secret %q reached the server:\n%s", s, got)
		}
	}
}

// jsonText is every string of a JSON document, a line each.
func jsonText(t *testing.T, body []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return strings.Join(out, "\n")
}

// fakeChat records request bodies; answer, when set, picks the status of
// each request (Retry-After: 1 with a 429).
type fakeChat struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	header []http.Header
	paths  []string
	at     []time.Time
	answer func(n int) int
	block  chan struct{} // when set, every request waits for it
}

func newFakeChat(t *testing.T, tlsServer bool) *fakeChat {
	f := &fakeChat{}
	h := http.HandlerFunc(f.serve)
	if tlsServer {
		f.Server = httptest.NewTLSServer(h)
	} else {
		f.Server = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		if f.block != nil {
			close(f.block)
		}
		f.Close()
	})
	return f
}

func (f *fakeChat) serve(w http.ResponseWriter, r *http.Request) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-r.Context().Done():
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.at)
	f.at = append(f.at, time.Now())
	status := http.StatusOK
	if f.answer != nil {
		status = f.answer(n)
	}
	if status == http.StatusOK {
		f.bodies = append(f.bodies, body)
		f.header = append(f.header, r.Header.Clone())
		f.paths = append(f.paths, r.URL.Path)
	}
	f.mu.Unlock()
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, `{"id":"1","time":1,"event":"message","topic":"alerts"}`)
}

func (f *fakeChat) delivered() ([][]byte, []string, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...), append([]string(nil), f.paths...), append([]time.Time(nil), f.at...)
}

// loopback is a transport that dials f for any host: the test's stand-in
// for a service whose host is fixed (discord.com, *.webhook.office.com).
func loopback(f *fakeChat) *http.Transport {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", f.Listener.Addr().String())
	}}
	if f.TLS != nil {
		cfg := f.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		cfg.ServerName = "example.com" // httptest's certificate
		tr.TLSClientConfig = cfg
	}
	return tr
}

func newTestShoutrrr(t *testing.T, cfg ShoutrrrConfig) *Shoutrrr {
	t.Helper()
	if cfg.Retry == (Retry{}) {
		cfg.Retry = fastRetry
	}
	s, err := NewShoutrrr(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShoutrrrDiscord(t *testing.T) {
	f := newFakeChat(t, true)
	const token = "dcTokenSecretValue0123456789"
	raw := "discord://" + token + "@123456789012345678"
	s := newTestShoutrrr(t, ShoutrrrConfig{URL: raw, HTTPClient: &http.Client{Transport: loopback(f)}})
	if s.Name() != "discord" {
		t.Errorf("name %q, want discord", s.Name())
	}
	deliver(t, s, raw, token)
	bodies, paths, _ := f.delivered()
	if len(bodies) != 1 || paths[0] != "/api/webhooks/123456789012345678/"+token {
		t.Fatalf("posts %d to %v", len(bodies), paths)
	}
	text := jsonText(t, bodies[0])
	checkText(t, text)
	if !strings.Contains(text, "❌ Rollout failed: app") {
		t.Errorf("no title in %s", text)
	}
}

func TestShoutrrrTeams(t *testing.T) {
	f := newFakeChat(t, true)
	// Teams posts with http.DefaultClient: point it at the fake for this
	// test (no test here runs in parallel with it).
	old := http.DefaultClient.Transport
	http.DefaultClient.Transport = loopback(f)
	t.Cleanup(func() { http.DefaultClient.Transport = old })
	const extra = "V2teamsSecretExtraId0123456789"
	raw := "teams://11111111-2222-3333-4444-555555555555@aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/fedcba9876543210fedcba9876543210/99999999-8888-7777-6666-555555555555/" + extra + "?host=fleetd.webhook.office.com"
	s := newTestShoutrrr(t, ShoutrrrConfig{URL: raw})
	deliver(t, s, raw, extra)
	bodies, paths, _ := f.delivered()
	if len(bodies) != 1 || !strings.HasPrefix(paths[0], "/webhookb2/11111111-2222-3333-4444-555555555555@") {
		t.Fatalf("posts %d to %v", len(bodies), paths)
	}
	checkText(t, jsonText(t, bodies[0]))
}

func TestShoutrrrNtfy(t *testing.T) {
	f := newFakeChat(t, false)
	const pass = "ntfyPassw0rdSecret"
	raw := "ntfy://fleetd:" + pass + "@" + f.Listener.Addr().String() + "/alerts?disabletls=yes"
	s := newTestShoutrrr(t, ShoutrrrConfig{URL: raw})
	deliver(t, s, raw, pass)
	bodies, paths, _ := f.delivered()
	if len(bodies) != 1 || paths[0] != "/alerts" {
		t.Fatalf("%d posts to %v", len(bodies), paths)
	}
	// ntfy takes the text as the body, the title in a header.
	checkText(t, string(bodies[0]))
	f.mu.Lock()
	h := f.header[0]
	f.mu.Unlock()
	if title := h.Get("Title") + h.Get("X-Title"); !strings.Contains(title, "Rollout failed") {
		t.Errorf("title header %q", title)
	}
	if user, p, ok := (&http.Request{Header: h}).BasicAuth(); !ok || user != "fleetd" || p != pass {
		t.Errorf("basic auth %q %q %v: want the URL's user and password", user, p, ok)
	}
}

// TestShoutrrrRetryAfter: a 429 with Retry-After: 1 is waited out, then
// the message is delivered once.
func TestShoutrrrRetryAfter(t *testing.T) {
	f := newFakeChat(t, false)
	f.answer = func(n int) int {
		if n == 0 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}
	raw := "ntfy://" + f.Listener.Addr().String() + "/alerts?disabletls=yes"
	s := newTestShoutrrr(t, ShoutrrrConfig{URL: raw})
	if err := s.Send(t.Context(), Message{Event: reconcile.Event{Kind: KindTest, Host: "h1", Message: "hello"}}); err != nil {
		t.Fatal(err)
	}
	bodies, _, at := f.delivered()
	if len(at) != 2 || len(bodies) != 1 {
		t.Fatalf("%d requests, %d delivered; want 2 and 1", len(at), len(bodies))
	}
	if gap := at[1].Sub(at[0]); gap < 950*time.Millisecond {
		t.Errorf("second attempt %s after the 429, want >= 1s", gap)
	}
}

// TestShoutrrrStatus: 5xx is retried with backoff, other 4xx fail at once.
func TestShoutrrrStatus(t *testing.T) {
	for _, c := range []struct {
		status, attempts int
		ok               bool
	}{
		{http.StatusBadGateway, 2, true},
		{http.StatusForbidden, 1, false},
	} {
		f := newFakeChat(t, false)
		f.answer = func(n int) int {
			if n == 0 {
				return c.status
			}
			return http.StatusOK
		}
		s := newTestShoutrrr(t, ShoutrrrConfig{URL: "ntfy://" + f.Listener.Addr().String() + "/alerts?disabletls=yes"})
		err := s.Send(t.Context(), Message{Event: reconcile.Event{Kind: KindTest, Message: "hello"}})
		if _, _, at := f.delivered(); len(at) != c.attempts || (err == nil) != c.ok {
			t.Errorf("status %d: %d attempts, err %v; want %d attempts, ok %v", c.status, len(at), err, c.attempts, c.ok)
		}
	}
}

// TestChatDeadSinkDelaysNothing: a sink that never answers holds neither
// Notify nor the healthy sink; its messages become dead letters after
// their retries and timeouts.
func TestChatDeadSinkDelaysNothing(t *testing.T) {
	dead, healthy := newFakeChat(t, false), newFakeChat(t, false)
	dead.block = make(chan struct{})
	retry := Retry{Attempts: 2, Base: 10 * time.Millisecond, Max: 10 * time.Millisecond, MaxRetryAfter: time.Second}
	deadSink := newTestShoutrrr(t, ShoutrrrConfig{URL: "ntfy://" + dead.Listener.Addr().String() + "/dead?disabletls=yes", Timeout: 200 * time.Millisecond, Retry: retry})
	okSink := newTestShoutrrr(t, ShoutrrrConfig{URL: "generic://" + healthy.Listener.Addr().String() + "/hook?disabletls=yes", Retry: retry})
	if okSink.Name() != "generic" {
		t.Fatalf("name %q", okSink.Name())
	}
	var mu sync.Mutex
	letters := map[string]int{}
	d := New(Options{Routes: []Route{{Sink: deadSink}, {Sink: okSink}}, QueueSize: 8, Log: slog.New(slog.DiscardHandler),
		OnDeadLetter: func(sink string, n int) { mu.Lock(); letters[sink] += n; mu.Unlock() }})
	const n = 6
	for i := range n {
		start := time.Now()
		d.Notify(reconcile.Event{Kind: reconcile.EventRevisionApplied, Host: "h1", Fleet: "web", Message: "applied " + string(rune('a'+i)),
			Revision: &reconcile.Revision{Commit: strings.Repeat(string(rune('a'+i)), 40)}})
		if el := time.Since(start); el > 50*time.Millisecond {
			t.Errorf("Notify took %s", el)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if bodies, _, _ := healthy.delivered(); len(bodies) == n {
			break
		}
		if time.Now().After(deadline) {
			bodies, _, _ := healthy.delivered()
			t.Fatalf("healthy sink got %d of %d messages", len(bodies), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Each fails after 2 attempts of 200ms.
	deadline = time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got, other := letters["ntfy"], letters["generic"]
		mu.Unlock()
		if other != 0 {
			t.Fatalf("healthy sink has %d dead letters", other)
		}
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead sink: %d dead letters, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	closeDispatcher(t, d)
}

func TestNewShoutrrrErrors(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"nosuch://tok3nSecretValue@host/x", `unknown chat service "nosuch"`},
		{"not a url", "not a shoutrrr URL"},
		{"discord://tok3nSecretValue@", "discord: invalid URL"},
	} {
		_, err := NewShoutrrr(ShoutrrrConfig{URL: c.url})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.url, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "tok3nSecretValue") {
			t.Errorf("%q: error shows the token: %v", c.url, err)
		}
	}
}

func TestURLSecrets(t *testing.T) {
	got := URLSecrets("smtp://fleetd:pa55word-x@mail.example.com:25/?from=a@b.c&to=d@e.f&apikey=k3yValue")
	for _, w := range []string{"pa55word-x", "k3yValue"} {
		if !strings.Contains(strings.Join(got, " "), w) {
			t.Errorf("%q not in %q", w, got)
		}
	}
	for _, s := range got {
		if s == "fleetd" || s == "mail.example.com" {
			t.Errorf("%q is not a secret: would mask every message", s)
		}
	}
}

func TestClassifyText(t *testing.T) {
	var tmp *temporaryError
	for _, c := range []struct {
		err       error
		temporary bool
		after     time.Duration
	}{
		{errors.New("failed to send: 429 Too Many Requests"), true, 0},
		{errors.New("Too Many Requests: retry after 7 (429 Too Many)"), true, 7 * time.Second},
		{errors.New("bad status: 503 Service Unavailable"), true, 0},
		{errors.New("bad status: 404 Not Found"), false, 0},
		{&url.Error{Op: "Post", URL: "x", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, true, 0},
	} {
		err := classifyText(c.err)
		if errors.As(err, &tmp) != c.temporary || (c.temporary && tmp.after != c.after) {
			t.Errorf("%v: temporary %v, want %v after %s", c.err, errors.As(err, &tmp), c.temporary, c.after)
		}
	}
}

// TestFilterFleets: a fleet allow list passes its fleets and events of no
// fleet.
func TestFilterFleets(t *testing.T) {
	f := Filter{Fleets: []string{"shop"}}
	for fleet, want := range map[string]bool{"shop": true, "web": false, "": true} {
		if got := f.Allows(Message{Event: reconcile.Event{Kind: reconcile.EventDriftDetected, Fleet: fleet}}); got != want {
			t.Errorf("fleet %q: %v, want %v", fleet, got, want)
		}
	}
}
