package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/redact"
	"github.com/fleetd/fleetd/server"
	"github.com/fleetd/fleetd/ui"
)

// eventsKept is how many recent events the agent's dashboard shows.
const eventsKept = 500

// agentUI is the agent's own dashboard, at /ui/ on its status listener.
func agentUI(ag *agent.Agent, eng *engine.Docker, events *ui.EventLog, tokens ui.Tokens, sync func(string), log *slog.Logger) (*ui.Handler, error) {
	return ui.New(ui.Config{
		Backend: &ui.Local{Agent: ag, Observer: eng, RequestSync: sync, Log: events},
		Tokens:  tokens,
		Log:     log,
	})
}

// defaultDashboardAddr is where `fleetd dashboard` listens by default:
// loopback, as the agent.
const defaultDashboardAddr = "127.0.0.1:8090"

func newDashboardCmd() *cobra.Command {
	var listen, agentsFile, tokenFile string
	var agents []string
	var interval time.Duration
	cmd := &cobra.Command{
		Use: "dashboard --agents URL[,URL…] | --agents-file FILE",
		Example: `  fleetd dashboard --agents http://web-1:9750,http://web-2:9750 --token-file /etc/fleetd/api-token
  fleetd dashboard --agents-file agents.txt --listen 127.0.0.1:8090`,
		Short: "Serve one dashboard for several agents",
		Long: `dashboard serves the web dashboard (docs/dashboard.md) for several agents:
it reads each agent's /v1/status and its dashboard's event log every
--interval and pushes the changes to the open pages. A swarm fleet shows
once for its swarm; an agent that does not answer shows as unreachable,
with the time it was last seen.

--token-file holds the token sent to every agent (its API token, to sync
and resume from the dashboard, or its read token, to look only); it is
also the token the dashboard's own login takes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addrs, err := agentAddrs(agents, agentsFile)
			if err != nil {
				return err
			}
			if interval < time.Second {
				return usageError("--interval %s: want 1s or more", interval)
			}
			token, err := readSecret(tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			return runDashboard(cmd.Context(), listen, addrs, token, interval, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", defaultDashboardAddr, "HTTP listen address of the dashboard")
	cmd.Flags().StringSliceVar(&agents, "agents", nil, "the agents' status URLs (http://host:9750), comma-separated or repeated")
	cmd.Flags().StringVar(&agentsFile, "agents-file", "", "a file listing the agents' status URLs, one a line (# comments)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the agents' token (API or read token), also the dashboard's login")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "how often each agent is read")
	return cmd
}

// agentAddrs gathers and checks the agents' URLs of --agents and
// --agents-file.
func agentAddrs(flagged []string, file string) ([]string, error) {
	var addrs []string
	for _, a := range flagged {
		u, err := agentURL(a)
		if err != nil {
			return nil, usageError("--agents %s: %v", redact.New().String(a), err)
		}
		addrs = append(addrs, u)
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--agents-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			u, err := agentURL(line)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", file, n, redact.New().String(line), err)
			}
			addrs = append(addrs, u)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--agents-file %s: %w", file, err)
		}
	}
	if len(addrs) == 0 {
		return nil, usageError("dashboard needs --agents URL[,URL…] or --agents-file FILE")
	}
	return addrs, nil
}

// agentURL checks one agent's URL: http or https, a host, no path.
func agentURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want an http:// or https:// URL of the agent's listen address")
	}
	if u.User != nil {
		return "", errors.New("no credentials in the URL: use --token-file")
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", errors.New("want the agent's base URL, without a path")
	}
	return u.Scheme + "://" + u.Host, nil
}

// runDashboard serves the dashboard of the agents until ctx ends.
func runDashboard(ctx context.Context, listen string, addrs []string, token string, interval time.Duration, log *slog.Logger) error {
	remote := ui.NewRemote(addrs,
		func(ctx context.Context, addr, path string) ([]byte, error) {
			return server.Fetch(ctx, addr, path, token)
		},
		func(ctx context.Context, addr string) error { return server.TriggerSync(ctx, addr, token) })
	h, err := ui.New(ui.Config{Backend: remote, Tokens: ui.Tokens{API: token}, Title: "fleetd dashboard", Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(ui.Prefix, h)
	mux.Handle("GET /{$}", http.RedirectHandler(ui.Prefix, http.StatusSeeOther))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go remote.Run(ctx, interval)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("fleetd dashboard", "listen", ln.Addr().String(), "agents", len(addrs))
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	h.Close()
	sctx, cancel := context.WithTimeout(context.Background(), server.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}
