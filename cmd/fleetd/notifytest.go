package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/notify"
)

// notifyTestTimeout bounds a test message, retries included.
const notifyTestTimeout = 30 * time.Second

func newNotifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "notify",
		Example: `  fleetd notify test --config /etc/fleetd/config.yaml`,
		Short:   "Notification sinks (Slack, webhooks)",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newNotifyTestCmd())
	return cmd
}

func newNotifyTestCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:     "test [--config FILE]",
		Example: `  fleetd notify test --config /etc/fleetd/config.yaml`,
		Short:   "Send a test message to every configured notification sink",
		Long: `test sends a test message to every sink under notify in the
configuration file (Slack, webhooks), bypassing filters and dedup, and prints
each one's result. It exits 1 if any sink failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := readConfig(configPath)
			if err != nil {
				return err
			}
			cfg.overrideFromEnv(os.Getenv)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelError}))
			opts, err := notifyOptions(cfg, log)
			if err != nil {
				return fmt.Errorf("config %s: %w", configPath, err)
			}
			if len(opts.Routes) == 0 {
				return errors.New("no notification sinks configured (notify.slack, notify.webhooks, notify.chat)")
			}
			host, err := agentHost(cfg.Host)
			if err != nil {
				return err
			}
			d := notify.New(opts)
			defer d.Close(context.Background())
			ctx, cancel := context.WithTimeout(cmd.Context(), notifyTestTimeout)
			defer cancel()
			failed := 0
			for _, r := range d.Test(ctx, host.Name) {
				if r.Err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "%s: error: %v\n", r.Sink, r.Err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", r.Sink)
			}
			if failed > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d of %d sinks failed", failed, len(opts.Routes))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "/etc/fleetd/config.yaml", "configuration file (YAML; see docs/operations.md)")
	return cmd
}
