package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine"
	eingress "github.com/fleetd/fleetd/engine/ingress"
	"github.com/fleetd/fleetd/engine/swarm"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
	"github.com/fleetd/fleetd/server"
	"github.com/fleetd/fleetd/source"
	"github.com/fleetd/fleetd/ui"
)

func newRunCmd() *cobra.Command {
	var configPath string
	var check bool
	var listen, stateDir, url, ref, path string
	cmd := &cobra.Command{
		Use: "run --config FILE",
		Example: `  fleetd run --config /etc/fleetd/config.yaml
  fleetd run --config /etc/fleetd/config.yaml --check   # validate the configuration and exit`,
		Short: "Run the agent: follow the Git repository and keep this host converged",
		Long: `run starts the fleetd agent. It follows the repository in the
configuration file (poll interval or cron schedule, webhooks, manual syncs),
watches Docker for changes to managed containers, and converges the host,
serving /healthz, /readyz, /metrics, /v1/status, /v1/sync, the webhook
endpoints and the web dashboard at /ui/ (docs/dashboard.md). Flags override FLEETD_* environment variables, which override the
file. With --check it validates the configuration and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return usageError("run needs --config FILE")
			}
			cfg, err := readConfig(configPath)
			if err != nil {
				return err
			}
			cfg.overrideFromEnv(os.Getenv)
			overrideFlag(&cfg.Listen, listen)
			overrideFlag(&cfg.StateDir, stateDir)
			overrideFlag(&cfg.Source.URL, url)
			overrideFlag(&cfg.Source.Ref, ref)
			overrideFlag(&cfg.Source.Path, path)
			cfg.applyDefaults()
			if err := cfg.validate(); err != nil {
				return fmt.Errorf("config %s:\n%w", configPath, err)
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "config %s is valid\n", configPath)
				return nil
			}
			return runAgent(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "configuration file (YAML; see docs/operations.md)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit")
	cmd.Flags().StringVar(&listen, "listen", "", "HTTP listen address (overrides listen)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "state directory (overrides state_dir)")
	cmd.Flags().StringVar(&url, "source-url", "", "repository URL (overrides source.url)")
	cmd.Flags().StringVar(&ref, "ref", "", "branch, tag or commit to follow (overrides source.ref)")
	cmd.Flags().StringVar(&path, "path", "", "directory of the fleets in the repository (overrides source.path)")
	return cmd
}

func overrideFlag(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// checkoutsKept is how many revisions' trees stay on disk: the last good
// revision's build contexts, secrets and bind sources must outlive a few
// invalid commits after it.
const checkoutsKept = 10

// runAgent wires the adapters to the agent and runs until ctx ends.
func runAgent(ctx context.Context, cfg daemonConfig) error {
	log, logSecrets := newLogger(os.Stderr, cfg.Log)
	if cfg.Instance != "" {
		instanceFlag = cfg.Instance
	}
	if cfg.StateDir != "" {
		stateDirFlag = cfg.StateDir
	}
	dir, err := stateDir()
	if err != nil {
		return err
	}
	if err := privateStateDir(dir); err != nil {
		return err
	}
	host, err := agentHost(cfg.Host)
	if err != nil {
		return err
	}
	// The agent outlives the engine: it starts, and waits, with the engine
	// down (reporting it), rather than failing.
	eng, err := engine.New(ctx, engine.WithInstance(instanceName()), engine.WithLogger(log), engine.WithPingTimeout(0),
		engine.WithSecretsDir(cfg.SecretsDir))
	if err != nil {
		return err
	}
	defer eng.Close()
	if err := eng.PruneSecretDirs(ctx); err != nil {
		log.Warn("prune decrypted secrets left by removed containers", "err", err) // the engine may be down yet
	}
	auth, err := sourceAuth(cfg.Source.Auth)
	if err != nil {
		return err
	}
	trust, err := cfg.Source.Verify.trust()
	if err != nil {
		return err
	}
	limits, err := cfg.Source.Limits.limits()
	if err != nil {
		return err
	}
	repo, err := source.Open(ctx, source.Config{URL: cfg.Source.URL, Ref: cfg.Source.Ref, Path: cfg.Source.Path, Dir: filepath.Join(dir, "repo"), Auth: auth, Keep: checkoutsKept,
		Trust: trust, AllowRewind: cfg.Source.AllowRewind,
		Limits: limits, Warn: func(commit, w string) { log.Warn("checkout: "+w, "rev", reconcile.ShortHash(commit)) }})
	if err != nil {
		return err
	}
	metrics := server.NewMetrics()
	b := buildOf()
	metrics.SetBuildInfo(b.Version, b.Revision, b.GoVersion)
	agentCfg, err := agentConfig(cfg, host, log)
	if err != nil {
		return err
	}
	agentCfg.Load = learnSecrets(agentCfg.Load, logSecrets)
	agentCfg.Watch, agentCfg.Ping = engineWatch(eng), eng.Ping
	agentCfg.CheckImages = checkImages(eng)
	router := newRouter(eng, dir, cfg.Ingress.AccessLog, log)
	agentCfg.Router = router
	metrics.Extra = router.Gatherer()
	notifier, err := newNotifier(cfg, log, metrics)
	if err != nil {
		return err
	}
	defer notifier.Close()
	statuses, err := newStatuses(cfg, log, metrics)
	if err != nil {
		return err
	}
	if statuses != nil {
		agentCfg.Statuses = statuses
		defer statuses.Close()
	}
	campaign, err := swarmRunner(cfg.Swarm, eng, host, &agentCfg)
	if err != nil {
		return err
	}
	events := ui.NewEventLog(eventsKept, notifier, logSecrets.Redactor)
	ag := agent.New(agentCfg, eng, gitSource{repo}, events, metrics, fileStore{})
	campaignDone := make(chan struct{})
	if campaign != nil {
		campaign.OnChange = func(leading bool) {
			log.Info("swarm lease", "leading", leading, "holder", campaign.Holder())
			ag.LeadershipChanged(leading)
		}
		go func() { campaign.Run(ctx); close(campaignDone) }()
		// On the way out, let the campaign release the lease (its write
		// is bounded by a retry period), so another agent takes over at
		// once rather than after the lease's duration.
		defer func() { <-campaignDone }()
	}
	srv, err := newServer(cfg, ag, eng, router, metrics, events, log)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe(ctx) }()
	keepDone := make(chan struct{})
	go func() { router.Keep(ctx, ingressKeepPeriod); close(keepDone) }()
	defer func() { <-keepDone }()
	log.Info("fleetd started", "version", versionString(), "host", host.Name, "instance", instanceName(), "listen", cfg.Listen, "webhook_listen", cfg.Webhook.Listen, "source", redactURL(cfg.Source.URL))
	runErr := ag.Run(ctx)
	if err := <-errc; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// ingressKeepPeriod is how often the agent heals the ingress when no
// apply does (3 Docker API requests while an ingress runs, none without).
const ingressKeepPeriod = 30 * time.Second

// swarmRunner wires swarm fleets when the configuration enables them: the
// runner on the local engine (a manager), acting only while this agent's
// campaign holds the swarm's lease. It returns the campaign to run.
func swarmRunner(c swarmConfig, eng *engine.Docker, host fleets.Host, ac *agent.Config) (*swarm.Campaign, error) {
	if !c.Enabled {
		return nil, nil
	}
	params, err := c.leaseParams()
	if err != nil {
		return nil, err
	}
	timeout, err := c.rolloutTimeout()
	if err != nil {
		return nil, err
	}
	d := swarm.New(eng.Client(), instanceName())
	// The holder's name says which host acts; the suffix keeps two agents
	// apart even when they share a host name (a copied configuration).
	campaign := swarm.NewCampaign(d.Lease(), host.Name+"-"+randomSuffix(), params, time.Now)
	runner := swarm.NewRunner(d, campaign, timeout)
	runner.NoResolve = c.ResolveImages != nil && !*c.ResolveImages
	runner.AllowMassPrune = ac.AllowMassPrune
	ac.Swarm = runner
	return campaign, nil
}

func agentHost(h hostConfig) (fleets.Host, error) {
	name := h.Name
	if name == "" {
		n, err := os.Hostname()
		if err != nil {
			return fleets.Host{}, fmt.Errorf("hostname: %w", err)
		}
		name = n
	}
	return fleets.Host{Name: name, Labels: h.Labels}, nil
}

// agentConfig turns the file's schedule, windows and reconcile settings into
// the agent's.
func agentConfig(cfg daemonConfig, host fleets.Host, log *slog.Logger) (agent.Config, error) {
	poll, err := pollFunc(cfg.Source)
	if err != nil {
		return agent.Config{}, err
	}
	inWindow, err := windowFunc(cfg.Source.Windows)
	if err != nil {
		return agent.Config{}, err
	}
	resync, _ := time.ParseDuration(cfg.Reconcile.Resync) // validated
	imageCheck, err := cfg.ImageUpdates.interval()
	if err != nil {
		return agent.Config{}, err
	}
	policy, err := cfg.Policy.hostPolicy()
	if err != nil {
		return agent.Config{}, err
	}
	return agent.Config{
		Rules: agent.Rules{
			Host: host.Name, Version: versionString(), Parallel: cfg.Reconcile.Fleets,
			Poll: poll, InWindow: inWindow, Resync: resync, Seed: seedOf(host.Name), ImageCheck: imageCheck,
		},
		Load: func(ctx context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
			opts := append(rootName(cfg.Source.Path, source.RepoName(cfg.Source.URL)), fleets.Checkout(rev.Root), fleets.Enforce(policy))
			return fleets.Load(ctx, rev.Dir, host, opts...)
		},
		Parallelism: cfg.Reconcile.Parallelism, AllowMassPrune: cfg.Reconcile.AllowMassPrune,
		Log: log,
	}, nil
}

// seedOf spreads the jitter of hosts that share a configuration: the
// host's name and the start time.
func seedOf(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64() ^ uint64(time.Now().UnixNano())
}

// rootName names a fleet whose compose files sit in the fleets directory
// itself. When that directory is the repository's root (path "."), the
// fleet is named after the repository, not after the directory a commit is
// checked out into, which changes with every commit; otherwise after the
// fleets directory, as Compose would.
func rootName(fleetsPath, repo string) []fleets.Option {
	if path.Clean(fleetsPath) != "." || repo == "" {
		return nil
	}
	return []fleets.Option{fleets.RootName(repo)}
}

// pollFunc is the source schedule: a jittered interval, or a cron
// expression.
func pollFunc(s sourceConfig) (func(time.Time) time.Time, error) {
	if s.Schedule != "" {
		sched, err := parseCron(s.Schedule)
		if err != nil {
			return nil, fmt.Errorf("source.schedule: %w", err)
		}
		return sched.Next, nil
	}
	every, err := time.ParseDuration(s.Interval)
	if err != nil {
		return nil, fmt.Errorf("source.interval: %w", err)
	}
	return func(last time.Time) time.Time { return last.Add(jittered(every, last)) }, nil
}

// jittered spreads an interval by up to ±10%, drawn from the time it
// starts at, so that the schedule is a pure function of that time.
func jittered(d time.Duration, from time.Time) time.Duration {
	return d - d/10 + time.Duration(from.UnixNano()%int64(d/5+1))
}

// windowFunc reports whether a time falls in a sync window: a minute that
// one of the cron expressions matches. No windows means always.
func windowFunc(windows []string) (func(time.Time) bool, error) {
	if len(windows) == 0 {
		return nil, nil
	}
	var scheds []cron.Schedule
	for i, w := range windows {
		s, err := parseCron(w)
		if err != nil {
			return nil, fmt.Errorf("source.windows[%d]: %w", i, err)
		}
		scheds = append(scheds, s)
	}
	return func(t time.Time) bool {
		minute := t.Truncate(time.Minute)
		for _, s := range scheds {
			if s.Next(minute.Add(-time.Second)).Equal(minute) {
				return true
			}
		}
		return false
	}, nil
}

func sourceAuth(a authConfig) (source.Auth, error) {
	var out source.Auth
	var err error
	read := func(dst *string, path string) {
		if err == nil && path != "" {
			*dst, err = readSecret(path)
		}
	}
	read(&out.Token, a.TokenFile)
	read(&out.Password, a.PasswordFile)
	read(&out.SSHKeyPassphrase, a.SSHKeyPassphraseFile)
	out.Username, out.SSHKeyFile, out.KnownHostsFile = a.Username, a.SSHKeyFile, a.KnownHostsFile
	if err != nil {
		return source.Auth{}, fmt.Errorf("source.auth: %w", err)
	}
	return out, nil
}

// gitSource adapts source.Repo to the agent's Source.
type gitSource struct{ repo *source.Repo }

func (g gitSource) Sync(ctx context.Context) (reconcile.Revision, bool, error) {
	rev, changed, err := g.repo.Sync(ctx)
	if err != nil {
		return reconcile.Revision{}, false, refusedForAgent(err)
	}
	return toRevision(rev), changed, nil
}

func (g gitSource) Checkout(ctx context.Context, commit string) (reconcile.Revision, error) {
	rev, err := g.repo.Checkout(ctx, commit)
	if err != nil {
		return reconcile.Revision{}, err
	}
	return toRevision(rev), nil
}

func toRevision(rev source.Revision) reconcile.Revision {
	return reconcile.Revision{Commit: rev.Commit, Subject: rev.Subject, Author: rev.Author, Time: rev.Time, Dir: rev.Dir, Root: rev.Root}
}

// engineWatch adapts the engine's event stream to the agent's.
func engineWatch(eng *engine.Docker) agent.EngineWatch {
	return func(ctx context.Context) (<-chan agent.EngineEvent, <-chan error) {
		events, errs := eng.Events(ctx)
		out := make(chan agent.EngineEvent)
		go func() {
			defer close(out)
			for e := range events {
				ev := agent.EngineEvent{Type: e.Type, Action: e.Action, Name: e.Name, Fleet: e.Fleet}
				if e.Action == "rename" {
					ev.OldName = e.Detail
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
		return out, errs
	}
}

// fileStore persists the agent's state in the state directory.
type fileStore struct{}

func (fileStore) Load() (agent.Persisted, error) { return loadAgentState() }
func (fileStore) Save(s agent.Persisted) error   { return saveAgentState(s) }

// newLogger builds the daemon's logger. Every line passes redact (URL
// passwords, values of secret-looking keys and flags, and the known secret
// values of every revision loaded so far, which the returned Live learns
// through learnSecrets): a value that reaches a log from an engine error
// is masked.
func newLogger(w io.Writer, c logConfig) (*slog.Logger, *redact.Live) {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	live := &redact.Live{}
	if c.Format == "json" {
		return slog.New(redact.LiveHandler(slog.NewJSONHandler(w, opts), live)), live
	}
	return slog.New(redact.LiveHandler(slog.NewTextHandler(w, opts), live)), live
}

// learnSecrets wraps the agent's Load: the fleets of each revision teach
// the logger their known secret values before the agent acts on them (and
// logs what the engine says about them). Fleets that load along with
// problems count too.
func learnSecrets(load func(context.Context, reconcile.Revision) ([]fleets.Fleet, error), live *redact.Live) func(context.Context, reconcile.Revision) ([]fleets.Fleet, error) {
	return func(ctx context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
		desired, err := load(ctx, rev)
		live.Learn(fleets.SecretValuesOf(desired)...)
		return desired, err
	}
}

// readyFunc is /readyz: the source synced once and the engine answers.
func readyFunc(ag *agent.Agent, eng *engine.Docker) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := ag.Ready(); err != nil {
			return err
		}
		return eng.Ping(ctx)
	}
}

// newServer builds the HTTP API around the agent.
func newServer(cfg daemonConfig, ag *agent.Agent, eng *engine.Docker, router *eingress.Router, metrics *server.Metrics, events *ui.EventLog, log *slog.Logger) (*server.Server, error) {
	apiToken, err := readSecret(cfg.API.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("api.token_file: %w", err)
	}
	readToken, err := readSecret(cfg.API.ReadTokenFile)
	if err != nil {
		return nil, fmt.Errorf("api.read_token_file: %w", err)
	}
	hookSecret, err := readSecret(cfg.Webhook.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook.secret_file: %w", err)
	}
	branch := cfg.Source.Ref
	if isCommitish(branch) {
		branch = "" // a pinned commit follows no branch: any push may unpin nothing, but a sync is harmless
	}
	scfg := server.Config{
		Addr: cfg.Listen, WebhookAddr: cfg.Webhook.Listen,
		APIToken: apiToken, ReadToken: readToken, WebhookSecret: hookSecret, Branch: branch,
		Ready: readyFunc(ag, eng),
		Status: func() any {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return statusDoc{Status: ag.Status(), Ingress: router.Status(ctx)}
		},
		Sync: func(reason string) {
			if strings.HasPrefix(reason, "webhook") {
				ag.RequestFetch()
				return
			}
			ag.RequestSync()
		},
		Logger: log,
	}
	if scfg.UI, err = agentUI(ag, eng, events, ui.Tokens{Read: readToken, API: apiToken}, scfg.Sync, log); err != nil {
		return nil, err
	}
	for _, w := range scfg.Warnings() {
		log.Warn(w)
	}
	return server.New(scfg, metrics), nil
}

func isCommitish(ref string) bool {
	if len(ref) != 40 {
		return false
	}
	for _, c := range ref {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// redactURL hides the password or token a URL may carry, for the log.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}

// randomSuffix is 6 random hex digits.
func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
