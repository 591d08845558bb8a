package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/notify"
	"github.com/fleetd/fleetd/server"
)

// commitStatusConfig is notify.commit_status: the forge that gets a
// commit status per host and fleet for each revision applied
// (docs/notifications.md#commit-statuses).
type commitStatusConfig struct {
	Provider string `yaml:"provider"` // github | gitlab | gitea | forgejo
	// APIURL is GitHub's API root (default https://api.github.com), or
	// the base address of the GitLab, Gitea or Forgejo instance.
	APIURL string `yaml:"api_url"`
	// Repo is owner/name (GitLab: the project's path or id); by default
	// the path of source.url when it is on the forge's host.
	Repo      string `yaml:"repo"`
	TokenFile string `yaml:"token_file"`
}

// check names each key at fault; the token file is read by validate's
// secret-file pass.
func (c *commitStatusConfig) check(sourceURL string) []error {
	if c == nil {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notify.commit_status.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Provider {
	case notify.GitHub, notify.GitLab, notify.Gitea, notify.Forgejo:
	default:
		bad("provider", "%q is not github, gitlab, gitea or forgejo", c.Provider)
		return errs
	}
	if c.TokenFile == "" {
		bad("token_file", "required")
	}
	if c.APIURL == "" && c.Provider != notify.GitHub {
		bad("api_url", "required for %s (the instance's address, e.g. https://git.example.com)", c.Provider)
		return errs
	}
	if _, err := c.repo(sourceURL); err != nil {
		bad("repo", "%v", err)
	}
	return errs
}

// apiURL is the configured API address, GitHub's default filled in.
func (c commitStatusConfig) apiURL() string {
	if c.APIURL == "" && c.Provider == notify.GitHub {
		return notify.DefaultGitHubAPI
	}
	return c.APIURL
}

// repo is the configured repository, or the one source.url names when it
// is on the forge's host.
func (c commitStatusConfig) repo(sourceURL string) (string, error) {
	if c.Repo != "" {
		return c.Repo, nil
	}
	return repoOfSource(sourceURL, c.apiURL())
}

// repoOfSource derives owner/name (GitLab: group/…/name) from the source's
// URL, https, ssh:// or scp-like (git@host:owner/name.git), when its host
// is the API's (github.com for api.github.com). A repository elsewhere is
// not guessed at: set repo.
func repoOfSource(sourceURL, apiURL string) (string, error) {
	api, err := url.Parse(apiURL)
	if err != nil || api.Hostname() == "" {
		return "", errors.New("required: api_url is not a URL to derive it from source.url")
	}
	ep, err := transport.NewEndpoint(sourceURL)
	if err != nil || ep.Host == "" || (ep.Protocol != "https" && ep.Protocol != "http" && ep.Protocol != "ssh") {
		return "", errors.New("required: source.url is not an https or ssh URL to derive it from")
	}
	apiHost := strings.TrimPrefix(strings.ToLower(api.Hostname()), "api.")
	if !strings.EqualFold(ep.Host, api.Hostname()) && !(api.Hostname() == "api.github.com" && strings.EqualFold(ep.Host, apiHost)) {
		return "", fmt.Errorf("required: source.url is on %s, not on the forge's host %s", ep.Host, api.Hostname())
	}
	path := strings.Trim(ep.Path, "/")
	if prefix := strings.Trim(api.Path, "/"); prefix != "" && strings.HasPrefix(path, prefix+"/") {
		path = strings.TrimPrefix(path, prefix+"/") // an instance served under a path
	}
	path = strings.TrimSuffix(path, ".git")
	if !strings.Contains(path, "/") {
		return "", fmt.Errorf("required: source.url's path %q names no owner/name", ep.Path)
	}
	return path, nil
}

// forgeStatuses posts the agent's commit statuses through notify.Forge.
type forgeStatuses struct{ *notify.Forge }

func (f forgeStatuses) Post(c agent.CommitStatus) {
	f.Forge.Post(notify.CommitStatus{Host: c.Host, Fleet: c.Fleet, Commit: c.Commit, State: string(c.State), Description: c.Description})
}

// Close posts what is queued, for at most flushTimeout.
func (f forgeStatuses) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	return f.Forge.Close(ctx)
}

// newStatuses builds the commit-status poster of notify.commit_status; nil
// when the section is absent. Lost statuses count as dropped
// notifications.
func newStatuses(cfg daemonConfig, log *slog.Logger, metrics *server.Metrics) (*forgeStatuses, error) {
	c := cfg.Notify.CommitStatus
	if c == nil {
		return nil, nil
	}
	token, err := readSecret(c.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("notify.commit_status.token_file: %w", err)
	}
	repo, err := c.repo(cfg.Source.URL)
	if err != nil {
		return nil, fmt.Errorf("notify.commit_status.repo: %w", err)
	}
	// No secret of the configuration reaches a description.
	var secrets []string
	for _, path := range cfg.secretFiles() {
		if v, err := readSecret(path); err == nil && v != "" {
			secrets = append(secrets, v)
		}
	}
	fc := notify.ForgeConfig{Provider: c.Provider, APIURL: c.apiURL(), Repo: repo, Token: token, TargetURL: cfg.Notify.StatusURL,
		Secrets: secrets, Log: log}
	if metrics != nil {
		fc.OnDropped = metrics.AddDropped
	}
	f, err := notify.NewForge(fc)
	if err != nil {
		return nil, fmt.Errorf("notify.commit_status.%w", err)
	}
	return &forgeStatuses{f}, nil
}
