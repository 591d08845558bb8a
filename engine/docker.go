package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

var _ reconcile.Engine = (*Docker)(nil)

// Docker is a reconcile.Engine backed by a Docker daemon. It is safe for
// concurrent use.
type Docker struct {
	cli   *client.Client
	calls *callCounter
	log   *slog.Logger
	// dockerConfigDir holds config.json with registry credentials.
	dockerConfigDir string
	// instance names this agent; see WithInstance.
	instance string
	// secretsDir is where decrypted files are written; see WithSecretsDir.
	secretsDir string
	// hub is the one container events subscription the waits share.
	hub *hub
}

type config struct {
	host            string
	pingTimeout     time.Duration
	instance        string
	log             *slog.Logger
	dockerConfigDir string
	secretsDir      string
}

// Option configures New.
type Option func(*config)

// WithSecretsDir sets where decrypted files are written, one directory
// per container, bind-mounted read-only (default DefaultSecretsDir). It
// must be on a tmpfs (or ramfs) of the daemon's host; a create that needs
// it refuses otherwise.
func WithSecretsDir(dir string) Option {
	return func(c *config) {
		if dir != "" {
			c.secretsDir = filepath.Clean(dir)
		}
	}
}

// WithPingTimeout bounds the Ping New makes (default 5s); 0 makes New not
// ping at all (the agent starts with the engine down and waits for it).
func WithPingTimeout(d time.Duration) Option {
	return func(c *config) { c.pingTimeout = d }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// WithHost sets the daemon address ("unix:///run/docker.sock",
// "tcp://host:2376"), overriding DOCKER_HOST for this engine only; the
// process environment is not touched.
func WithHost(host string) Option {
	return func(c *config) { c.host = host }
}

// WithInstance names the fleetd agent (default fleets.DefaultInstance). The
// engine labels what it creates with it and treats managed objects of other
// instances as unmanaged: it never changes them, and Observe reports them
// without fleetd's labels.
func WithInstance(name string) Option {
	return func(c *config) { c.instance = name }
}

// WithDockerConfigDir sets the directory holding config.json with registry
// credentials (default $DOCKER_CONFIG, else ~/.docker).
func WithDockerConfigDir(dir string) Option {
	return func(c *config) { c.dockerConfigDir = dir }
}

// New connects to the daemon the environment names (DOCKER_HOST, unless
// WithHost names another; DOCKER_CERT_PATH, DOCKER_TLS_VERIFY,
// DOCKER_API_VERSION), negotiates the API version and pings it. Its error
// is one line naming the daemon address and the cause, and wraps
// ErrUnreachable when the daemon cannot be reached.
func New(ctx context.Context, opts ...Option) (*Docker, error) {
	cfg := config{pingTimeout: 5 * time.Second, log: slog.Default(), dockerConfigDir: defaultDockerConfigDir(), instance: fleets.DefaultInstance, secretsDir: DefaultSecretsDir}
	for _, o := range opts {
		o(&cfg)
	}
	calls := newCallCounter()
	cli, err := newClient(calls, cfg.host)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	d := &Docker{cli: cli, calls: calls, log: cfg.log, dockerConfigDir: cfg.dockerConfigDir, instance: cfg.instance, secretsDir: cfg.secretsDir}
	d.hub = newHub(cli, d.isManaged, cfg.log)
	if cfg.pingTimeout == 0 {
		return d, nil
	}
	if err := d.ping(ctx, cfg.pingTimeout); err != nil {
		cli.Close()
		return nil, err
	}
	return d, nil
}

// newClient builds the SDK client on an http.Client we own so that its
// transport can be wrapped for call counting. It applies what client.FromEnv
// does, but in place: FromEnv replaces the http.Client when DOCKER_CERT_PATH
// is set, which would drop our wrapper. A host other than "" wins over
// DOCKER_HOST.
func newClient(calls *callCounter, host string) (*client.Client, error) {
	tr := &http.Transport{MaxIdleConns: 6, IdleConnTimeout: 30 * time.Second}
	hc := &http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}
	opts := []client.Opt{client.WithHTTPClient(hc), client.WithHost(client.DefaultDockerHost)}
	if dir := os.Getenv(client.EnvOverrideCertPath); dir != "" {
		opts = append(opts, client.WithTLSClientConfig(
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	}
	opts = append(opts, client.WithHostFromEnv(), client.WithVersionFromEnv(), client.WithAPIVersionNegotiation())
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, err
	}
	if tr.TLSClientConfig != nil && os.Getenv(client.EnvTLSVerify) == "" {
		tr.TLSClientConfig.InsecureSkipVerify = true // as client.FromEnv does
	}
	// NewClientWithOpts wrapped hc.Transport for tracing; count outside it.
	hc.Transport = &countingTransport{next: hc.Transport, calls: calls}
	return cli, nil
}

func (d *Docker) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := d.cli.Ping(ctx)
	if err == nil {
		return nil
	}
	cause := d.calls.lastError()
	if cause == nil {
		cause = err
	}
	return &DaemonError{Host: d.cli.DaemonHost(), Reason: pingReason(ctx, cause), Err: cause}
}

func pingReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		return "permission denied on the socket (is this user in the docker group?)"
	case errors.Is(err, syscall.ENOENT):
		return "not reachable (no such socket)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "not reachable (connection refused)"
	case ctx.Err() != nil:
		return "not reachable (no answer to ping)"
	default:
		return "not reachable"
	}
}

// Close releases the client's idle connections.
func (d *Docker) Close() error {
	d.hub.close()
	if err := d.cli.Close(); err != nil {
		return fmt.Errorf("close docker client: %w", err)
	}
	return nil
}

// DaemonHost is the address of the daemon, as in DOCKER_HOST.
func (d *Docker) DaemonHost() string { return d.cli.DaemonHost() }

// APIVersion is the negotiated API version.
func (d *Docker) APIVersion() string { return d.cli.ClientVersion() }

// apiAtLeast reports whether the negotiated API version is at least v.
func (d *Docker) apiAtLeast(v string) bool {
	return versions.GreaterThanOrEqualTo(d.cli.ClientVersion(), v)
}

// isManaged reports whether an object is this adapter's own: managed by
// fleetd, of this agent's instance, and of no other engine. The objects
// of swarm fleets (overlay networks, node-local volumes) are the swarm
// engine's, and the ingress container is the ingress adapter's
// (io.fleetd.engine=ingress): to the fleets' reconcile they are as
// untouchable as a stranger's.
func (d *Docker) isManaged(labels map[string]string) bool {
	return fleets.OwnedBy(labels, d.instance) && labels[fleets.LabelEngine] == ""
}

// Client is the SDK client, its calls counted with this adapter's, for
// adapters of the same engine (engine/swarm).
func (d *Docker) Client() *client.Client { return d.cli }

// DefaultDockerConfigDir is where the Docker CLI keeps config.json:
// $DOCKER_CONFIG, else ~/.docker.
func DefaultDockerConfigDir() string { return defaultDockerConfigDir() }

func defaultDockerConfigDir() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Ping reports whether the daemon answers (for readiness probes).
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker daemon at %s: %w", d.cli.DaemonHost(), err)
	}
	return nil
}

// MaxAPIVersion is the newest Docker Engine API version this build
// speaks; the version used is negotiated with each engine.
func MaxAPIVersion() string { return api.DefaultVersion }
