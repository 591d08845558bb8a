package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/fleetd/fleetd/engine/swarm"
)

// daemonConfig is the configuration file of `fleetd run`, documented key by
// key in docs/operations.md. Secrets are never in it: only paths of files
// that hold them.
type daemonConfig struct {
	Host     hostConfig    `yaml:"host"`
	Source   sourceConfig  `yaml:"source"`
	Webhook  webhookConfig `yaml:"webhook"`
	API      apiConfig     `yaml:"api"`
	Listen   string        `yaml:"listen"`
	StateDir string        `yaml:"state_dir"`
	// SecretsDir is where files decrypted with SOPS are written for
	// containers to bind: a tmpfs (engine.DefaultSecretsDir when empty).
	SecretsDir string          `yaml:"secrets_dir"`
	Instance   string          `yaml:"instance"`
	Notify     notifyConfig    `yaml:"notify"`
	Reconcile  reconcileConfig `yaml:"reconcile"`
	Swarm      swarmConfig     `yaml:"swarm"`
	Ingress    ingressConfig   `yaml:"ingress"`
	Log        logConfig       `yaml:"log"`
	Policy     policyConfig    `yaml:"policy"` // policy.go
	// ImageUpdates is the image update check (imageupdates.go).
	ImageUpdates imageUpdatesConfig `yaml:"image_updates"`
}

// ingressConfig tunes fleetd's ingress, which runs when a service asks
// for it (x-fleetd.ingress).
type ingressConfig struct {
	// AccessLog logs one line per request and connection in the ingress
	// container's log.
	AccessLog bool `yaml:"access_log"`
}

// swarmConfig turns on swarm fleets: the agent runs on a manager node and
// campaigns for the swarm's lease with the agents of the other managers.
type swarmConfig struct {
	Enabled        bool        `yaml:"enabled"`
	Lease          leaseConfig `yaml:"lease"`
	RolloutTimeout string      `yaml:"rollout_timeout"`
	// ResolveImages pins each tag to the digest its registry gives, once
	// per revision (default true); false for a swarm that reaches no
	// registry, where asking only waits for a timeout.
	ResolveImages *bool `yaml:"resolve_images"`
}

// leaseConfig has Kubernetes leader election's meaning and defaults.
type leaseConfig struct {
	Duration      string `yaml:"duration"`
	RenewDeadline string `yaml:"renew_deadline"`
	RetryPeriod   string `yaml:"retry_period"`
}

// leaseParams reads the lease timings, client-go's defaults for the ones
// not set.
func (c swarmConfig) leaseParams() (swarm.LeaseParams, error) {
	p := swarm.DefaultLeaseParams
	for _, d := range []struct {
		key, v string
		dst    *time.Duration
	}{
		{"swarm.lease.duration", c.Lease.Duration, &p.Duration},
		{"swarm.lease.renew_deadline", c.Lease.RenewDeadline, &p.RenewDeadline},
		{"swarm.lease.retry_period", c.Lease.RetryPeriod, &p.RetryPeriod},
	} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return p, fmt.Errorf("%s: %q is not a duration", d.key, d.v)
		}
		*d.dst = v
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("swarm.lease: %w", err)
	}
	return p, nil
}

// rolloutTimeout is how long fleetd follows Swarm's updater (default 10m).
func (c swarmConfig) rolloutTimeout() (time.Duration, error) {
	if c.RolloutTimeout == "" {
		return 10 * time.Minute, nil
	}
	d, err := time.ParseDuration(c.RolloutTimeout)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("swarm.rollout_timeout: %q is not a duration of at least 1s", c.RolloutTimeout)
	}
	return d, nil
}

type hostConfig struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type sourceConfig struct {
	URL      string     `yaml:"url"`
	Ref      string     `yaml:"ref"`
	Path     string     `yaml:"path"`
	Interval string     `yaml:"interval"`
	Schedule string     `yaml:"schedule"`
	Windows  []string   `yaml:"windows"`
	Auth     authConfig `yaml:"auth"`
	// WebURL is the repository's web address, for commit links in messages.
	WebURL string `yaml:"web_url"`
	// Verify requires signed heads (verify.go); AllowRewind takes heads
	// that do not descend from the last one taken.
	Verify      *verifyConfig `yaml:"verify"`
	AllowRewind bool          `yaml:"allow_rewind"`
	// Limits bound a commit's tree on disk (limits.go).
	Limits limitsConfig `yaml:"limits"`
}

type authConfig struct {
	TokenFile            string `yaml:"token_file"`
	Username             string `yaml:"username"`
	PasswordFile         string `yaml:"password_file"`
	SSHKeyFile           string `yaml:"ssh_key_file"`
	SSHKeyPassphraseFile string `yaml:"ssh_key_passphrase_file"`
	KnownHostsFile       string `yaml:"known_hosts_file"`
}

type webhookConfig struct {
	SecretFile string `yaml:"secret_file"`
	// Listen, when set, is a second HTTP listener serving only /hooks/*
	// and /healthz; the main listener then serves no webhooks.
	Listen string `yaml:"listen"`
}

type apiConfig struct {
	TokenFile string `yaml:"token_file"`
	// ReadTokenFile holds the bearer token of GET /v1/* and /metrics
	// (token_file's token is accepted too); unset, they need none.
	ReadTokenFile string `yaml:"read_token_file"`
}

type notifyConfig struct {
	Slack    slackConfig         `yaml:"slack"`
	Webhooks []webhookSinkConfig `yaml:"webhooks"`
	// Chat are the services reached through shoutrrr (Discord, Teams,
	// Telegram, Matrix, SMTP, ntfy, Gotify, generic, …), one URL each.
	Chat []chatSinkConfig `yaml:"chat"`
	// QuietPeriod is how long a persisting drift alert stays quiet before
	// it is repeated (default 1h).
	QuietPeriod string `yaml:"quiet_period"`
	// FlapWindow: 3 incidents of one alert within it make it flap, and it
	// stops once healthy for as long (default 10m).
	FlapWindow string `yaml:"flap_window"`
	// StatusURL is fleetd's status page, linked from flapping messages
	// and from commit statuses.
	StatusURL string `yaml:"status_url"`
	// CommitStatus posts commit statuses to the forge (commitstatus.go).
	CommitStatus *commitStatusConfig `yaml:"commit_status"`
}

type slackConfig struct {
	WebhookURLFile string `yaml:"webhook_url_file"`
	TokenFile      string `yaml:"token_file"`
	Channel        string `yaml:"channel"`
	sinkFilter     `yaml:",inline"`
}

type webhookSinkConfig struct {
	URL        string `yaml:"url"`
	SecretFile string `yaml:"secret_file"`
	sinkFilter `yaml:",inline"`
}

// chatSinkConfig is one shoutrrr service: its URL holds tokens, so the
// file names a file that holds it.
type chatSinkConfig struct {
	URLFile    string `yaml:"url_file"`
	sinkFilter `yaml:",inline"`
}

// sinkFilter selects the events one sink receives.
type sinkFilter struct {
	Kinds       []string `yaml:"kinds"`        // event kinds; empty = all
	MinSeverity string   `yaml:"min_severity"` // info | warning | error; default info
	Fleets      []string `yaml:"fleets"`       // fleet names; empty = all (events of no fleet pass)
}

type reconcileConfig struct {
	Parallelism    int    `yaml:"parallelism"`
	Fleets         int    `yaml:"fleets"`
	Resync         string `yaml:"resync"`
	AllowMassPrune bool   `yaml:"allow_mass_prune"`
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// maxConfigSize bounds the configuration file.
const maxConfigSize = 1 << 20

// readConfig parses a configuration file strictly: an unknown key or a
// mistyped value is an error naming the file, line and key.
func readConfig(path string) (daemonConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return daemonConfig{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return daemonConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return daemonConfig{}, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigSize)
	}
	return decodeConfig(path, data)
}

// decodeConfig parses a configuration file's contents strictly.
func decodeConfig(path string, data []byte) (daemonConfig, error) {
	var cfg daemonConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return daemonConfig{}, explainConfig(path, data, err)
	}
	return cfg, nil
}

// overrideFromEnv applies the FLEETD_* environment variables, which win
// over the file (flags win over both).
func (c *daemonConfig) overrideFromEnv(getenv func(string) string) {
	set := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set(&c.Host.Name, "FLEETD_HOST_NAME")
	set(&c.Source.URL, "FLEETD_SOURCE_URL")
	set(&c.Source.Ref, "FLEETD_SOURCE_REF")
	set(&c.Source.Path, "FLEETD_SOURCE_PATH")
	set(&c.Source.Interval, "FLEETD_SOURCE_INTERVAL")
	set(&c.Listen, "FLEETD_LISTEN")
	set(&c.StateDir, "FLEETD_STATE_DIR")
	set(&c.Instance, "FLEETD_INSTANCE")
}

// applyDefaults fills what the file left out.
func (c *daemonConfig) applyDefaults() {
	if c.Source.Ref == "" {
		c.Source.Ref = "main"
	}
	if c.Source.Path == "" {
		c.Source.Path = "."
	}
	if c.Source.Interval == "" && c.Source.Schedule == "" {
		c.Source.Interval = "1m"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9750"
	}
	if c.Reconcile.Resync == "" {
		c.Reconcile.Resync = "5m"
	}
	if c.Reconcile.Fleets == 0 {
		c.Reconcile.Fleets = 4
	}
	if c.Reconcile.Parallelism == 0 {
		c.Reconcile.Parallelism = 4
	}
}

// validate checks every value and names the key at fault. It reads the
// secret files it names, so that --check catches a missing one.
func (c *daemonConfig) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Source.URL == "" {
		bad("source.url", "required")
	}
	if c.Source.Interval != "" && c.Source.Schedule != "" {
		bad("source.schedule", "set either source.interval or source.schedule, not both")
	}
	if c.Source.Interval != "" {
		if d, err := time.ParseDuration(c.Source.Interval); err != nil || d < time.Second {
			bad("source.interval", "%q is not a duration of at least 1s", c.Source.Interval)
		}
	}
	if c.Source.Schedule != "" {
		if _, err := parseCron(c.Source.Schedule); err != nil {
			bad("source.schedule", "%v", err)
		}
	}
	for i, w := range c.Source.Windows {
		if _, err := parseCron(w); err != nil {
			bad(fmt.Sprintf("source.windows[%d]", i), "%v", err)
		}
	}
	if d, err := time.ParseDuration(c.Reconcile.Resync); err != nil || d < 10*time.Second {
		bad("reconcile.resync", "%q is not a duration of at least 10s", c.Reconcile.Resync)
	}
	if c.Reconcile.Fleets < 1 {
		bad("reconcile.fleets", "must be at least 1")
	}
	if c.Reconcile.Parallelism < 1 {
		bad("reconcile.parallelism", "must be at least 1")
	}
	if _, err := c.ImageUpdates.interval(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Swarm.leaseParams(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Swarm.rolloutTimeout(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Policy.hostPolicy(); err != nil {
		errs = append(errs, err)
	}
	if c.Notify.QuietPeriod != "" {
		if _, err := time.ParseDuration(c.Notify.QuietPeriod); err != nil {
			bad("notify.quiet_period", "%q is not a duration", c.Notify.QuietPeriod)
		}
	}
	if c.Notify.FlapWindow != "" {
		if d, err := time.ParseDuration(c.Notify.FlapWindow); err != nil || d <= 0 {
			bad("notify.flap_window", "%q is not a positive duration", c.Notify.FlapWindow)
		}
	}
	if u := c.Notify.StatusURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("notify.status_url", "%q is not an http(s) URL", u)
	}
	if err := c.Notify.Slack.sinkFilter.check(); err != nil {
		bad("notify.slack", "%v", err)
	}
	for i, w := range c.Notify.Webhooks {
		if err := w.sinkFilter.check(); err != nil {
			bad(fmt.Sprintf("notify.webhooks[%d]", i), "%v", err)
		}
	}
	errs = append(errs, c.Notify.checkChat()...)
	errs = append(errs, c.Notify.CommitStatus.check(c.Source.URL)...)
	if c.Notify.Slack.TokenFile != "" && c.Notify.Slack.Channel == "" {
		bad("notify.slack.channel", "required with notify.slack.token_file")
	}
	for i, w := range c.Notify.Webhooks {
		if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
			bad(fmt.Sprintf("notify.webhooks[%d].url", i), "%q is not an http(s) URL", w.URL)
		}
	}
	if _, err := c.Source.Verify.trust(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Source.Limits.limits(); err != nil {
		errs = append(errs, err)
	}
	for key, path := range c.secretFiles() {
		if path == "" {
			continue
		}
		if _, err := readSecret(path); err != nil {
			bad(key, "%v", err)
		}
	}
	return errors.Join(errs...)
}

func (c *daemonConfig) secretFiles() map[string]string {
	files := map[string]string{
		"source.auth.token_file":              c.Source.Auth.TokenFile,
		"source.auth.password_file":           c.Source.Auth.PasswordFile,
		"source.auth.ssh_key_file":            c.Source.Auth.SSHKeyFile,
		"source.auth.ssh_key_passphrase_file": c.Source.Auth.SSHKeyPassphraseFile,
		"source.auth.known_hosts_file":        c.Source.Auth.KnownHostsFile,
		"webhook.secret_file":                 c.Webhook.SecretFile,
		"api.token_file":                      c.API.TokenFile,
		"api.read_token_file":                 c.API.ReadTokenFile,
		"notify.slack.webhook_url_file":       c.Notify.Slack.WebhookURLFile,
		"notify.slack.token_file":             c.Notify.Slack.TokenFile,
	}
	for i, w := range c.Notify.Webhooks {
		files[fmt.Sprintf("notify.webhooks[%d].secret_file", i)] = w.SecretFile
	}
	for i, ch := range c.Notify.Chat {
		files[fmt.Sprintf("notify.chat[%d].url_file", i)] = ch.URLFile
	}
	if cs := c.Notify.CommitStatus; cs != nil {
		files["notify.commit_status.token_file"] = cs.TokenFile
	}
	return files
}

// readSecret reads a secret from a file, trimming the trailing newline.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// parseCron parses a standard cron expression (5 fields, or a descriptor
// such as @hourly, optionally after CRON_TZ= or TZ=). robfig/cron panics
// on some malformed input ("CRON_TZ=" with nothing after it): that is an
// error here, never a crash.
func parseCron(spec string) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("invalid cron expression %q", spec)
		}
	}()
	sched, err = cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron expression %q: %w", spec, err)
	}
	return sched, nil
}
