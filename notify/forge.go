package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Commit status states, as fleetd says them; each provider maps them to
// its own words.
const (
	StatePending = "pending"
	StateSuccess = "success"
	StateFailure = "failure"
)

// CommitStatus is one status to post: what a commit did to one fleet on
// one host.
type CommitStatus struct {
	Host, Fleet, Commit string
	State               string // StatePending, StateSuccess or StateFailure
	Description         string
}

// Context is the status's name in the forge: fleetd/<host>/<fleet>.
func (c CommitStatus) Context() string { return "fleetd/" + c.Host + "/" + c.Fleet }

// Forge providers.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Forgejo = "forgejo"
)

// DefaultGitHubAPI is GitHub's API root; GitHub Enterprise Server's is
// https://<host>/api/v3.
const DefaultGitHubAPI = "https://api.github.com"

// ForgeConfig configures the commit-status poster.
type ForgeConfig struct {
	Provider string // GitHub, GitLab, Gitea or Forgejo
	// APIURL is GitHub's API root (DefaultGitHubAPI when empty), or the
	// base address of a GitLab, Gitea or Forgejo instance (required).
	APIURL string
	// Repo is owner/name (GitLab: the project's full path, groups
	// included, or its numeric id).
	Repo  string
	Token string
	// TargetURL is the link of every status (the agent's status page);
	// empty for none.
	TargetURL string
	// Secrets are values that must never appear in a description.
	Secrets    []string
	QueueSize  int // default 64
	HTTPClient *http.Client
	Retry      Retry
	// OnDropped is called with the number of statuses just lost (queue
	// full, or posting failed); it must not block.
	OnDropped func(n int)
	Log       *slog.Logger
}

// Forge posts commit statuses to GitHub, GitLab, Gitea or Forgejo: one
// bounded queue and one worker, so that Post never blocks and statuses
// reach the forge in the order they were decided.
//
// Each provider's API is a single POST, written here with net/http: the
// SDKs (go-github, go-gitlab, the Gitea SDK) would each bring a large
// dependency tree into the binary for one call, and a fake server in the
// tests pins the paths, headers and payloads better than a mocked SDK.
type Forge struct {
	cfg   ForgeConfig
	scrub *Scrubber
	name  string // provider and repository, for logs and errors

	queue chan CommitStatus

	sendCtx    context.Context
	cancelSend context.CancelFunc
	wg         sync.WaitGroup
	mu         sync.Mutex
	closed     bool
}

// NewForge checks cfg and starts the worker.
func NewForge(cfg ForgeConfig) (*Forge, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 64
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	f := &Forge{cfg: cfg, scrub: NewScrubber(append(cfg.Secrets, cfg.Token)...), name: cfg.Provider + " " + cfg.Repo,
		queue: make(chan CommitStatus, cfg.QueueSize)}
	f.sendCtx, f.cancelSend = context.WithCancel(context.Background())
	f.wg.Add(1)
	go f.run()
	return f, nil
}

// check fills in GitHub's API root and refuses what cannot be posted to.
func (c *ForgeConfig) check() error {
	switch c.Provider {
	case GitHub:
		if c.APIURL == "" {
			c.APIURL = DefaultGitHubAPI
		}
	case GitLab, Gitea, Forgejo:
		if c.APIURL == "" {
			return fmt.Errorf("api_url: required for %s", c.Provider)
		}
	default:
		return fmt.Errorf("provider: %q is not github, gitlab, gitea or forgejo", c.Provider)
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return errors.New("api_url: not an http(s) URL without credentials")
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	parts := strings.Split(c.Repo, "/")
	numeric := false
	if _, err := strconv.ParseUint(c.Repo, 10, 64); err == nil {
		numeric = true
	}
	switch {
	case c.Provider == GitLab && (numeric || len(parts) >= 2) && !slices.Contains(parts, ""):
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
	default:
		return fmt.Errorf("repo: %q is not owner/name", c.Repo)
	}
	if c.Token == "" {
		return errors.New("token_file: required (the file is empty)")
	}
	return nil
}

// Post queues a status. It never blocks: a full queue drops the status
// and counts it.
func (f *Forge) Post(c CommitStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	select {
	case f.queue <- c:
	default:
		f.reportDropped(1)
		f.cfg.Log.Warn("commit status: queue full; status dropped", "forge", f.name, "context", c.Context(), "commit", c.Commit, "state", c.State)
	}
}

func (f *Forge) reportDropped(n int) {
	if f.cfg.OnDropped != nil {
		f.cfg.OnDropped(n)
	}
}

// run posts the queue, in order, until it is closed.
func (f *Forge) run() {
	defer f.wg.Done()
	for c := range f.queue {
		c.Description = clip(f.scrub.String(c.Description), 140)
		err := f.cfg.Retry.do(f.sendCtx, func(ctx context.Context) error { return f.post(ctx, c) })
		if err == nil {
			continue
		}
		f.reportDropped(1)
		if f.sendCtx.Err() != nil {
			continue // Close gave up
		}
		f.cfg.Log.Error("commit status: post failed", "forge", f.name, "context", c.Context(), "commit", c.Commit, "state", c.State,
			"err", f.scrub.Error(err))
	}
}

// Close stops taking statuses and posts what is queued, until ctx ends.
func (f *Forge) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.queue)
	f.mu.Unlock()
	if finished(ctx, &f.wg) {
		f.cancelSend()
		return nil
	}
	left := len(f.queue)
	f.cancelSend()
	return fmt.Errorf("commit status: flush: %d statuses left: %w", left, ctx.Err())
}

// request is the provider's path, headers and body for one status.
func (f *Forge) request(c CommitStatus) (path string, header http.Header, body any) {
	header = http.Header{}
	sha := url.PathEscape(c.Commit)
	switch f.cfg.Provider {
	case GitHub:
		header.Set("Authorization", "Bearer "+f.cfg.Token)
		header.Set("Accept", "application/vnd.github+json")
		header.Set("X-GitHub-Api-Version", "2022-11-28")
		return "/repos/" + repoPath(f.cfg.Repo) + "/statuses/" + sha, header, statusBody{State: c.State, TargetURL: f.cfg.TargetURL, Description: c.Description, Context: c.Context()}
	case GitLab:
		header.Set("PRIVATE-TOKEN", f.cfg.Token)
		return "/api/v4/projects/" + url.PathEscape(f.cfg.Repo) + "/statuses/" + sha, header,
			gitlabBody{State: gitlabState(c.State), Name: c.Context(), TargetURL: f.cfg.TargetURL, Description: c.Description}
	}
	header.Set("Authorization", "token "+f.cfg.Token)
	return "/api/v1/repos/" + repoPath(f.cfg.Repo) + "/statuses/" + sha, header, statusBody{State: c.State, TargetURL: f.cfg.TargetURL, Description: c.Description, Context: c.Context()}
}

// repoPath is owner/name with each part escaped.
func repoPath(repo string) string {
	owner, name, _ := strings.Cut(repo, "/")
	return url.PathEscape(owner) + "/" + url.PathEscape(name)
}

// statusBody is GitHub's, Gitea's and Forgejo's payload.
type statusBody struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

type gitlabBody struct {
	State       string `json:"state"`
	Name        string `json:"name"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
}

// gitlabState maps fleetd's states to GitLab's: an apply under way is
// "running", a failure "failed".
func gitlabState(s string) string {
	switch s {
	case StatePending:
		return "running"
	case StateFailure:
		return "failed"
	}
	return s
}

// post sends one status: 429 and 5xx are worth another attempt (after
// Retry-After), the rest of 4xx not (a bad token, a repository not found,
// a refused payload).
func (f *Forge) post(ctx context.Context, c CommitStatus) error {
	path, header, body := f.request(c)
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.APIURL+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fleetd-notify/1")
	resp, err := f.cfg.HTTPClient.Do(req)
	if err != nil {
		return temporary(err, 0)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case f.cfg.Provider == GitLab && resp.StatusCode == http.StatusBadRequest && bytes.Contains(answer, []byte("Cannot transition status")):
		return nil // GitLab refuses a status the same as the last one: it stands
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return temporary(fmt.Errorf("status %s", resp.Status), retryAfter(resp.Header, time.Now()))
	}
	return fmt.Errorf("status %s%s: %s", resp.Status, refusedHint[resp.StatusCode], clip(strings.Join(strings.Fields(string(answer)), " "), 200))
}

// refusedHint says what an answer that is not retried most likely means.
var refusedHint = map[int]string{
	http.StatusUnauthorized:        " (the token is refused)",
	http.StatusForbidden:           " (the token may not post statuses to this repository)",
	http.StatusNotFound:            " (no such repository or commit, or the token cannot see it)",
	http.StatusUnprocessableEntity: " (the forge refused the status)",
}
