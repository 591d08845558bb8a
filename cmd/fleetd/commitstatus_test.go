package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/agent"
)

// TestCommitStatusRepoOfSource: the repository is derived from source.url
// only when it is on the forge's host.
func TestCommitStatusRepoOfSource(t *testing.T) {
	for _, tc := range []struct{ source, api, want, err string }{
		{"https://github.com/acme/fleet.git", "https://api.github.com", "acme/fleet", ""},
		{"git@github.com:acme/fleet.git", "https://api.github.com", "acme/fleet", ""},
		{"ssh://git@gitlab.example.com:2222/ops/infra/fleet.git", "https://gitlab.example.com", "ops/infra/fleet", ""},
		{"https://git.example.com/gitea/acme/fleet", "https://git.example.com/gitea/", "acme/fleet", ""},
		{"https://ghe.example.com/acme/fleet.git", "https://ghe.example.com/api/v3", "acme/fleet", ""},
		{"https://gitlab.com/acme/fleet.git", "https://api.github.com", "", "not on the forge's host api.github.com"},
		{"/srv/git/fleet", "https://api.github.com", "", "not an https or ssh URL"},
		{"https://github.com/fleet", "https://api.github.com", "", "names no owner/name"},
	} {
		got, err := repoOfSource(tc.source, tc.api)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("repoOfSource(%q, %q) = %q, %v; want %q, %q", tc.source, tc.api, got, err, tc.want, tc.err)
		}
	}
}

func TestCommitStatusConfigErrors(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("forge-token-0123456789\n"), 0o600)
	for _, tc := range []struct{ name, text, want string }{
		{"provider", "source: {url: 'https://github.com/a/b'}\nnotify: {commit_status: {provider: bitbucket, token_file: " + token + "}}\n", "notify.commit_status.provider"},
		{"token", "source: {url: 'https://github.com/a/b'}\nnotify: {commit_status: {provider: github}}\n", "notify.commit_status.token_file: required"},
		{"missing token file", "source: {url: 'https://github.com/a/b'}\nnotify: {commit_status: {provider: github, token_file: /nonexistent/t}}\n", "notify.commit_status.token_file"},
		{"api_url", "source: {url: 'https://git.example.com/a/b'}\nnotify: {commit_status: {provider: gitea, token_file: " + token + "}}\n", "notify.commit_status.api_url: required for gitea"},
		{"repo elsewhere", "source: {url: 'https://gitlab.com/a/b'}\nnotify: {commit_status: {provider: github, token_file: " + token + "}}\n", "notify.commit_status.repo"},
		{"unknown key", "source: {url: x}\nnotify: {commit_status: {provider: github, token: abc}}\n", "notify.commit_status.token"},
	} {
		_, err := loadConfig(t, tc.text, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "forge-token-0123456789") {
			t.Errorf("%s: the error shows the token: %v", tc.name, err)
		}
	}
	cfg, err := loadConfig(t, "source: {url: 'git@github.com:acme/fleet.git'}\nnotify: {status_url: 'https://fleetd.example.com/', commit_status: {provider: github, token_file: "+token+"}}\n", nil)
	if err != nil {
		t.Fatalf("a valid section: %v", err)
	}
	if repo, _ := cfg.Notify.CommitStatus.repo(cfg.Source.URL); repo != "acme/fleet" {
		t.Errorf("repo %q, want acme/fleet from source.url", repo)
	}
}

// TestCommitStatusWiring: the configuration's poster posts an agent's
// status to the forge it names, with the token from the file and the
// status link.
func TestCommitStatusWiring(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan map[string]string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &b)
		got <- r
		bodies <- b
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("forge-token-0123456789\n"), 0o600)
	cfg, err := loadConfig(t, "source: {url: '"+srv.URL+"/acme/fleet.git'}\nnotify: {status_url: 'https://fleetd.example.com/', commit_status: {provider: forgejo, api_url: '"+srv.URL+"', token_file: "+token+"}}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := newStatuses(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil || st == nil {
		t.Fatalf("newStatuses: %v, %v", st, err)
	}
	var _ agent.Statuses = st
	st.Post(agent.CommitStatus{Host: "web-1", Fleet: "shop", Commit: "abc123", State: agent.CommitSuccess, Description: "applied on web-1"})
	r, b := <-got, <-bodies
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if r.URL.Path != "/api/v1/repos/acme/fleet/statuses/abc123" || r.Header.Get("Authorization") != "token forge-token-0123456789" {
		t.Errorf("%s with %q", r.URL.Path, r.Header.Get("Authorization"))
	}
	if b["state"] != "success" || b["context"] != "fleetd/web-1/shop" || b["target_url"] != "https://fleetd.example.com/" {
		t.Errorf("payload %v", b)
	}
}
