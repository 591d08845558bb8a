package ui

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// fakeAgent is an agent whose status the test sets.
type fakeAgent struct {
	mu      sync.Mutex
	st      agent.Status
	changes agent.Changes
	plan    string
}

func (a *fakeAgent) Status() agent.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}

func (a *fakeAgent) set(st agent.Status) {
	a.mu.Lock()
	a.st = st
	a.mu.Unlock()
	a.changes.Signal()
}

func (a *fakeAgent) Subscribe() (<-chan struct{}, func())    { return a.changes.Subscribe() }
func (a *fakeAgent) Preview(context.Context) (string, error) { return a.plan, nil }

type fakeObserver struct{ obs drift.Observed }

func (o fakeObserver) Observe(context.Context, drift.ObserveOptions) (drift.Observed, error) {
	return o.obs, nil
}

const (
	readToken = "read-token-123456"
	apiToken  = "api-token-abcdef"
)

// hostile is a status with a fleet and a commit subject that try to inject
// script, and a drift item echoing a secret env value; it goes through
// agent.StatusOf as the agent's does.
func hostile(t *testing.T) agent.Status {
	t.Helper()
	model := &fleets.Fleet{Name: "<script>alert(1)</script>", Services: []fleets.Service{{Name: "web", Replicas: 2, Targets: true,
		Spec: fleets.Spec{Image: "nginx:1", Environment: map[string]string{"DB_PASSWORD": "hunter2-super-secret"}}}}}
	rev := &reconcile.Revision{Commit: strings.Repeat("a", 40), Subject: `fix <script>alert("x")</script> now`}
	st := agent.State{Revision: rev, Fleets: map[string]agent.Fleet{model.Name: {Name: model.Name, Model: model, Rev: *rev,
		Drift: []drift.Item{{Fleet: model.Name, Service: "web", Container: "c-web-1", Kind: drift.Modified,
			Fields: []drift.Field{{Field: "env", Want: "DB_PASSWORD=hunter2-super-secret", Have: "DB_PASSWORD=old"}}}}}}}
	return agent.StatusOf(st, "host-1", time.Now())
}

type env struct {
	t     *testing.T
	agent *fakeAgent
	syncs []string
	mu    sync.Mutex
	h     *Handler
}

func newEnv(t *testing.T, st agent.Status) *env {
	t.Helper()
	e := &env{t: t, agent: &fakeAgent{st: st, plan: "fleet x: nothing to do\n"}}
	obs := drift.Observed{Containers: []drift.Container{{Name: "c-web-1", State: "running", ImageID: "sha256:0123456789abcdef0123",
		Labels: map[string]string{fleets.LabelManaged: "true", fleets.LabelFleet: "<script>alert(1)</script>", fleets.LabelService: "web", fleets.LabelSlot: "1"}}}}
	log := NewEventLog(10, nil, nil)
	h, err := New(Config{Backend: &Local{Agent: e.agent, Observer: fakeObserver{obs}, Log: log, RequestSync: func(reason string) {
		e.mu.Lock()
		e.syncs = append(e.syncs, reason)
		e.mu.Unlock()
	}}, Tokens: Tokens{Read: readToken, API: apiToken}, Retry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func (e *env) synced() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.syncs)
}

// do serves one request and returns the response with its body read.
func (e *env) do(r *http.Request) (*http.Response, string) {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// login logs in with token and returns the session cookie.
func (e *env) login(token string) *http.Cookie {
	e.t.Helper()
	r := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"token": {token}, "next": {"/ui/"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "http://example.com")
	res, body := e.do(r)
	if res.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: %d %s", res.StatusCode, body)
	}
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	e.t.Fatal("login set no session cookie")
	return nil
}

func get(path string, c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", path, nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestLoginAndCookieFlags(t *testing.T) {
	e := newEnv(t, hostile(t))
	res, _ := e.do(get("/ui/", nil))
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
		t.Fatalf("overview without a session: %d to %q, want a redirect to the login", res.StatusCode, res.Header.Get("Location"))
	}
	r := httptest.NewRequest("POST", "/ui/login", strings.NewReader("token=wrong"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, _ := e.do(r); res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 {
		t.Errorf("wrong token: %d with %d cookies, want 401 and none", res.StatusCode, len(res.Cookies()))
	}
	c := e.login(apiToken)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/ui/" {
		t.Errorf("cookie over http: %+v, want HttpOnly, SameSite=Strict, not Secure, Path /ui/", c)
	}
	if res, body := e.do(get("/ui/", c)); res.StatusCode != http.StatusOK || !strings.Contains(body, "Sync host-1 now") {
		t.Errorf("overview with an operator's session: %d, sync offered %v", res.StatusCode, strings.Contains(body, "Sync host-1 now"))
	}
	// Over TLS the cookie is Secure.
	r = httptest.NewRequest("POST", "/ui/login", strings.NewReader("token="+readToken))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.TLS = &tls.ConnectionState{}
	res, _ = e.do(r)
	if cs := res.Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Errorf("cookie over TLS: %v, want one Secure cookie", cs)
	}
	// A read session sees no action and may not act.
	rc := e.login(readToken)
	if _, body := e.do(get("/ui/", rc)); strings.Contains(body, "Sync host-1 now") {
		t.Error("a read-only session is offered sync")
	}
	// A tampered cookie is nobody.
	bad := *c
	bad.Value = strings.Replace(bad.Value, "2.", "1.", 1) + "x"
	if res, _ := e.do(get("/ui/", &bad)); res.StatusCode != http.StatusSeeOther {
		t.Errorf("tampered cookie: %d, want a redirect to the login", res.StatusCode)
	}
	// A bearer token reads the JSON API (the dashboard's agents).
	r = get("/ui/api/hosts", nil)
	r.Header.Set("Authorization", "Bearer "+readToken)
	if res, body := e.do(r); res.StatusCode != http.StatusOK || !strings.Contains(body, `"host-1"`) {
		t.Errorf("api with bearer: %d %s", res.StatusCode, body)
	}
	if res, _ := e.do(get("/ui/api/hosts", nil)); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("api without a token: %d, want 401", res.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, hostile(t))
	c := e.login(apiToken)
	for _, path := range []string{"/ui/", "/ui/login", "/ui/static/app.js", "/ui/events", "/ui/rollouts", "/ui/plan?run=1"} {
		res, _ := e.do(get(path, c))
		if got := res.Header.Get("Content-Security-Policy"); got != CSP {
			t.Errorf("%s: CSP %q, want %q", path, got, CSP)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, res.Header)
		}
	}
	// No page carries inline script or handlers, which the CSP would block.
	for _, path := range []string{"/ui/", "/ui/login", "/ui/events", "/ui/rollouts", "/ui/plan?run=1", "/ui/fleet?name=" + url.QueryEscape("<script>alert(1)</script>"),
		"/ui/confirm?action=sync&host=host-1"} {
		_, body := e.do(get(path, c))
		for _, bad := range []string{"<script>", " onclick=", " onload=", "<style", " style="} {
			if strings.Contains(body, bad) {
				t.Errorf("%s holds %q", path, bad)
			}
		}
	}
}

func TestEscapingAndRedaction(t *testing.T) {
	e := newEnv(t, hostile(t))
	c := e.login(readToken)
	for _, path := range []string{"/ui/", "/ui/fleet?name=" + url.QueryEscape("<script>alert(1)</script>")} {
		res, body := e.do(get(path, c))
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, res.StatusCode, body)
		}
		if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the fleet name is not escaped", path)
		}
		if strings.Contains(body, "hunter2-super-secret") {
			t.Errorf("%s shows the secret env value", path)
		}
	}
	_, body := e.do(get("/ui/", c))
	if !strings.Contains(body, "fix &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; now") {
		t.Error("overview: the commit subject is missing or not escaped")
	}
	_, body = e.do(get("/ui/fleet?name="+url.QueryEscape("<script>alert(1)</script>"), c))
	for _, want := range []string{"c-web-1", "sha256:0123456789ab", "DB_PASSWORD=***", "2/2"} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet detail lacks %q", want)
		}
	}
}

func TestActionsNeedCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, hostile(t))
	c := e.login(apiToken)
	_, page := e.do(get("/ui/confirm?action=resume&host=host-1", c))
	token := between(page, `name="csrf" value="`, `"`)
	if token == "" {
		t.Fatalf("confirm page has no CSRF token:\n%s", page)
	}
	post := func(form url.Values, origin string, cookie *http.Cookie) int {
		r := httptest.NewRequest("POST", "/ui/action", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if cookie != nil {
			r.AddCookie(cookie)
		}
		res, _ := e.do(r)
		return res.StatusCode
	}
	form := url.Values{"action": {"resume"}, "host": {"host-1"}, "back": {"/ui/rollouts"}}
	if code := post(form, "http://example.com", c); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d, want 403", code)
	}
	form.Set("csrf", token+"x")
	if code := post(form, "http://example.com", c); code != http.StatusForbidden {
		t.Errorf("wrong CSRF token: %d, want 403", code)
	}
	form.Set("csrf", token)
	if code := post(form, "http://evil.example", c); code != http.StatusForbidden {
		t.Errorf("other origin: %d, want 403", code)
	}
	if code := post(form, "http://example.com", e.login(readToken)); code != http.StatusForbidden {
		t.Errorf("read-only session: %d, want 403", code)
	}
	if code := post(form, "http://example.com", nil); code != http.StatusUnauthorized {
		t.Errorf("no session: %d, want 401", code)
	}
	if n := e.synced(); n != 0 {
		t.Fatalf("%d syncs after refused actions", n)
	}
	if code := post(form, "http://example.com", c); code != http.StatusSeeOther {
		t.Errorf("confirmed action: %d, want 303", code)
	}
	form.Set("host", "elsewhere")
	if code := post(form, "http://example.com", c); code != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 404", code)
	}
	if n := e.synced(); n != 1 {
		t.Errorf("%d syncs, want 1", n)
	}
}

func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}

// TestStreamPushesChanges reads the SSE stream of the overview: the page
// now, then the page after a change of the agent, without asking again.
func TestStreamPushesChanges(t *testing.T) {
	e := newEnv(t, agent.Status{Host: "host-1", Fleets: []agent.FleetStatus{{Name: "shop"}}})
	c := e.login(readToken)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/stream?page=%2Fui%2F", nil)
	r.AddCookie(c)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(res.Body)
	if first := readEvent(t, rd); !strings.Contains(first, "retry: 50") {
		t.Errorf("first block %q, want retry:", first)
	}
	if ev := readEvent(t, rd); !strings.Contains(ev, "event: status") || !strings.Contains(ev, ">shop<") {
		t.Errorf("first status event lacks the fleet:\n%s", ev)
	}
	e.agent.set(agent.Status{Host: "host-1", Fleets: []agent.FleetStatus{{Name: "shop"}, {Name: "blog"}}})
	if ev := readEvent(t, rd); !strings.Contains(ev, ">blog<") {
		t.Errorf("event after the change lacks the new fleet:\n%s", ev)
	}
}

func readEvent(t *testing.T, rd *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read stream: %v (so far %q)", err, b.String())
		}
		if line == "\n" {
			if b.Len() == 0 || strings.HasPrefix(b.String(), ":") {
				b.Reset()
				continue
			}
			return b.String()
		}
		b.WriteString(line)
	}
}

func TestStreamRefusesOtherPages(t *testing.T) {
	e := newEnv(t, hostile(t))
	c := e.login(readToken)
	for _, page := range []string{"http://evil.example/ui/", "/ui/plan", "/v1/status"} {
		res, _ := e.do(get("/ui/stream?page="+url.QueryEscape(page), c))
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("stream of %s: %d, want 400", page, res.StatusCode)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/events?kind=drift": "/ui/events?kind=drift",
		"//evil.example/ui/":    "/ui/",
		"http://evil.example/":  "/ui/",
		"/v1/sync":              "/ui/",
		"":                      "/ui/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionExpiresAndNeedsKey(t *testing.T) {
	tok := Tokens{API: apiToken}
	now := time.Unix(1_700_000_000, 0)
	s := newSession(Act, now)
	v := s.encode(tok.key())
	if got, ok := decodeSession(tok.key(), v, now.Add(time.Hour)); !ok || got.Level != Act {
		t.Errorf("fresh session: %v %v", got, ok)
	}
	if _, ok := decodeSession(tok.key(), v, now.Add(SessionTTL)); ok {
		t.Error("session valid after its TTL")
	}
	if _, ok := decodeSession(Tokens{API: "another-token"}.key(), v, now); ok {
		t.Error("session valid after the token changed")
	}
	if _, ok := decodeSession(Tokens{}.key(), v, now); ok {
		t.Error("session valid without any token")
	}
}

// TestCloseEndsStreams: a server shutting down closes the dashboard, and
// its open streams end rather than hold the shutdown.
func TestCloseEndsStreams(t *testing.T) {
	e := newEnv(t, agent.Status{Host: "host-1"})
	c := e.login(readToken)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	r, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/ui/stream?page=%2Fui%2Frollouts", nil)
	r.AddCookie(c)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	readEvent(t, rd) // retry:
	readEvent(t, rd) // the page
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(rd); ended <- err }()
	e.h.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after Close")
	}
}
