package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	registrytypes "github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/versions"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"
	"google.golang.org/grpc"

	"github.com/fleetd/fleetd/fleets"
)

// errNoSession: the engine has BuildKit, but the session it serves a
// build's secrets, SSH agents and registry credentials through could not
// be opened (a socket proxy that refuses the /session upgrade); the build
// falls back to the classic builder.
var errNoSession = errors.New("no BuildKit session")

// classicReason reads what the builder choice depends on (DOCKER_BUILDKIT,
// the engine's ping, the client's API version) and decides with
// chooseBuilder.
func (d *Docker) classicReason(ctx context.Context, b fleets.Build) (string, error) {
	env := os.Getenv("DOCKER_BUILDKIT")
	if on, err := strconv.ParseBool(env); env != "" && (err != nil || !on) {
		return chooseBuilder(env, types.Ping{}, "", b) // decided without asking the engine
	}
	ping, err := d.cli.Ping(ctx)
	if err != nil {
		return "", fmt.Errorf("ping: %w", err)
	}
	return chooseBuilder(env, ping, d.cli.ClientVersion(), b)
}

// chooseBuilder says why b is built with the classic builder, or "" when
// the engine has BuildKit for it. As the Docker CLI decides: DOCKER_BUILDKIT
// (env) when set; else BuildKit unless the daemon is a Windows one that does
// not advertise it, or its API predates the session (1.39). And a build
// that asks for what the engine's BuildKit cannot do but the classic
// builder can goes to the classic builder, rather than run otherwise or
// fail: shm_size before API 1.42 (Docker 23), a network other than
// default, host or none. It is pure.
func chooseBuilder(env string, ping types.Ping, clientAPI string, b fleets.Build) (string, error) {
	if env != "" {
		on, err := strconv.ParseBool(env)
		if err != nil {
			return "", fmt.Errorf("DOCKER_BUILDKIT=%s: want a boolean", env)
		}
		if !on {
			return "DOCKER_BUILDKIT=" + env, nil
		}
	}
	// The version requests will use: the engine's, or the client's own
	// when lower (DOCKER_API_VERSION); a ping does not negotiate it.
	api := cmp.Or(ping.APIVersion, "1.24")
	if clientAPI != "" && versions.LessThan(clientAPI, api) {
		api = clientAPI
	}
	switch {
	case versions.LessThan(api, "1.39"):
		return "the engine's API " + api + " predates BuildKit sessions (1.39)", nil
	case ping.BuilderVersion != build.BuilderBuildKit && ping.OSType == "windows":
		return "the Windows engine does not offer BuildKit", nil
	case b.ShmSize > 0 && versions.LessThan(api, "1.42"):
		return "build.shm_size: the engine's BuildKit (API " + api + ") ignores it before API 1.42", nil
	case !slices.Contains([]string{"", "default", "host", "none"}, b.Network):
		return "build.network: the engine's BuildKit builds on default, host or none, not " + b.Network, nil
	}
	return "", nil
}

// buildKit builds b with the engine's BuildKit as `docker build` does: a
// session, the /session endpoint hijacked, serves the builder registry
// credentials (from config.json, as PullImage finds them), b's secrets and
// SSH agents; the build request names it, carries the context tar as its
// body, and streams BuildKit's status back as moby.buildkit.trace aux
// messages. It returns errNoSession when the session cannot be opened.
func (d *Docker) buildKit(ctx context.Context, b fleets.Build, ref string, secrets map[string][]byte, logf func(string)) (string, error) {
	attachables := []session.Attachable{authProvider{configDir: d.dockerConfigDir}}
	if len(secrets) > 0 {
		attachables = append(attachables, secretsprovider.FromMap(secrets))
	}
	if len(b.SSH) > 0 {
		agents, err := sshAgents(b.SSH)
		if err != nil {
			return "", err
		}
		attachables = append(attachables, agents)
	}
	sess, err := d.openSession(ctx, sharedKey(b), attachables)
	if err != nil {
		return "", err
	}
	defer sess.close()

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarContext(pw, b.Context, cmp.Or(b.Dockerfile, "Dockerfile"))) }()
	defer pr.Close()
	opts := buildOptions(b, ref)
	opts.Version, opts.SessionID, opts.BuildID = build.BuilderBuildKit, sess.s.ID(), newBuildID()
	resp, err := d.cli.ImageBuild(ctx, pr, opts)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	// The engine goes on building when the request ends; cancel it.
	defer context.AfterFunc(ctx, func() { d.cancelBuild(opts.BuildID) })()
	return d.builtImage(ctx, resp.Body, ref, logf)
}

func (d *Docker) cancelBuild(buildID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.cli.BuildCancel(ctx, buildID); err != nil {
		d.log.Warn("cancel build", "build", buildID, "err", err)
	}
}

func newBuildID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on supported platforms
	return "fleetd-" + hex.EncodeToString(b)
}

// sharedKey names what the engine may keep between sessions of the same
// build (the CLI hashes its context directory with a node ID): fleetd's
// context directory in the repository.
func sharedKey(b fleets.Build) string {
	sum := sha256.Sum256([]byte("fleetd:" + b.ContextDir))
	return hex.EncodeToString(sum[:])
}

// buildSession is an open session; close ends it.
type buildSession struct {
	s    *session.Session
	done chan error // Run's result
}

// openSession runs a session over a hijacked /session connection and
// returns once the connection is up, or errNoSession when it cannot be.
func (d *Docker) openSession(ctx context.Context, key string, attachables []session.Attachable) (*buildSession, error) {
	s, err := session.NewSession(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoSession, err)
	}
	for _, a := range attachables {
		s.Allow(a)
	}
	dialed := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			conn, err := d.cli.DialHijack(ctx, "/session", proto, meta)
			dialed <- err
			return conn, err
		})
	}()
	select {
	case err := <-dialed:
		if err != nil {
			<-done
			return nil, fmt.Errorf("%w: %w", errNoSession, err)
		}
	case err := <-done:
		return nil, fmt.Errorf("%w: %w", errNoSession, cmp.Or(err, errors.New("session ended before it was opened")))
	}
	return &buildSession{s: s, done: done}, nil
}

func (bs *buildSession) close() {
	_ = bs.s.Close() // always nil
	<-bs.done
}

// authProvider answers the builder's questions for registry credentials
// (a FROM or cache_from image on a private registry) from config.json, as
// PullImage finds them. Token fetching stays with the engine: the other
// methods answer Unimplemented, which the engine takes for "ask for
// credentials".
type authProvider struct {
	auth.UnimplementedAuthServer
	configDir string
}

func (p authProvider) Register(s *grpc.Server) { auth.RegisterAuthServer(s, p) }

func (p authProvider) Credentials(_ context.Context, req *auth.CredentialsRequest) (*auth.CredentialsResponse, error) {
	encoded, err := registryAuth(p.configDir, req.Host)
	if err != nil || encoded == "" {
		return &auth.CredentialsResponse{}, err
	}
	ac, err := registrytypes.DecodeAuthConfig(encoded)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", req.Host, err)
	}
	if ac.IdentityToken != "" {
		return &auth.CredentialsResponse{Secret: ac.IdentityToken}, nil
	}
	return &auth.CredentialsResponse{Username: ac.Username, Secret: ac.Password}, nil
}

// sshAgents serves b's SSH agents: an agent socket or key files named by
// path, or the agent at fleetd's $SSH_AUTH_SOCK.
func sshAgents(keys []fleets.BuildSSH) (session.Attachable, error) {
	configs := make([]sshprovider.AgentConfig, len(keys))
	for i, k := range keys {
		configs[i] = sshprovider.AgentConfig{ID: k.ID}
		if k.Path != "" {
			configs[i].Paths = []string{k.Path}
		}
	}
	agents, err := sshprovider.NewSSHAgentProvider(configs)
	if err != nil {
		return nil, fmt.Errorf("build.ssh: %w", err)
	}
	return agents, nil
}

// readBuildSecrets reads b's secrets (a file in the fleet's tree, or the
// contents held since the load) by ID, and checks each against the digest
// the build's hash was computed with.
func readBuildSecrets(b fleets.Build) (map[string][]byte, error) {
	if len(b.Secrets) == 0 {
		return nil, nil
	}
	out := make(map[string][]byte, len(b.Secrets))
	for _, s := range b.Secrets {
		data := []byte(s.Content)
		if s.Source != "" {
			var err error
			if data, err = os.ReadFile(s.Source); err != nil {
				return nil, fmt.Errorf("build.secrets %s: %w", s.ID, err)
			}
		}
		sum := sha256.Sum256(data)
		if "sha256:"+hex.EncodeToString(sum[:]) != s.Digest {
			return nil, fmt.Errorf("build.secrets %s: secret %s changed since the fleet was loaded", s.ID, s.Name)
		}
		out[s.ID] = data
	}
	return out, nil
}
