package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncSpy records Sync calls.
type syncSpy struct{ calls chan string }

func newSpy() *syncSpy { return &syncSpy{calls: make(chan string, 1000)} }

func (s *syncSpy) Sync(reason string) { s.calls <- reason }

// next waits for a Sync call and returns its reason.
func (s *syncSpy) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-s.calls:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Sync was not called")
		return ""
	}
}

// none checks that Sync was not called, once the trigger is idle.
func (s *syncSpy) none(t *testing.T, srv *Server) {
	t.Helper()
	srv.trigger.wait(t.Context())
	select {
	case r := <-s.calls:
		t.Fatalf("Sync called with %q, want no call", r)
	default:
	}
}

// newTestServer returns a server with a secret, a token, branch main and a
// spy for Sync; edit changes the config first.
func newTestServer(t *testing.T, edit func(*Config)) (*Server, *syncSpy) {
	t.Helper()
	spy := newSpy()
	cfg := Config{
		APIToken:      "tok",
		WebhookSecret: string(testSecret),
		Branch:        "main",
		Status:        func() any { return map[string]any{"fleets": []string{"web"}} },
		Sync:          spy.Sync,
	}
	if edit != nil {
		edit(&cfg)
	}
	return New(cfg, NewMetrics()), spy
}

// do serves one request; headers are name, value pairs.
func do(h http.Handler, method, path string, body []byte, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// check asserts the status and that the body contains want.
func check(t *testing.T, rec *httptest.ResponseRecorder, status int, want string) {
	t.Helper()
	if rec.Code != status || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("got %d %q, want %d containing %q", rec.Code, rec.Body.String(), status, want)
	}
}

// jsonError returns the "error" of a JSON error body.
func jsonError(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	return e.Error
}

func TestHealthz(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	check(t, do(srv.Handler(), "GET", "/healthz", nil), 200, "ok")
	check(t, do(srv.Handler(), "POST", "/healthz", nil), 405, "")
}

func TestReadyz(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	check(t, do(srv.Handler(), "GET", "/readyz", nil), 200, "ready")

	srv, _ = newTestServer(t, func(c *Config) {
		c.Ready = func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("no deadline")
			}
			return errors.New("source not synced yet")
		}
	})
	rec := do(srv.Handler(), "GET", "/readyz", nil)
	check(t, rec, 503, "")
	if got := jsonError(t, rec); got != "not ready: source not synced yet" {
		t.Errorf("error = %q", got)
	}
}

func TestStatus(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	rec := do(srv.Handler(), "GET", "/v1/status", nil)
	check(t, rec, 200, `{"fleets":["web"]}`)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}

	srv, _ = newTestServer(t, func(c *Config) { c.Status = nil })
	check(t, do(srv.Handler(), "GET", "/v1/status", nil), 503, "status is not available")

	srv, _ = newTestServer(t, func(c *Config) { c.Status = func() any { return make(chan int) } })
	rec = do(srv.Handler(), "GET", "/v1/status", nil)
	check(t, rec, 500, "")
	if got := jsonError(t, rec); got != "internal error" {
		t.Errorf("error = %q: an internal error's text must not reach the client", got)
	}
}

func TestSync(t *testing.T) {
	tests := []struct {
		name   string
		token  string // configured
		auth   string // sent
		status int
		msg    string
	}{
		{"accepted", "tok", "Bearer tok", 202, "accepted"},
		{"missing", "tok", "", 401, "missing or wrong bearer token"},
		{"wrong", "tok", "Bearer nope", 401, "missing or wrong bearer token"},
		{"basic", "tok", "Basic dG9r", 401, "missing or wrong bearer token"},
		{"disabled", "", "Bearer ", 403, "sync is disabled: no API token is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, spy := newTestServer(t, func(c *Config) { c.APIToken = tt.token })
			rec := do(srv.Handler(), "POST", "/v1/sync", nil, "Authorization", tt.auth)
			check(t, rec, tt.status, tt.msg)
			if tt.status != 202 {
				spy.none(t, srv)
				return
			}
			if got := spy.next(t); got != "manual sync (api)" {
				t.Errorf("reason = %q", got)
			}
		})
	}
	t.Run("www-authenticate", func(t *testing.T) {
		srv, _ := newTestServer(t, nil)
		rec := do(srv.Handler(), "POST", "/v1/sync", nil)
		if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
	t.Run("get", func(t *testing.T) {
		srv, _ := newTestServer(t, nil)
		check(t, do(srv.Handler(), "GET", "/v1/sync", nil, "Authorization", "Bearer tok"), 405, "")
	})
}

// deliver builds the headers each provider sends for an event, signed with
// secret.
func deliver(provider, event string, secret, body []byte) []string {
	sig := hex.EncodeToString(Sign(secret, body))
	switch provider {
	case "github":
		return []string{"X-GitHub-Event", event, "X-Hub-Signature-256", "sha256=" + sig}
	case "gitlab":
		return []string{"X-Gitlab-Event", map[string]string{"push": "Push Hook"}[event], "X-Gitlab-Token", string(secret)}
	case "gitea":
		return []string{"X-Gitea-Event", event, "X-Gitea-Signature", sig}
	case "forgejo":
		return []string{"X-Forgejo-Event", event, "X-Forgejo-Signature", sig}
	default:
		return []string{"X-Fleetd-Signature", "sha256=" + sig}
	}
}

// hookPath is the endpoint of a provider; Forgejo posts to /hooks/gitea.
func hookPath(provider string) string {
	if provider == "forgejo" {
		return "/hooks/gitea"
	}
	return "/hooks/" + provider
}

func pushBody(ref string) []byte {
	return []byte(`{"ref":"` + ref + `","after":"1a2b3c4d5e6f7a8b","repository":{"name":"fleet"}}`)
}

func TestWebhookPush(t *testing.T) {
	for _, p := range []string{"github", "gitlab", "gitea", "forgejo", "generic"} {
		t.Run(p, func(t *testing.T) {
			name := strings.Replace(p, "forgejo", "gitea", 1)
			t.Run("accepted", func(t *testing.T) {
				srv, spy := newTestServer(t, nil)
				body := pushBody("refs/heads/main")
				check(t, do(srv.Handler(), "POST", hookPath(p), body, deliver(p, "push", testSecret, body)...), 202, "accepted")
				if got, want := spy.next(t), "webhook "+name+" push 1a2b3c4"; got != want {
					t.Errorf("reason = %q, want %q", got, want)
				}
			})
			t.Run("wrong signature", func(t *testing.T) {
				srv, spy := newTestServer(t, nil)
				body := pushBody("refs/heads/main")
				rec := do(srv.Handler(), "POST", hookPath(p), body, deliver(p, "push", []byte("wrong"), body)...)
				check(t, rec, 401, "")
				if got := jsonError(t, rec); got != "webhook signature does not match" {
					t.Errorf("error = %q", got)
				}
				spy.none(t, srv)
			})
			t.Run("tampered body", func(t *testing.T) {
				srv, spy := newTestServer(t, nil)
				if p == "gitlab" {
					return // GitLab sends a token, not a signature of the body
				}
				hdr := deliver(p, "push", testSecret, pushBody("refs/heads/dev"))
				check(t, do(srv.Handler(), "POST", hookPath(p), pushBody("refs/heads/main"), hdr...), 401, "signature does not match")
				spy.none(t, srv)
			})
			t.Run("unsigned", func(t *testing.T) {
				srv, spy := newTestServer(t, nil)
				hdr := deliver(p, "push", testSecret, nil)[:2]
				if p == "generic" {
					hdr = nil
				}
				check(t, do(srv.Handler(), "POST", hookPath(p), pushBody("refs/heads/main"), hdr...), 401, "webhook missing signature")
				spy.none(t, srv)
			})
			t.Run("other branch", func(t *testing.T) {
				srv, spy := newTestServer(t, nil)
				body := pushBody("refs/heads/dev")
				check(t, do(srv.Handler(), "POST", hookPath(p), body, deliver(p, "push", testSecret, body)...), 202, "ignored: push to dev")
				spy.none(t, srv)
			})
			t.Run("disabled", func(t *testing.T) {
				srv, spy := newTestServer(t, func(c *Config) { c.WebhookSecret = "" })
				body := pushBody("refs/heads/main")
				check(t, do(srv.Handler(), "POST", hookPath(p), body, deliver(p, "push", testSecret, body)...), 403, "webhooks are disabled")
				spy.none(t, srv)
			})
		})
	}
}

func TestGitHubEvents(t *testing.T) {
	srv, spy := newTestServer(t, nil)
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	check(t, do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "ping", testSecret, body)...), 200, "pong")
	check(t, do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "issues", testSecret, body)...), 202, "ignored: event issues")
	hdr := deliver("github", "", testSecret, body)
	check(t, do(srv.Handler(), "POST", "/hooks/github", body, hdr...), 400, "no event header")
	// A ping with a bad signature is refused like any other delivery.
	check(t, do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "ping", []byte("x"), body)...), 401, "")
	spy.none(t, srv)

	// GitHub's form encoding: the signature covers the form body.
	form := []byte("payload=" + strings.ReplaceAll(string(pushBody("refs/heads/main")), `"`, "%22"))
	hdr = append(deliver("github", "push", testSecret, form), "Content-Type", "application/x-www-form-urlencoded")
	check(t, do(srv.Handler(), "POST", "/hooks/github", form, hdr...), 202, "accepted")
	spy.next(t)
}

func TestGitLabEvents(t *testing.T) {
	srv, spy := newTestServer(t, nil)
	tag := pushBody("refs/tags/v1")
	check(t, do(srv.Handler(), "POST", "/hooks/gitlab", tag, "X-Gitlab-Event", "Tag Push Hook", "X-Gitlab-Token", "s3cret"), 202, "ignored: push to refs/tags/v1")
	check(t, do(srv.Handler(), "POST", "/hooks/gitlab", tag, "X-Gitlab-Event", "Merge Request Hook", "X-Gitlab-Token", "s3cret"), 202, "ignored: event Merge Request Hook")
	spy.none(t, srv)

	srv, spy = newTestServer(t, func(c *Config) { c.Branch = "refs/tags/v1" })
	check(t, do(srv.Handler(), "POST", "/hooks/gitlab", tag, "X-Gitlab-Event", "Tag Push Hook", "X-Gitlab-Token", "s3cret"), 202, "accepted")
	spy.next(t)
}

func TestGenericHook(t *testing.T) {
	srv, spy := newTestServer(t, nil)
	post := func(body []byte) *httptest.ResponseRecorder {
		return do(srv.Handler(), "POST", "/hooks/generic", body, deliver("generic", "", testSecret, body)...)
	}
	check(t, post(nil), 202, "accepted")
	if got := spy.next(t); got != "webhook generic push" {
		t.Errorf("reason = %q", got)
	}
	check(t, post([]byte(`{"note":"deploy please"}`)), 202, "accepted")
	spy.next(t)
	check(t, post([]byte(`{"ref":"refs/heads/main"}`)), 202, "accepted")
	spy.next(t)
	check(t, post([]byte(`{"ref":"refs/heads/feature"}`)), 202, "ignored: push to feature")
	check(t, post([]byte(`{"ref":`)), 400, "decode push payload")
	spy.none(t, srv)
}

func TestPushWithoutRef(t *testing.T) {
	srv, spy := newTestServer(t, nil)
	body := []byte(`{"after":"abc"}`)
	check(t, do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "push", testSecret, body)...), 400, "push payload has no ref")
	spy.none(t, srv)
}

func TestAnyBranchWhenUnset(t *testing.T) {
	srv, spy := newTestServer(t, func(c *Config) { c.Branch = "" })
	body := pushBody("refs/heads/whatever")
	check(t, do(srv.Handler(), "POST", "/hooks/gitea", body, deliver("gitea", "push", testSecret, body)...), 202, "accepted")
	spy.next(t)
}

// endless is a body that never ends and counts what was read of it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestOversizedBody(t *testing.T) {
	for _, p := range []string{"github", "gitlab", "gitea", "generic"} {
		t.Run(p, func(t *testing.T) {
			srv, spy := newTestServer(t, nil)

			// Content-Length says too much: refused before reading.
			big := bytes.Repeat([]byte("a"), MaxBodyBytes+1)
			check(t, do(srv.Handler(), "POST", hookPath(p), big, deliver(p, "push", testSecret, big)...), 413, "request body over 1 MiB")

			// No length (chunked): refused once past the limit, the rest unread.
			body := &endless{}
			req := httptest.NewRequest("POST", hookPath(p), body)
			req.ContentLength = -1
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			check(t, rec, 413, "request body over 1 MiB")
			if body.n > 2*MaxBodyBytes {
				t.Errorf("read %d bytes of an oversized body", body.n)
			}
			spy.none(t, srv)
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		srv, spy := newTestServer(t, nil)
		body := append([]byte(`{"ref":"refs/heads/main"}`), bytes.Repeat([]byte(" "), MaxBodyBytes-25)...)
		check(t, do(srv.Handler(), "POST", "/hooks/generic", body, deliver("generic", "", testSecret, body)...), 202, "accepted")
		spy.next(t)
	})
}

func TestOversizedBodyOverHTTP(t *testing.T) {
	srv, _ := newTestServer(t, nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	body := io.LimitReader(&endless{}, 8<<20) // chunked: no length sent
	req, _ := http.NewRequestWithContext(t.Context(), "POST", ts.URL+"/hooks/github", body)
	resp, err := ts.Client().Do(req)
	if err != nil {
		// The server may close the connection before the client has sent
		// everything; then the client sees a write error, not the 413.
		t.Logf("client: %v (connection closed by the server)", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status = %d, want 413", resp.StatusCode)
	}
}

// countHandler counts log records by level.
type countHandler struct {
	slog.Handler
	mu     *sync.Mutex
	levels map[slog.Level]int
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.levels[r.Level]++
	return nil
}

func TestLogOnce(t *testing.T) {
	logs := countHandler{Handler: slog.DiscardHandler, mu: &sync.Mutex{}, levels: map[slog.Level]int{}}
	srv, spy := newTestServer(t, func(c *Config) {
		c.Logger = slog.New(logs)
		c.Status = func() any { return make(chan int) }
	})
	do(srv.Handler(), "POST", "/hooks/github", nil, "X-GitHub-Event", "push") // 401
	do(srv.Handler(), "GET", "/v1/status", nil)                               // 500
	body := pushBody("refs/heads/main")
	do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "push", testSecret, body)...) // accepted
	spy.next(t)
	want := map[slog.Level]int{slog.LevelInfo: 2, slog.LevelError: 1}
	if fmt.Sprint(logs.levels) != fmt.Sprint(want) {
		t.Errorf("log records by level %v, want %v", logs.levels, want)
	}
}
