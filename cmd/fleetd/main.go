// Command fleetd is the GitOps reconciliation agent for Docker hosts. This
// package only parses flags and wires components together; the deciding
// lives in fleets, drift and reconcile.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
)

// Exit codes shared by every command, as terraform's: 0 success (or
// nothing to change), 1 any error (invalid input and usage errors
// included), 2 changes or drift present (diff, plan).
const (
	exitOK      = 0
	exitFailure = 1
	exitChanges = 2
)

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks bad flags or arguments (exit 1, like any error: 2
// means changes present).
func usageError(format string, args ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "fleetd:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "fleetd:", err)
	return exitFailure
}

// instanceFlag is the --instance flag; see instanceName.
var instanceFlag string

// instanceName names this agent: --instance, else $FLEETD_INSTANCE, else
// fleets.DefaultInstance. Two agents on one host (two repositories, or test
// runs) each see only their own objects.
func instanceName() string {
	if instanceFlag != "" {
		return instanceFlag
	}
	if env := os.Getenv("FLEETD_INSTANCE"); env != "" {
		return env
	}
	return fleets.DefaultInstance
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fleetd",
		Short:         "GitOps reconciliation for Docker hosts, from Compose files in Git",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&instanceFlag, "instance", "", "name of this fleetd agent on the host (default $FLEETD_INSTANCE or \"default\"); objects of other instances are never touched")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError("%w", err)
	})
	root.AddCommand(newVersionCmd(), newValidateCmd(), newDiffCmd(), newPlanCmd(), newApplyCmd(), newRunCmd(), newStatusCmd(), newSyncCmd(), newNotifyCmd(), newIngressCmd(), newDashboardCmd())
	registerCompletions(root)
	return root
}
