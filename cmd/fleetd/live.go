package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/swarm"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// liveFlags are the flags of the commands that compare a repository
// directory with the local engine: diff, plan --live and apply.
type liveFlags struct {
	hostFlags
	repo   string
	format string
	fleets []string
}

func (l *liveFlags) register(cmd *cobra.Command) {
	l.hostFlags.register(cmd)
	cmd.Flags().StringVar(&l.repo, "repo", ".", "directory holding the fleets (a checkout of the fleet repository's path)")
	cmd.Flags().StringVar(&l.format, "format", "text", "output format: text or json")
	cmd.Flags().StringArrayVar(&l.fleets, "fleet", nil, "act on this docker fleet only (repeat for more); the other fleets and the swarm are left as they are")
}

// scope checks the --fleet names against the fleets loaded: each must be a
// docker fleet of the repository. It returns nil when --fleet is not given.
func (l *liveFlags) scope(desired []fleets.Fleet) ([]string, error) {
	var known []string
	for _, name := range l.fleets {
		i := slices.IndexFunc(desired, func(f fleets.Fleet) bool { return f.Name == name })
		switch {
		case i < 0:
			if known == nil {
				for _, f := range desired {
					known = append(known, f.Name)
				}
			}
			return nil, usageError("--fleet %s: no such fleet in %s (fleets: %s)", name, l.repo, strings.Join(known, ", "))
		case desired[i].Engine == fleets.EngineSwarm:
			return nil, usageError("--fleet %s: a swarm fleet; swarm fleets are planned and applied together, through the swarm", name)
		}
	}
	return l.fleets, nil
}

func (l *liveFlags) checkFormat() error {
	if l.format != "text" && l.format != "json" {
		return usageError("--format %q: want text or json", l.format)
	}
	return nil
}

// liveState is the desired state of this host and one observation of it.
type liveState struct {
	scope    []string // --fleet: the docker fleets acted on; nil for all, and the swarm
	host     fleets.Host
	repoDir  string
	checkout string // the Git working tree repoDir is in, or repoDir
	desired  []fleets.Fleet
	observed drift.Observed
	engine   *engine.Docker
}

// loadLive loads the fleets for the host and connects to the engine. A
// repository with any invalid fleet is refused as a whole: an invalid fleet
// would otherwise look absent, and its containers like orphans. The caller
// closes the returned engine.
func loadLive(ctx context.Context, l *liveFlags) (*liveState, error) {
	host, err := l.host()
	if err != nil {
		return nil, err
	}
	repoDir, err := filepath.Abs(l.repo)
	if err != nil {
		return nil, fmt.Errorf("--repo %s: %w", l.repo, err)
	}
	checkout := fleets.FindCheckout(repoDir)
	opts, err := l.policyOptions(true)
	if err != nil {
		return nil, err
	}
	desired, err := fleets.Load(ctx, repoDir, host, append(opts, fleets.Checkout(checkout))...)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", l.repo, err)
	}
	scope, err := l.scope(desired)
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(ctx, engine.WithInstance(instanceName()), engine.WithSecretsDir(os.Getenv("FLEETD_SECRETS_DIR")))
	if err != nil {
		return nil, err
	}
	return &liveState{scope: scope, host: host, repoDir: repoDir, checkout: checkout, desired: desired, engine: eng}, nil
}

// inScope is the desired fleets --fleet names, or all of them.
func (st *liveState) inScope() []fleets.Fleet {
	if st.scope == nil {
		return st.desired
	}
	return slices.DeleteFunc(slices.Clone(st.desired), func(f fleets.Fleet) bool { return !st.acts(f.Name) })
}

// acts reports whether the command acts on fleet (--fleet), as the plan's
// policy does.
func (st *liveState) acts(fleet string) bool { return reconcile.Policy{Scope: st.scope}.InScope(fleet) }

// inspectSwarm inspects the swarm fleets through the local engine; when it
// is no manager, it says so on w and inspects nothing.
func (st *liveState) inspectSwarm(ctx context.Context, w io.Writer) (swarm.Inspection, error) {
	if st.scope != nil {
		return swarm.Inspection{}, nil // --fleet names docker fleets only
	}
	in, err := swarm.New(st.engine.Client(), instanceName()).Inspect(ctx, st.desired, st.repoDir)
	if errors.Is(err, swarm.ErrNotManager) {
		fmt.Fprintf(w, "note: %v\n", err)
		return swarm.Inspection{}, nil
	}
	return in, err
}

// loadObserved is loadLive plus one observation of the engine.
func loadObserved(ctx context.Context, l *liveFlags, opts drift.ObserveOptions) (*liveState, error) {
	st, err := loadLive(ctx, l)
	if err != nil {
		return nil, err
	}
	if st.observed, err = st.engine.Observe(ctx, opts); err != nil {
		st.engine.Close()
		return nil, fmt.Errorf("observe: %w", err)
	}
	return st, nil
}

func newDiffCmd() *cobra.Command {
	var l liveFlags
	var cheap bool
	var services []string
	cmd := &cobra.Command{
		Use: "diff",
		Example: `  fleetd diff --repo ./fleets                  # drift of this host against the fleets
  fleetd diff --repo ./fleets --format json    # the same, as JSON
  fleetd diff --repo ./fleets --host web-1 --label role=web
  fleetd diff --repo ./fleets --fleet shop --service web   # one service's drift only`,
		Short: "Show how this host differs from the fleets in --repo",
		Long: `diff loads the fleets in --repo for this host, observes the local Docker
engine and prints the drift, grouped by fleet and service. Swarm fleets
(x-fleetd engine: swarm) and nodes.yaml are compared with the swarm when
the local engine is one of its managers. Exit 0 in sync, 2 when drift is
found, 1 on error.

By default every managed container is inspected, so that limits changed with
'docker update' are seen; --cheap observes with list calls only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := l.checkFormat(); err != nil {
				return err
			}
			st, err := loadObserved(cmd.Context(), &l, drift.ObserveOptions{InspectAll: !cheap})
			if err != nil {
				return err
			}
			defer st.engine.Close()
			if err := checkServices(services, st.inScope()); err != nil {
				return err
			}
			sw, err := st.inspectSwarm(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			items := slices.DeleteFunc(append(drift.Diff(st.desired, st.observed), sw.Drift()...), func(it drift.Item) bool {
				return !st.acts(it.Fleet) ||
					(services != nil && !slices.Contains(services, it.Service))
			})
			if err := writeDiff(cmd.OutOrStdout(), l.format, st.host, items); err != nil {
				return err
			}
			if len(items) > 0 {
				return &exitError{code: exitChanges, err: fmt.Errorf("")}
			}
			return nil
		},
	}
	l.register(cmd)
	cmd.Flags().BoolVar(&cheap, "cheap", false, "list calls only: skip inspecting in-sync containers")
	cmd.Flags().StringArrayVar(&services, "service", nil, "show this service's drift only (repeat for more)")
	return cmd
}

// checkServices refuses a --service no fleet in desired has: a misspelled
// name would otherwise show a clean diff.
func checkServices(names []string, desired []fleets.Fleet) error {
	for _, name := range names {
		if !slices.ContainsFunc(desired, func(f fleets.Fleet) bool {
			return slices.ContainsFunc(f.Services, func(s fleets.Service) bool { return s.Name == name })
		}) {
			return usageError("--service %s: no fleet here has such a service", name)
		}
	}
	return nil
}

// diffReport is the JSON schema of `fleetd diff --format json`.
type diffReport struct {
	Host   string       `json:"host"`
	InSync bool         `json:"in_sync"`
	Drift  []drift.Item `json:"drift"`
}

func writeDiff(w io.Writer, format string, host fleets.Host, items []drift.Item) error {
	if format == "json" {
		if items == nil {
			items = []drift.Item{}
		}
		return writeJSON(w, diffReport{Host: host.Name, InSync: len(items) == 0, Drift: items})
	}
	if len(items) == 0 {
		_, err := fmt.Fprintf(w, "host %s is in sync\n", host.Name)
		return err
	}
	_, err := fmt.Fprintf(w, "host %s: %d drift items\n%s", host.Name, len(items), drift.Text(items))
	return err
}
