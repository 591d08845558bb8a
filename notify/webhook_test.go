package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// hookServer records webhook deliveries; answers, when set, are the
// statuses of the first calls (with Retry-After: 1 on 429).
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	answers []int
	calls   []time.Time
	bodies  chan hookDelivery
}

type hookDelivery struct {
	body []byte
	sig  string
}

func newHookServer(t *testing.T, answers ...int) *hookServer {
	h := &hookServer{answers: answers, bodies: make(chan hookDelivery, 100)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.calls = append(h.calls, time.Now())
		status := http.StatusNoContent
		if len(h.answers) > 0 {
			status, h.answers = h.answers[0], h.answers[1:]
		}
		h.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		if status < 300 {
			h.bodies <- hookDelivery{body: body, sig: r.Header.Get(SignatureHeader)}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) next(t *testing.T) hookDelivery {
	t.Helper()
	select {
	case d := <-h.bodies:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivery")
		return hookDelivery{}
	}
}

// TestWebhookPayload: the documented payload, signed.
func TestWebhookPayload(t *testing.T) {
	h := newHookServer(t)
	w, err := NewWebhook(WebhookConfig{URL: h.URL + "/fleetd?token=abc123456", Secret: "whsec-0123456789", Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if w.Name() != "webhook "+h.URL {
		t.Errorf("name %q leaks the path", w.Name())
	}
	d := New(Options{Routes: []Route{{Sink: w}}, WebURL: webURL + "/"})
	e := driftEvent("web", stopped("web-app-1"))
	e.Time = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	d.Notify(e)
	got := h.next(t)
	closeDispatcher(t, d)
	if want := Sign("whsec-0123456789", got.body); got.sig != want || !strings.HasPrefix(got.sig, "sha256=") {
		t.Errorf("signature %q, want %q", got.sig, want)
	}
	want := `{"version":1,"kind":"drift-detected","severity":"warning","time":"2025-06-01T12:00:00Z","host":"h1","fleet":"web",` +
		`"revision":{"commit":"0123456789abcdef0123456789abcdef01234567","subject":"web: bump nginx to 1.27","author":"Ada Lovelace","url":"https://git.example.com/ops/fleet/commit/0123456789abcdef0123456789abcdef01234567"},` +
		`"message":"1 containers drifted","drift":[{"fleet":"web","service":"app","container":"web-app-1","kind":"stopped","detail":"exited (137)"}],"suppressed":0,"dropped":0}`
	if string(got.body) != want {
		t.Errorf("payload\n got %s\nwant %s", got.body, want)
	}
}

// TestWebhookPayloadKinds: every kind has its kind and severity.
func TestWebhookPayloadKinds(t *testing.T) {
	for k := range titles {
		p := NewPayload(Message{Event: reconcile.Event{Kind: k, Service: "app"}, Severity: SeverityOf(k)})
		b, _ := json.Marshal(p)
		var back map[string]any
		json.Unmarshal(b, &back)
		if back["kind"] != string(k) || back["severity"] != SeverityOf(k).String() || back["version"] != 1.0 {
			t.Errorf("%s: %s", k, b)
		}
	}
}

// TestWebhookRetries: 503 and 429 are retried, Retry-After honoured.
func TestWebhookRetries(t *testing.T) {
	h := newHookServer(t, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	w, err := NewWebhook(WebhookConfig{URL: h.URL, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(t.Context(), Message{Event: reconcile.Event{Kind: reconcile.EventDaemonStarted}}); err != nil {
		t.Fatal(err)
	}
	got := h.next(t)
	if got.sig != "" {
		t.Errorf("signed without a secret: %q", got.sig)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) != 3 {
		t.Fatalf("%d calls, want 3", len(h.calls))
	}
	if waited := h.calls[2].Sub(h.calls[1]); waited < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", waited)
	}
}

// TestWebhookPermanent: a 4xx is not retried.
func TestWebhookPermanent(t *testing.T) {
	h := newHookServer(t, http.StatusNotFound)
	w, _ := NewWebhook(WebhookConfig{URL: h.URL, Retry: fastRetry})
	if err := w.Send(t.Context(), Message{Event: reconcile.Event{Kind: reconcile.EventDaemonStarted}}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err %v", err)
	}
	if len(h.calls) != 1 {
		t.Errorf("%d calls", len(h.calls))
	}
	if _, err := NewWebhook(WebhookConfig{URL: "ftp://x"}); err == nil {
		t.Error("ftp URL accepted")
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "x": 0, now.Add(time.Minute).Format(http.TimeFormat): time.Minute} {
		if got := retryAfter(http.Header{"Retry-After": {v}}, now); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}
