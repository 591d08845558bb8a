package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
)

// logLines is how much of a failing container's log apply prints.
const logLines = 20

// waitHealthy is `fleetd apply`'s last step, as `docker compose up --wait`:
// every container of the desired services must become healthy (or,
// without a healthcheck, keep running) within its timeout. It prints each
// one that does not with its state, last health check output and the
// tail of its logs (redacted with red: a health check's output and a
// container's logs may echo a secret), records the specs of those it deployed as failed (so
// that the next apply of the same revision leaves them to inspect rather
// than restarting them, until --retry or a new commit), and fails.
func waitHealthy(ctx context.Context, w io.Writer, red *redact.Redactor, eng *engine.Docker, desired []fleets.Fleet, override time.Duration, outcome reconcile.Outcome) error {
	var obs drift.Observed
	if outcome.Converged != nil {
		obs = *outcome.Converged // converge's last look: nothing changed since
	} else {
		var err error
		if obs, err = eng.Observe(ctx, drift.ObserveOptions{}); err != nil {
			return fmt.Errorf("observe: %w", err)
		}
	}
	targets := reconcile.WaitTargets(desired, obs, override)
	if len(targets) == 0 {
		return nil
	}
	start := time.Now()
	errs := make([]error, len(targets))
	g := errgroup.Group{}
	g.SetLimit(16)
	for i, t := range targets {
		g.Go(func() error {
			errs[i] = eng.WaitHealthy(ctx, t.ID, t.Timeout)
			return nil
		})
	}
	_ = g.Wait() // the goroutines report through errs
	if err := ctx.Err(); err != nil {
		return err
	}
	var failed []reconcile.WaitTarget
	reasons := map[string]string{}
	var names []string
	for i, t := range targets {
		if errs[i] == nil {
			continue
		}
		failed = append(failed, t)
		reason := red.String(errs[i].Error()) // kept in the rollouts file, shown by status
		reasons[t.Fleet+"/"+t.Service] = reason
		names = append(names, t.Fleet+"/"+t.Service+" "+t.Container)
		fmt.Fprintf(w, "not healthy  %s/%s %s: %s\n", t.Fleet, t.Service, t.Container, reason)
		d, err := eng.Diagnose(ctx, t.ID, logLines)
		if d.State != "" {
			fmt.Fprintf(w, "  state: %s\n", d.State)
		}
		if d.HealthLog != "" {
			fmt.Fprintf(w, "  last health check: %s\n", red.String(oneLine(d.HealthLog)))
		}
		if d.Logs != "" {
			fmt.Fprintf(w, "  last %d log lines:\n    %s\n", logLines, strings.ReplaceAll(red.String(d.Logs), "\n", "\n    "))
		}
		if err != nil {
			fmt.Fprintf(w, "  (%s)\n", red.String(err.Error()))
		}
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "%d containers healthy (%s)\n", len(targets), time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := saveRollouts(reconcile.FirstDeployFailed(outcome.Rollouts, failed, reconcile.Created(outcome), reasons, time.Now())); err != nil {
		return err
	}
	return &exitError{code: exitFailure, err: errors.New("not healthy within the wait (what this apply deployed is kept as it is until --retry or a new commit):\n  " + strings.Join(names, "\n  "))}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
