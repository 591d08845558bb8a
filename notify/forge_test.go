package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	forgeToken = "forge-token-0123456789"
	forgeSHA   = "0123456789abcdef0123456789abcdef01234567"
)

// forgeCall is one request the fake forge received.
type forgeCall struct {
	method, path string // path as sent, escapes kept
	header       http.Header
	body         map[string]string
	at           time.Time
}

// fakeForge is a forge API that records every request and answers with
// the given statuses in turn (then 201); a 429 carries Retry-After: 1.
type fakeForge struct {
	*httptest.Server
	mu      sync.Mutex
	answers []fakeAnswer
	calls   []forgeCall
	got     chan forgeCall
}

type fakeAnswer struct {
	status int
	body   string
}

func newFakeForge(t *testing.T, answers ...fakeAnswer) *fakeForge {
	f := &fakeForge{answers: answers, got: make(chan forgeCall, 100)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		c := forgeCall{method: r.Method, path: r.URL.EscapedPath(), header: r.Header.Clone(), at: time.Now()}
		if err := json.Unmarshal(raw, &c.body); err != nil {
			t.Errorf("body %q is not a JSON object of strings: %v", raw, err)
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		a := fakeAnswer{status: http.StatusCreated, body: `{"id":1}`}
		if len(f.answers) > 0 {
			a, f.answers = f.answers[0], f.answers[1:]
		}
		f.mu.Unlock()
		if a.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
		f.got <- c
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeForge) next(t *testing.T) forgeCall {
	t.Helper()
	select {
	case c := <-f.got:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached the forge")
		return forgeCall{}
	}
}

func (f *fakeForge) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// syncBuffer is a log destination safe for the worker and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func closeForge(t *testing.T, f *Forge) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestForgeProviders: each provider's path (a GitLab project's full path
// escaped as one segment), auth header and payload, with fleetd's states
// mapped to the provider's, the context fleetd/<host>/<fleet>, the
// agent's status link, and the description scrubbed.
func TestForgeProviders(t *testing.T) {
	for _, tc := range []struct {
		provider, repo, apiPath string
		wantPath, authHeader    string
		auth                    string
		nameKey                 string
		states                  map[string]string
	}{
		{GitHub, "acme/fleet", "/api/v3", "/api/v3/repos/acme/fleet/statuses/" + forgeSHA, "Authorization", "Bearer " + forgeToken, "context",
			map[string]string{StatePending: "pending", StateSuccess: "success", StateFailure: "failure"}},
		{GitLab, "ops/infra/fleet", "/gitlab", "/gitlab/api/v4/projects/ops%2Finfra%2Ffleet/statuses/" + forgeSHA, "Private-Token", forgeToken, "name",
			map[string]string{StatePending: "running", StateSuccess: "success", StateFailure: "failed"}},
		{GitLab, "42", "", "/api/v4/projects/42/statuses/" + forgeSHA, "Private-Token", forgeToken, "name",
			map[string]string{StatePending: "running"}},
		{Gitea, "acme/fleet", "", "/api/v1/repos/acme/fleet/statuses/" + forgeSHA, "Authorization", "token " + forgeToken, "context",
			map[string]string{StatePending: "pending", StateSuccess: "success", StateFailure: "failure"}},
		{Forgejo, "acme/fleet", "/", "/api/v1/repos/acme/fleet/statuses/" + forgeSHA, "Authorization", "token " + forgeToken, "context",
			map[string]string{StateFailure: "failure"}},
	} {
		t.Run(tc.provider+" "+tc.repo, func(t *testing.T) {
			srv := newFakeForge(t)
			f, err := NewForge(ForgeConfig{Provider: tc.provider, APIURL: srv.URL + tc.apiPath, Repo: tc.repo, Token: forgeToken,
				TargetURL: "https://fleetd.example.com/status", Secrets: []string{"hunter2-s3cr3t"}, Retry: fastRetry,
				Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer closeForge(t, f)
			for state, want := range tc.states {
				f.Post(CommitStatus{Host: "web-1", Fleet: "shop", Commit: forgeSHA, State: state, Description: "password=hunter2-s3cr3t rejected"})
				c := srv.next(t)
				if c.method != http.MethodPost || c.path != tc.wantPath {
					t.Errorf("%s %s, want POST %s", c.method, c.path, tc.wantPath)
				}
				if got := c.header.Get(tc.authHeader); got != tc.auth {
					t.Errorf("%s: %q, want %q", tc.authHeader, got, tc.auth)
				}
				if tc.provider == GitHub && c.header.Get("Accept") != "application/vnd.github+json" {
					t.Errorf("Accept: %q", c.header.Get("Accept"))
				}
				if ct := c.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type: %q", ct)
				}
				wantBody := map[string]string{"state": want, tc.nameKey: "fleetd/web-1/shop", "target_url": "https://fleetd.example.com/status"}
				for k, v := range wantBody {
					if c.body[k] != v {
						t.Errorf("%s = %q, want %q (body %v)", k, c.body[k], v, c.body)
					}
				}
				if d := c.body["description"]; strings.Contains(d, "hunter2") || !strings.Contains(d, "rejected") {
					t.Errorf("description %q: want it scrubbed", d)
				}
			}
		})
	}
}

// TestForgeRetryAfter: a 429 is posted again after the Retry-After the
// forge asked for.
func TestForgeRetryAfter(t *testing.T) {
	srv := newFakeForge(t, fakeAnswer{status: http.StatusTooManyRequests, body: `{"message":"rate limited"}`})
	var dropped atomic.Int64
	f, err := NewForge(ForgeConfig{Provider: GitHub, APIURL: srv.URL, Repo: "acme/fleet", Token: forgeToken, Retry: fastRetry,
		OnDropped: func(n int) { dropped.Add(int64(n)) }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.Post(CommitStatus{Host: "h", Fleet: "a", Commit: forgeSHA, State: StateSuccess})
	first, second := srv.next(t), srv.next(t)
	closeForge(t, f)
	if wait := second.at.Sub(first.at); wait < 900*time.Millisecond {
		t.Errorf("posted again after %s; Retry-After said 1s", wait)
	}
	if srv.count() != 2 || dropped.Load() != 0 {
		t.Errorf("%d posts, %d dropped; want 2 and 0", srv.count(), dropped.Load())
	}
}

// TestForgeRefusedNotRetried: a 401 fails at once, is counted, and is
// logged naming the provider and the repository, never the token.
func TestForgeRefusedNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity} {
		srv := newFakeForge(t, fakeAnswer{status: status, body: `{"message":"Bad credentials for ` + forgeToken + `"}`})
		var dropped atomic.Int64
		var logs syncBuffer
		f, err := NewForge(ForgeConfig{Provider: Gitea, APIURL: srv.URL, Repo: "acme/fleet", Token: forgeToken, Retry: fastRetry,
			OnDropped: func(n int) { dropped.Add(int64(n)) }, Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		f.Post(CommitStatus{Host: "h", Fleet: "a", Commit: forgeSHA, State: StateFailure})
		srv.next(t)
		closeForge(t, f)
		if srv.count() != 1 || dropped.Load() != 1 {
			t.Errorf("%d: %d posts, %d dropped; want 1 and 1", status, srv.count(), dropped.Load())
		}
		out := logs.String()
		if !strings.Contains(out, "gitea acme/fleet") || !strings.Contains(out, http.StatusText(status)) || strings.Contains(out, forgeToken) {
			t.Errorf("%d: log %q: want the provider, the repository and the answer, not the token", status, out)
		}
	}
}

// TestForgeGitLabSameState: GitLab's refusal of a transition to the state
// the status already has is no failure.
func TestForgeGitLabSameState(t *testing.T) {
	srv := newFakeForge(t, fakeAnswer{status: http.StatusBadRequest, body: `{"message":"Cannot transition status via :run from :running"}`})
	var dropped atomic.Int64
	f, err := NewForge(ForgeConfig{Provider: GitLab, APIURL: srv.URL, Repo: "ops/fleet", Token: forgeToken, Retry: fastRetry,
		OnDropped: func(n int) { dropped.Add(int64(n)) }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.Post(CommitStatus{Host: "h", Fleet: "a", Commit: forgeSHA, State: StatePending})
	srv.next(t)
	closeForge(t, f)
	if srv.count() != 1 || dropped.Load() != 0 {
		t.Errorf("%d posts, %d dropped; want 1 and 0", srv.count(), dropped.Load())
	}
}

// TestForgePostNeverBlocks: with the forge hanging, a full queue drops
// and counts, and Post returns at once.
func TestForgePostNeverBlocks(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hold }))
	defer srv.Close()
	defer close(hold)
	var dropped atomic.Int64
	f, err := NewForge(ForgeConfig{Provider: GitHub, APIURL: srv.URL, Repo: "acme/fleet", Token: forgeToken, QueueSize: 2, Retry: fastRetry,
		OnDropped: func(n int) { dropped.Add(int64(n)) }, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 10 {
		f.Post(CommitStatus{Host: "h", Fleet: "a", Commit: forgeSHA, State: StatePending})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10 posts took %s", d)
	}
	if n := dropped.Load(); n < 7 {
		t.Errorf("%d dropped of 10 with a queue of 2 and one in flight, want at least 7", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Close(ctx); err == nil {
		t.Error("Close with the forge hanging: no error")
	}
}

func TestForgeConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		cfg  ForgeConfig
		want string
	}{
		{ForgeConfig{Provider: "bitbucket", Repo: "a/b", Token: "t"}, "provider"},
		{ForgeConfig{Provider: GitLab, Repo: "a/b", Token: "t"}, "api_url: required for gitlab"},
		{ForgeConfig{Provider: Gitea, APIURL: "https://user:pw@git.example.com", Repo: "a/b", Token: "t"}, "api_url"},
		{ForgeConfig{Provider: GitHub, Repo: "a/b/c", Token: "t"}, "repo"},
		{ForgeConfig{Provider: Forgejo, APIURL: "https://codeberg.org", Repo: "42", Token: "t"}, "repo"},
		{ForgeConfig{Provider: GitHub, Repo: "a/b"}, "token_file"},
	} {
		if _, err := NewForge(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	f, err := NewForge(ForgeConfig{Provider: GitHub, Repo: "a/b", Token: "t", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	closeForge(t, f)
	if f.cfg.APIURL != DefaultGitHubAPI {
		t.Errorf("GitHub's API root defaults to %q", f.cfg.APIURL)
	}
}
