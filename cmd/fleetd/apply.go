package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
)

func newApplyCmd() *cobra.Command {
	var l liveFlags
	var dryRun, allowMassPrune, retry, noWait bool
	var parallelism int
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use: "apply",
		Example: `  fleetd apply --repo ./fleets                 # converge this host, then wait for every container to be healthy
  fleetd apply --repo ./fleets --dry-run       # print the plan, change nothing
  fleetd apply --repo ./fleets --retry         # try a failed rollout's spec again
  fleetd apply --repo ./fleets --no-wait       # do not wait for health after converging`,
		Short: "Converge this host to the fleets in --repo once",
		Long: `apply loads the fleets in --repo for this host, observes the local Docker
engine, plans and executes the actions that converge it — changed services
are rolled out batch by batch behind a health gate, with automatic rollback
as their update_config says — printing each action with its result and
duration, each rollout event, the output of each build (BuildKit's steps,
or the classic builder's) as it comes, then a summary. Then, as docker compose up
--wait, it waits until every container of the desired services is healthy
(or, without a healthcheck, running), each within its service's
health_timeout (or --wait-timeout), and prints each one that is not with its
state, last health check output and the tail of its logs. Exit 0 when the
host matches the spec and everything is up, 1 otherwise (naming what
failed).

A rollout that failed (rolled back or paused), or a service that did not
become healthy after apply, is not retried until the spec changes again,
or --retry asks for it.

Swarm fleets (x-fleetd engine: swarm) are applied through the swarm when
the local engine is one of its managers, holding the swarm's lease while
apply acts; when an agent holds it, apply leaves them to the agent and says
so (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Converge observes for itself; only --dry-run needs a snapshot here.
			st, err := loadLive(cmd.Context(), &l)
			if err != nil {
				return err
			}
			defer st.engine.Close()
			// Everything apply prints passes one redactor that knows the
			// fleets' secret values: an engine error, a build's output, a
			// health check's output and a container's logs echo them.
			red := redact.New(fleets.SecretValuesOf(st.desired)...)
			run := func() error {
				rollouts, err := loadRollouts()
				if err != nil {
					return err
				}
				if retry {
					rollouts = reconcile.Retry(rollouts)
				}
				pol := st.policy(allowMassPrune)
				pol.Rollouts = rollouts
				out := redactWriter{w: cmd.OutOrStdout(), r: red}
				sw := swarmApply{dryRun: dryRun, retry: retry, allowMassPrune: allowMassPrune}
				if dryRun {
					obs, err := st.engine.Observe(cmd.Context(), drift.ObserveOptions{InspectAll: true})
					if err != nil {
						return fmt.Errorf("observe: %w", err)
					}
					if err := writePlan(out, "text", reconcile.Plan(st.desired, obs, pol)); err != nil {
						return err
					}
					return sw.run(cmd.Context(), out, st)
				}
				dir, err := stateDir()
				if err != nil {
					return err
				}
				router := newRouter(st.engine, dir, false, slog.New(slog.DiscardHandler))
				started := time.Now()
				p := newPrinter(cmd.OutOrStdout(), red)
				outcome, err := reconcile.Converge(cmd.Context(), st.engine, st.desired, pol, reconcile.ConvergeOptions{
					Exec:       reconcile.ExecOptions{Parallelism: parallelism, Progress: p.result, BuildLog: p.build, Router: router},
					InspectAll: true,
					OnEvent:    p.event,
					Save:       saveRollouts,
				})
				p.finish()
				if err != nil {
					return err
				}
				sw.onEvent = p.event
				if err := summarize(out, outcome, time.Since(started)); err != nil || noWait {
					return errors.Join(err, sw.run(cmd.Context(), out, st))
				}
				return errors.Join(waitHealthy(cmd.Context(), out, red, st.engine, st.inScope(), waitTimeout, outcome), sw.run(cmd.Context(), out, st))
			}
			return redactExit(red, run())
		},
	}
	l.register(cmd)
	registerStateDir(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	cmd.Flags().BoolVar(&allowMassPrune, "allow-mass-prune", false, "lift the prune guard for this run")
	cmd.Flags().BoolVar(&retry, "retry", false, "retry rollouts that failed (rolled back or paused), and services that did not become healthy, on the current spec")
	cmd.Flags().BoolVar(&retry, "force", false, "the same as --retry")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the containers to be healthy after converging")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 0, "how long each container may take to be healthy (default: its service's x-fleetd.health_timeout, 60s)")
	cmd.Flags().IntVar(&parallelism, "parallelism", 4, "engine actions in flight at once (health gates and other waits do not count)")
	return cmd
}

// redactWriter redacts each write: one line or a few, as fmt writes them.
type redactWriter struct {
	w io.Writer
	r *redact.Redactor
}

func (rw redactWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.String(string(b))); err != nil {
		return 0, err
	}
	return len(b), nil
}

// redactExit redacts the text of the error apply returns, which main
// prints; an exitError keeps its code.
func redactExit(red *redact.Redactor, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.code, err: red.Error(ee.err)}
	}
	return red.Error(err)
}

// printer prints finished actions and rollout events as they happen, each
// line redacted (an action's error and a build's output may echo a
// secret). Actions finish concurrently; the lock keeps lines whole. On a
// terminal it keeps a live progress line under them.
type printer struct {
	mu          sync.Mutex
	w           io.Writer
	red         *redact.Redactor
	tty         bool
	done, total int
}

func newPrinter(w io.Writer, red *redact.Redactor) *printer {
	p := &printer{w: w, red: red}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *printer) plan(pl reconcile.ActionPlan) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += len(pl.Actions)
	p.progress()
}

func (p *printer) result(r reconcile.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := r.Action
	line := fmt.Sprintf("%-8s %-15s %s/%s %s (%s)", r.Status, a.Op, a.Fleet, a.Service, targetOf(a), r.Duration.Round(time.Millisecond))
	if r.Error != "" {
		line += ": " + r.Error
	}
	p.done++
	p.println(line)
}

func (p *printer) event(e reconcile.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%-8s %s/%s: %s", "rollout", e.Fleet, e.Service, e.Message)
	if e.Reason != "" && e.Kind != reconcile.EventRolloutBatch {
		line += " — " + e.Reason
	}
	p.println(line)
}

// build prints a line of a build's output as it comes.
func (p *printer) build(a reconcile.Action, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.println(fmt.Sprintf("%-8s %s/%s: %s", "build", a.Fleet, a.Service, line))
}

// println prints a line, redacted, above the progress line.
func (p *printer) println(line string) {
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, p.red.String(line))
	p.progress()
}

func (p *printer) progress() {
	if p.tty && p.total > 0 {
		fmt.Fprintf(p.w, "\r\033[K[%d/%d actions]", p.done, p.total)
	}
}

// finish clears the progress line.
func (p *printer) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
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
func summarize(w io.Writer, o reconcile.Outcome, took time.Duration) error {
	counts := map[reconcile.Status]int{}
	total := 0
	for _, rep := range o.Reports {
		for _, r := range rep.Results {
			counts[r.Status]++
			total++
		}
	}
	fmt.Fprintf(w, "%d actions in %d passes, %s: %d done, %d failed, %d skipped\n",
		total, o.Passes, took.Round(time.Millisecond), counts[reconcile.Done], counts[reconcile.Failed], counts[reconcile.Skipped])
	var problems []string
	if n := len(o.Reports); n > 0 {
		for _, r := range o.Reports[n-1].Failed() {
			problems = append(problems, fmt.Sprintf("%s %s/%s %s: %s", r.Action.Op, r.Action.Fleet, r.Action.Service, r.Action.Target, r.Error))
		}
	}
	for _, b := range o.Last.Blocked {
		fmt.Fprintf(w, "left alone: %s/%s %s: %s\n", b.Fleet, b.Service, b.Container, b.Reason)
		if b.Error {
			problems = append(problems, fmt.Sprintf("%s/%s: %s", b.Fleet, b.Service, b.Reason))
		}
	}
	if o.Last.Refused != "" {
		problems = append(problems, o.Last.Refused)
	}
	if len(problems) == 0 {
		return nil
	}
	return &exitError{code: exitFailure, err: errors.New("the host does not match the spec:\n  " + strings.Join(problems, "\n  "))}
}
