package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/swarm"
	"github.com/fleetd/fleetd/reconcile"
)

func newPlanCmd() *cobra.Command {
	var l liveFlags
	var rf revFlags
	var live, allowMassPrune bool
	cmd := &cobra.Command{
		Use: "plan --live | plan --base REF [--head REF]",
		Example: `  fleetd plan --live --repo ./fleets           # what apply would do on this host, and why
  fleetd plan --base origin/main --head HEAD --inventory hosts.yaml --format markdown   # for a pull request`,
		Short: "Show what apply would do on this host, and why",
		Long: `plan --live loads the fleets in --repo for this host, observes the local
Docker engine and prints the actions 'fleetd apply' would take, each with its
cause. Exit 0 when there is nothing to do, 2 when there are changes, 1 on
error.

plan --base REF [--head REF] needs no Docker engine: it compares the fleets at
two revisions of the Git repository --repo (a local path or a URL) for every
host of the inventory (or the host of --host/--label) and prints what merging
head will change on each: see docs/pull-requests.md. --format also takes
markdown. Exit 0 when nothing changes, 2 when something does, 1 on error or
when head is invalid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rf.requested(cmd) {
				return runPlanRevisions(cmd, &l, &rf)
			}
			if !live {
				return usageError("plan needs --live (compare --repo with this host's engine) or --base (compare two revisions)")
			}
			if err := l.checkFormat(); err != nil {
				return err
			}
			st, err := loadObserved(cmd.Context(), &l, drift.ObserveOptions{InspectAll: true})
			if err != nil {
				return err
			}
			defer st.engine.Close()
			pol := st.policy(allowMassPrune)
			if pol.Rollouts, err = loadRollouts(); err != nil {
				return err
			}
			p := reconcile.Plan(st.desired, st.observed, pol)
			sw, err := st.inspectSwarm(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := writeLivePlan(cmd.OutOrStdout(), l.format, p, sw); err != nil {
				return err
			}
			if !p.Empty() || p.Refused != "" || swarmChanges(sw) {
				return &exitError{code: exitChanges, err: errors.New("")}
			}
			return nil
		},
	}
	l.register(cmd)
	rf.register(cmd)
	cmd.Flags().BoolVar(&live, "live", false, "plan against this host's Docker engine")
	cmd.Flags().BoolVar(&allowMassPrune, "allow-mass-prune", false, "plan as if the prune guard were lifted")
	registerStateDir(cmd)
	return cmd
}

func (st *liveState) policy(allowMassPrune bool) reconcile.Policy {
	return reconcile.Policy{Now: time.Now(), RepoDir: st.repoDir, CheckoutDir: st.checkout, AllowMassPrune: allowMassPrune, Scope: st.scope}
}

// livePlan is the JSON schema of `fleetd plan --live --format json`: the
// host's plan, and the swarm fleets' plans when the engine is a manager.
type livePlan struct {
	reconcile.ActionPlan
	Swarm []swarm.FleetPlan `json:"swarm,omitempty"`
	Nodes []nodeChange      `json:"nodes,omitempty"`
}

// nodeChange is one node nodes.yaml changes.
type nodeChange struct {
	Node    string       `json:"node"`
	Reasons []drift.Item `json:"reasons"`
}

// writeLivePlan writes the host's plan, then the swarm's.
func writeLivePlan(w io.Writer, format string, p reconcile.ActionPlan, sw swarm.Inspection) error {
	if format == "json" {
		out := livePlan{ActionPlan: p, Swarm: sw.Plans}
		if out.Actions == nil {
			out.Actions = []reconcile.Action{}
		}
		if out.Drift == nil {
			out.Drift = []drift.Item{}
		}
		for _, u := range sw.Nodes {
			out.Nodes = append(out.Nodes, nodeChange{Node: u.Node.Hostname, Reasons: u.Reasons})
		}
		return writeJSON(w, out)
	}
	if err := writePlan(w, format, p); err != nil {
		return err
	}
	for _, u := range sw.Nodes {
		fmt.Fprintf(w, "swarm node %s: update\n%s", u.Node.Hostname, drift.Text(u.Reasons))
	}
	for _, fp := range sw.Plans {
		if len(fp.Plan.Actions) == 0 && len(fp.Plan.Blocked) == 0 {
			fmt.Fprintf(w, "swarm fleet %s: nothing to do\n", fp.Fleet)
			continue
		}
		fmt.Fprintf(w, "swarm fleet %s:\n", fp.Fleet)
		for _, a := range fp.Plan.Actions {
			fmt.Fprintf(w, "  %s %s (%s)\n", a.Op, a.Name, a.Cause.Kind)
		}
		for _, b := range fp.Plan.Blocked {
			fmt.Fprintf(w, "  blocked: %s %s: %s\n", b.Object, b.Container, b.Detail)
		}
	}
	return nil
}

// swarmChanges reports whether the swarm's plans would change something.
func swarmChanges(sw swarm.Inspection) bool {
	if len(sw.Nodes) > 0 {
		return true
	}
	for _, fp := range sw.Plans {
		if len(fp.Plan.Actions) > 0 || len(fp.Plan.Blocked) > 0 {
			return true
		}
	}
	return false
}

func writePlan(w io.Writer, format string, p reconcile.ActionPlan) error {
	if format == "json" {
		if p.Actions == nil {
			p.Actions = []reconcile.Action{}
		}
		if p.Drift == nil {
			p.Drift = []drift.Item{}
		}
		return writeJSON(w, p)
	}
	_, err := fmt.Fprint(w, p.String())
	return err
}
