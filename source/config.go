package source

import (
	"net/url"
	pathpkg "path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Auth holds the credentials for the remote. The caller reads them from
// files or the environment; they never appear in an error or a log line.
type Auth struct {
	// Token is an HTTPS access token, sent as the password of basic auth
	// with Username, or "x-access-token" when Username is empty (GitHub,
	// GitLab, Gitea and Forgejo accept a token as the password).
	Token string
	// Username and Password are HTTPS basic auth.
	Username, Password string
	// SSHKeyFile is a private key for ssh:// and scp-like URLs, decrypted
	// with SSHKeyPassphrase. KnownHostsFile is required with it: host keys
	// are checked strictly against it, and an unknown host is an error.
	SSHKeyFile, SSHKeyPassphrase, KnownHostsFile string
}

// Config says which repository, ref and path to follow and where to keep
// the clone.
type Config struct {
	URL  string // https://, http://, ssh://, git@host:path, file:// or a local path
	Ref  string // branch, tag (or refs/...) or a full 40-hex commit; default "main"
	Path string // subdirectory holding the fleets; default "."
	Dir  string // where the clone and checked-out trees live; created if missing
	// Keep is how many checked-out trees are kept on disk (default 3, at
	// least 1); older ones are removed after a checkout.
	Keep int
	Auth Auth
	// Limits bound a checked-out tree (zero fields: DefaultLimits).
	Limits Limits
	// Warn, when set, is told, once per tree written, each submodule and
	// Git LFS pointer file of the commit: fleetd fetches neither, so a
	// fleet reading them gets an empty directory or the pointer's text.
	Warn func(commit, warning string)
	// Trust, when set, is who must have signed a head for it to be taken
	// (LoadTrust); AllowRewind takes heads that do not descend from the
	// current revision (force-pushes to older or unrelated commits).
	Trust       *Trust
	AllowRewind bool
}

// DefaultRef is the ref followed when Config.Ref is empty.
const DefaultRef = "main"

const defaultKeep = 3

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// isCommit reports whether ref pins a full commit hash.
func isCommit(ref string) bool { return commitRE.MatchString(ref) }

// withDefaults returns cfg with defaults applied and validated; errors name
// the field.
func (cfg Config) withDefaults() (Config, *transport.Endpoint, error) {
	if cfg.Ref == "" {
		cfg.Ref = DefaultRef
	}
	if cfg.Path == "" {
		cfg.Path = "."
	}
	if cfg.Keep == 0 {
		cfg.Keep = defaultKeep
	}
	ep, err := parseURL(cfg.URL, "url")
	if err != nil {
		return cfg, nil, err
	}
	if err := cfg.validate(ep); err != nil {
		return cfg, nil, err
	}
	if ep.Protocol == "file" {
		cfg.URL = ep.Path
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return cfg, nil, configError("dir", "%v", err)
	}
	cfg.Dir = abs
	return cfg, ep, nil
}

func (cfg Config) validate(ep *transport.Endpoint) error {
	if err := validateRef(cfg.Ref); err != nil {
		return err
	}
	if err := validatePath(cfg.Path); err != nil {
		return err
	}
	if cfg.Dir == "" {
		return configError("dir", "required")
	}
	if cfg.Keep < 1 {
		return configError("keep", "must be at least 1, not %d", cfg.Keep)
	}
	if err := cfg.Limits.validate(); err != nil {
		return err
	}
	return cfg.Auth.validate(ep)
}

func validateRef(ref string) error {
	if strings.ContainsAny(ref, " \t\n:?*[\\^~") || strings.Contains(ref, "..") ||
		strings.HasPrefix(ref, "-") || strings.HasSuffix(ref, "/") {
		return configError("ref", "%q is not a branch, tag or commit", ref)
	}
	return nil
}

func validatePath(p string) error {
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		return configError("path", "%q must be a relative path inside the repository", p)
	}
	return nil
}

// RepoName is a repository's name from its URL or path: the last element
// of its path without ".git" — "fleet" for https://git.example.com/ops/fleet.git,
// git@host:ops/fleet.git or /srv/fleet. A fleet kept at the repository's
// root is named after it (fleets.RootName), as Compose names a project
// after its directory.
func RepoName(raw string) string {
	p := raw
	if ep, err := parseURL(raw, "repo"); err == nil && ep.Path != "" {
		p = ep.Path
	}
	p = strings.TrimRight(filepath.ToSlash(p), "/")
	if pathpkg.Base(p) == ".git" { // a work tree's .git directory
		p = pathpkg.Dir(p)
	}
	return strings.TrimSuffix(pathpkg.Base(p), ".git")
}

// IsLocal reports whether repo is a local path or file:// URL, opened in
// place: no credentials apply to it.
func IsLocal(repo string) bool {
	ep, err := parseURL(repo, "repo")
	return err == nil && ep.Protocol == "file"
}

// parseURL parses a remote URL (or local path) into a go-git endpoint;
// relative local paths are made absolute.
func parseURL(raw, field string) (*transport.Endpoint, error) {
	if raw == "" {
		return nil, configError(field, "required")
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return nil, configError(field, "%q: %v", redactURL(raw), err)
	}
	switch ep.Protocol {
	case "http", "https", "ssh":
	case "file":
		abs, err := filepath.Abs(ep.Path)
		if err != nil {
			return nil, configError(field, "%v", err)
		}
		ep.Path = abs
	default:
		return nil, configError(field, "%q: unsupported scheme %q (https, http, ssh, file)", redactURL(raw), ep.Protocol)
	}
	return ep, nil
}

func (a Auth) validate(ep *transport.Endpoint) error {
	isSSH := ep.Protocol == "ssh"
	isHTTP := ep.Protocol == "http" || ep.Protocol == "https"
	switch {
	case a.Token != "" && a.Password != "":
		return configError("auth.token", "set a token or a password, not both")
	case !isHTTP && (a.Token != "" || a.Password != "" || a.Username != ""):
		return configError("auth.token", "token and basic auth apply to http(s) URLs only")
	case !isSSH && (a.SSHKeyFile != "" || a.KnownHostsFile != ""):
		return configError("auth.ssh_key_file", "SSH keys apply to ssh:// and user@host:path URLs only")
	case isSSH && a.SSHKeyFile == "":
		return configError("auth.ssh_key_file", "required for an SSH URL")
	case isSSH && a.KnownHostsFile == "":
		return configError("auth.known_hosts_file", "required for an SSH URL (host keys are checked strictly)")
	}
	return nil
}

// redactURL hides a password embedded in a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// secrets lists the strings that must never appear in an error.
func (a Auth) secrets(rawURL string) redactor {
	r := redactor{a.Token, a.Password, a.SSHKeyPassphrase}
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			r = append(r, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	return r
}
