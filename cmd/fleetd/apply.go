package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

func newApplyCmd() *cobra.Command {
	var l liveFlags
	var dryRun, allowMassPrune bool
	var parallelism int
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Converge this host to the fleets in --repo once",
		Long: `apply loads the fleets in --repo for this host, observes the local Docker
engine, plans and executes the actions that converge it, printing each with
its result and duration, then a summary. Exit 0 when the host matches the
spec, 1 otherwise (naming what failed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := loadLive(cmd.Context(), &l, drift.ObserveOptions{InspectAll: true})
			if err != nil {
				return err
			}
			defer st.engine.Close()
			out := cmd.OutOrStdout()
			p := reconcile.Plan(st.desired, st.observed, st.policy(allowMassPrune))
			if dryRun {
				return writePlan(out, "text", p)
			}
			started := time.Now()
			rep := reconcile.Execute(cmd.Context(), st.engine, p, reconcile.ExecOptions{
				Parallelism: parallelism,
				Progress:    progressPrinter(out),
			})
			return summarize(out, p, rep, time.Since(started))
		},
	}
	l.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	cmd.Flags().BoolVar(&allowMassPrune, "allow-mass-prune", false, "lift the prune guard for this run")
	cmd.Flags().IntVar(&parallelism, "parallelism", 4, "actions in flight at once")
	return cmd
}

// progressPrinter prints one line per finished action. Actions finish
// concurrently; the lock keeps lines whole.
func progressPrinter(w io.Writer) func(reconcile.Result) {
	var mu sync.Mutex
	return func(r reconcile.Result) {
		mu.Lock()
		defer mu.Unlock()
		a := r.Action
		line := fmt.Sprintf("%-8s %-15s %s/%s %s (%s)", r.Status, a.Op, a.Fleet, a.Service, targetOf(a), r.Duration.Round(time.Millisecond))
		if r.Error != "" {
			line += ": " + r.Error
		}
		fmt.Fprintln(w, line)
	}
}

func targetOf(a reconcile.Action) string {
	if a.Op == reconcile.OpRename {
		return a.Target + " → " + a.NewName
	}
	return a.Target
}

// summarize prints the outcome and returns an error (exit 1) when the host
// does not match the spec.
func summarize(w io.Writer, p reconcile.ActionPlan, rep reconcile.Report, took time.Duration) error {
	counts := map[reconcile.Status]int{}
	for _, r := range rep.Results {
		counts[r.Status]++
	}
	fmt.Fprintf(w, "%d actions in %s: %d done, %d failed, %d skipped\n",
		len(rep.Results), took.Round(time.Millisecond), counts[reconcile.Done], counts[reconcile.Failed], counts[reconcile.Skipped])
	var problems []string
	for _, r := range rep.Failed() {
		problems = append(problems, fmt.Sprintf("%s %s/%s %s: %s", r.Action.Op, r.Action.Fleet, r.Action.Service, r.Action.Target, r.Error))
	}
	for _, b := range p.Blocked {
		fmt.Fprintf(w, "left alone: %s/%s %s: %s\n", b.Fleet, b.Service, b.Container, b.Reason)
		if b.Error {
			problems = append(problems, fmt.Sprintf("%s/%s: %s", b.Fleet, b.Service, b.Reason))
		}
	}
	if p.Refused != "" {
		problems = append(problems, p.Refused)
	}
	if len(problems) == 0 {
		return nil
	}
	return &exitError{code: exitFailure, err: errors.New("the host does not match the spec:\n  " + strings.Join(problems, "\n  "))}
}
