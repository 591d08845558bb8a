package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/engine"
	eingress "github.com/fleetd/fleetd/engine/ingress"
	"github.com/fleetd/fleetd/ingress/proxy"
)

// newRouter is the host's ingress, kept under the agent's state directory
// dir; its container's access log is on with accessLog.
func newRouter(eng *engine.Docker, dir string, accessLog bool, log *slog.Logger) *eingress.Router {
	return eingress.New(eng.Client(), eingress.Options{Instance: instanceName(), StateDir: dir, AccessLog: accessLog, Log: log.With("component", "ingress")})
}

// newIngressCmd is the ingress itself: what the ingress container runs
// (the agent builds its image from this binary and starts it; people do
// not run it by hand). It serves the last routing table it was given,
// takes new ones on its control socket, and stops gracefully on SIGTERM.
func newIngressCmd() *cobra.Command {
	var stateDir string
	var accessLog bool
	cmd := &cobra.Command{
		Use: "ingress",
		Example: `  # run by the agent inside the fleetd-ingress container:
  fleetd ingress --state /state --access-log`,
		Short: "Run fleetd's ingress (started by the agent in its own container)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				return errors.New("ingress: --state is required")
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "ingress")
			srv, err := proxy.New(proxy.Options{StateDir: stateDir, Log: log, AccessLog: accessLog})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			log.Info("ingress serving", "version", versionString(), "table", srv.Table().Version)
			if err := srv.Serve(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state", "", "directory of the last routing table and the control socket")
	cmd.Flags().BoolVar(&accessLog, "access-log", false, "log one line per request and connection")
	return cmd
}
