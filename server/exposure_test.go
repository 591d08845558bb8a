package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAccessOf(t *testing.T) {
	tests := []struct {
		pattern string
		want    access
	}{
		{"GET /healthz", open},
		{"GET /readyz", open},
		{"GET /metrics", read},
		{"GET /v1/status", read},
		{"GET /v1/anything/added/later", read},
		{"POST /v1/sync", syncToken},
		{"POST /hooks/github", signed},
		{"POST /hooks/generic", signed},
	}
	for _, tt := range tests {
		if got := accessOf(tt.pattern); got != tt.want {
			t.Errorf("accessOf(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
	}
}

func TestPlacement(t *testing.T) {
	tests := []struct {
		pattern          string
		split            bool
		wantAPI, wantHks bool
	}{
		{"GET /healthz", false, true, false},
		{"GET /readyz", false, true, false},
		{"GET /metrics", false, true, false},
		{"GET /v1/status", false, true, false},
		{"POST /v1/sync", false, true, false},
		{"POST /hooks/github", false, true, false},
		{"GET /healthz", true, true, true},
		{"GET /readyz", true, true, false},
		{"GET /metrics", true, true, false},
		{"GET /v1/status", true, true, false},
		{"POST /v1/sync", true, true, false},
		{"POST /hooks/github", true, false, true},
		{"POST /hooks/gitlab", true, false, true},
	}
	for _, tt := range tests {
		api, hooks := placement(tt.pattern, tt.split)
		if api != tt.wantAPI || hooks != tt.wantHks {
			t.Errorf("placement(%q, split %v) = api %v, hooks %v; want %v, %v", tt.pattern, tt.split, api, hooks, tt.wantAPI, tt.wantHks)
		}
	}
}

func TestReadAllowed(t *testing.T) {
	tests := []struct {
		name              string
		auth, read, apiTk string
		want              bool
	}{
		{"no read token: open", "", "", "tok", true},
		{"no tokens at all: open", "", "", "", true},
		{"read token", "Bearer rd", "rd", "tok", true},
		{"api token reads too", "Bearer tok", "rd", "tok", true},
		{"scheme is case-insensitive", "bearer rd", "rd", "", true},
		{"missing", "", "rd", "tok", false},
		{"wrong", "Bearer nope", "rd", "tok", false},
		{"basic", "Basic cmQ=", "rd", "tok", false},
		{"empty bearer with no api token", "Bearer ", "rd", "", false},
		{"prefix of the token", "Bearer r", "rd", "", false},
	}
	for _, tt := range tests {
		if got := readAllowed(tt.auth, tt.read, tt.apiTk); got != tt.want {
			t.Errorf("%s: readAllowed(%q, %q, %q) = %v, want %v", tt.name, tt.auth, tt.read, tt.apiTk, got, tt.want)
		}
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		addr, read, hookAddr, secret string
		want                         int // warnings
	}{
		{"", "", "", "", 0},
		{"127.0.0.1:9750", "", "", "", 0},
		{"127.0.0.2:9750", "", "", "", 0},
		{"[::1]:9750", "", "", "", 0},
		{"localhost:9750", "", "", "", 0},
		{":9750", "", "", "", 1},
		{"0.0.0.0:9750", "", "", "", 1},
		{"10.0.0.5:9750", "", "", "", 1},
		{"fleetd.internal:9750", "", "", "", 1},
		{"0.0.0.0:9750", "rd", "", "", 0},
		{"127.0.0.1:9750", "", ":9751", "s", 0},
		{"127.0.0.1:9750", "", ":9751", "", 1},
		{":9750", "", ":9751", "", 2},
	}
	for _, tt := range tests {
		got := Config{Addr: tt.addr, ReadToken: tt.read, WebhookAddr: tt.hookAddr, WebhookSecret: tt.secret}.Warnings()
		if len(got) != tt.want {
			t.Errorf("Warnings(addr %q, read token %q, webhook addr %q, secret %q) = %q, want %d", tt.addr, tt.read, tt.hookAddr, tt.secret, got, tt.want)
		}
	}
}

// TestRouteAuth serves every route under every auth state, on each
// listener: what answers, and what needs which token.
func TestRouteAuth(t *testing.T) {
	body := pushBody("refs/heads/main")
	hook := deliver("github", "push", testSecret, body)
	type req struct {
		method, path string
		body         []byte
		hdr          []string
	}
	routes := map[string]req{
		"healthz": {"GET", "/healthz", nil, nil},
		"readyz":  {"GET", "/readyz", nil, nil},
		"metrics": {"GET", "/metrics", nil, nil},
		"status":  {"GET", "/v1/status", nil, nil},
		"sync":    {"POST", "/v1/sync", nil, nil},
		"hook":    {"POST", "/hooks/github", body, hook},
	}
	auths := map[string]string{"none": "", "read": "Bearer rd", "api": "Bearer tok", "wrong": "Bearer nope"}
	tests := []struct {
		readToken string
		listener  string // api, or hooks (the webhook listener)
		auth      string
		want      map[string]int
	}{
		// No read token: as before, only sync asks for a token.
		{"", "api", "none", map[string]int{"healthz": 200, "readyz": 200, "metrics": 200, "status": 200, "sync": 401, "hook": 202}},
		{"", "api", "api", map[string]int{"healthz": 200, "readyz": 200, "metrics": 200, "status": 200, "sync": 202, "hook": 202}},
		{"", "api", "wrong", map[string]int{"healthz": 200, "readyz": 200, "metrics": 200, "status": 200, "sync": 401, "hook": 202}},
		// A read token: reads need it (or the API token); probes and hooks do not.
		{"rd", "api", "none", map[string]int{"healthz": 200, "readyz": 200, "metrics": 401, "status": 401, "sync": 401, "hook": 202}},
		{"rd", "api", "read", map[string]int{"healthz": 200, "readyz": 200, "metrics": 200, "status": 200, "sync": 401, "hook": 202}},
		{"rd", "api", "api", map[string]int{"healthz": 200, "readyz": 200, "metrics": 200, "status": 200, "sync": 202, "hook": 202}},
		{"rd", "api", "wrong", map[string]int{"healthz": 200, "readyz": 200, "metrics": 401, "status": 401, "sync": 401, "hook": 202}},
	}
	for _, split := range []bool{false, true} {
		for _, tt := range tests {
			for _, listener := range []string{"api", "hooks"} {
				if listener == "hooks" && !split {
					continue
				}
				want := tt.want
				if split {
					want = splitWant(listener, tt.want)
				}
				for name, rq := range routes {
					t.Run(fmt.Sprintf("split=%v/read=%q/%s/%s/%s", split, tt.readToken, listener, tt.auth, name), func(t *testing.T) {
						srv, _ := newTestServer(t, func(c *Config) {
							c.ReadToken = tt.readToken
							if split {
								c.WebhookAddr = "127.0.0.1:0"
							}
						})
						h := srv.Handler()
						if listener == "hooks" {
							h = srv.WebhookHandler()
						}
						hdr := append([]string{"Authorization", auths[tt.auth]}, rq.hdr...)
						rec := do(h, rq.method, rq.path, rq.body, hdr...)
						if rec.Code != want[name] {
							t.Fatalf("%s %s: %d %s, want %d", rq.method, rq.path, rec.Code, strings.TrimSpace(rec.Body.String()), want[name])
						}
						if rec.Code == 401 && name != "hook" && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
							t.Errorf("401 without WWW-Authenticate: Bearer")
						}
					})
				}
			}
		}
	}
	t.Run("no webhook listener without webhook_addr", func(t *testing.T) {
		srv, _ := newTestServer(t, nil)
		if srv.WebhookHandler() != nil {
			t.Error("WebhookHandler() is not nil without WebhookAddr")
		}
	})
}

// splitWant is what a listener answers with a webhook listener: hooks and
// /healthz on it, the rest on the API listener, 404 elsewhere.
func splitWant(listener string, want map[string]int) map[string]int {
	out := map[string]int{}
	for name, code := range want {
		onHooks := name == "hook" || name == "healthz"
		onAPI := name != "hook"
		if (listener == "hooks" && onHooks) || (listener == "api" && onAPI) {
			out[name] = code
		} else {
			out[name] = 404
		}
	}
	return out
}

// TestTwoListeners: over TCP, webhooks are served on the webhook listener
// and nowhere else, status and metrics on the API listener only, and
// both shut down when ctx ends.
func TestTwoListeners(t *testing.T) {
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, spy := newTestServer(t, func(c *Config) {
		c.ReadToken = "rd"
		c.WebhookAddr = hookLn.Addr().String()
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.ServeListeners(ctx, apiLn, hookLn) }()
	api, hooks := "http://"+apiLn.Addr().String(), "http://"+hookLn.Addr().String()
	waitHealthy(t, api)
	waitHealthy(t, hooks)

	get := func(url, token string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return status(t, req)
	}
	post := func(url string) int {
		t.Helper()
		body := pushBody("refs/heads/main")
		req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(string(body)))
		hdr := withID("github", "d1", deliver("github", "push", testSecret, body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return status(t, req)
	}
	checks := []struct {
		name      string
		got, want int
	}{
		{"hook on the webhook listener", post(hooks + "/hooks/github"), 202},
		{"hook on the API listener", post(api + "/hooks/github"), 404},
		{"status on the webhook listener, with the token", get(hooks+"/v1/status", "rd"), 404},
		{"metrics on the webhook listener, with the token", get(hooks+"/metrics", "rd"), 404},
		{"readyz on the webhook listener", get(hooks+"/readyz", ""), 404},
		{"status on the API listener, no token", get(api+"/v1/status", ""), 401},
		{"status on the API listener, read token", get(api+"/v1/status", "rd"), 200},
		{"metrics on the API listener, read token", get(api+"/metrics", "rd"), 200},
		{"readyz on the API listener", get(api+"/readyz", ""), 200},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	spy.next(t)

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeListeners: %v", err)
		}
	case <-time.After(ShutdownTimeout + time.Second):
		t.Fatal("ServeListeners did not return")
	}
	for _, ln := range []net.Listener{apiLn, hookLn} {
		if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after shutdown", ln.Addr())
		}
	}
}

func status(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestServeListenersMismatch(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{}, nil) // no WebhookAddr
	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeListeners(t.Context(), ln, hookLn); err == nil {
		t.Fatal("a webhook listener without WebhookAddr was accepted")
	}
}

// TestListenAndServeBoth binds both addresses; a taken webhook address
// fails the start and frees the API address.
func TestListenAndServeBoth(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	srv := New(Config{Addr: addr, WebhookAddr: taken.Addr().String(), WebhookSecret: "s"}, nil)
	if err := srv.ListenAndServe(t.Context()); err == nil || !strings.Contains(err.Error(), "listen (webhooks)") {
		t.Fatalf("webhook address in use: got %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the API address was not freed: %v", err)
	}
	ln.Close()
}
