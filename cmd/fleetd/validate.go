package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/source"
)

func newValidateCmd() *cobra.Command {
	var hf hostFlags
	var format, base string
	cmd := &cobra.Command{
		Use: "validate [DIR]",
		Example: `  fleetd validate ./fleets
  fleetd validate ./fleets --host web-1 --label role=web
  fleetd validate ./fleets --base origin/main  # fail only on problems new since main`,
		Short: "Load every fleet under DIR and report what this host would run",
		Long: `validate loads every fleet (a directory holding a compose.yaml) under DIR,
reports every problem it finds with file, line, fleet, service and field, and
prints each valid fleet's services, images, replicas and whether it targets
the host. Exit 0 when every fleet is valid, 1 when any is invalid, when DIR
holds no fleet at all, or on a usage error.

With --base REF, DIR must be inside a Git repository: the fleets directory is
also loaded as it was at REF, and each problem is marked new (introduced
since REF) or already there. Exit 1 only when there are new problems, so that
a pull request is judged by what it changes (pass the merge base, as for
plan --base).`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeDirArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if format != "text" && format != "json" {
				return usageError("--format %q: want text or json", format)
			}
			host, err := hf.host()
			if err != nil {
				return err
			}
			policy, err := hf.policyOptions(true)
			if err != nil {
				return err
			}
			var loaded []fleets.Fleet
			var warnings []string
			loadErr := untilDone(cmd.Context(), func() (err error) {
				loaded, err = fleets.Load(cmd.Context(), dir, host, append(policy, fleets.Checkout(fleets.FindCheckout(dir)))...)
				warnings = unfetched(cmd.Context(), dir)
				return err
			})
			if errors.Is(loadErr, errInterrupted) {
				return loadErr
			}
			problems, err := splitProblems(loadErr)
			if err != nil {
				return err
			}
			report := newValidateReport(host, loaded, problems)
			report.Warnings = warnings
			if base != "" {
				var b validateBase
				var baseProblems []fleets.Problem
				err := untilDone(cmd.Context(), func() (err error) {
					b, baseProblems, err = loadAtRevision(cmd.Context(), dir, base, host, policy...)
					return err
				})
				if err != nil {
					return err
				}
				b.NewProblems = fleets.NewSince(problems, baseProblems)
				if b.NewProblems == nil {
					b.NewProblems = []fleets.Problem{}
				}
				report.Base = &b
			}
			if format == "json" {
				err = writeJSON(cmd.OutOrStdout(), report)
			} else {
				err = report.writeText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if report.failed() {
				return &exitError{code: exitFailure, err: errors.New("")}
			}
			if len(loaded) == 0 && len(problems) == 0 && base == "" {
				return fmt.Errorf("no fleet under %s: a fleet is a directory holding a compose.yaml (or compose.yml, docker-compose.yaml); pass the directory of the fleets, or the repository's root", dir)
			}
			return nil
		},
	}
	hf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringVar(&base, "base", "", "Git revision to compare with (branch, tag, commit, HEAD~1): fail only on problems introduced since")
	return cmd
}

// errInterrupted is what a command returns when a signal ends it.
var errInterrupted = errors.New("interrupted")

// untilDone runs f and returns its error, or errInterrupted as soon as ctx
// ends, leaving f behind: a read that blocks in the kernel (a hung network
// file system under the repository) must not keep a command from ending on
// SIGTERM. f must write only variables the caller reads after a nil or f's
// own error.
func untilDone(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errInterrupted
	}
}

// unfetched warns of what the agent would check out without contents
// below dir (Git LFS files, submodules): fleetd fetches neither.
func unfetched(ctx context.Context, dir string) []string {
	ws, err := fleets.Unfetched(ctx, dir, fleets.FindCheckout(dir))
	if err != nil {
		return []string{fmt.Sprintf("%s: cannot look for Git LFS files and submodules: %v", dir, err)}
	}
	return ws
}

// loadAtRevision loads the fleets directory dir as it was at ref, from the
// Git repository holding it, and returns the revision and its problems. A
// directory that did not exist at ref holds no fleets and no problems.
func loadAtRevision(ctx context.Context, dir, ref string, host fleets.Host, opts ...fleets.Option) (validateBase, []fleets.Problem, error) {
	// Every failure to compare is the flags' fault: a usage error.
	abs, err := filepath.Abs(dir)
	name := filepath.Base(abs) // the fleet at DIR is named after DIR as given, as at head
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs) // the work tree's root is a real path
	}
	if err != nil {
		return validateBase{}, nil, usageError("--base: %v", err)
	}
	snap, err := source.OpenSnapshot(ctx, abs, source.Auth{})
	if err != nil {
		return validateBase{}, nil, usageError("--base needs %s inside a Git repository: %v", dir, err)
	}
	root := snap.WorktreeRoot()
	if root == "" {
		return validateBase{}, nil, usageError("--base: %s is not in a Git work tree", dir)
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return validateBase{}, nil, usageError("--base: %s is not inside the work tree %s", dir, root)
	}
	tmp, err := os.MkdirTemp("", "fleetd-validate-")
	if err != nil {
		return validateBase{}, nil, fmt.Errorf("--base: %w", err)
	}
	defer os.RemoveAll(tmp)
	rev, err := snap.Export(ctx, ref, filepath.ToSlash(rel), tmp)
	if err != nil {
		return validateBase{}, nil, usageError("--base %s: %v", ref, err)
	}
	b := validateBase{Ref: ref, Commit: rev.Commit}
	if _, err := os.Stat(rev.Dir); errors.Is(err, fs.ErrNotExist) {
		return b, nil, nil
	}
	_, loadErr := fleets.Load(ctx, rev.Dir, host, append(opts, fleets.RootName(name), fleets.Checkout(rev.Root))...)
	problems, err := splitProblems(loadErr)
	return b, problems, err
}

// splitProblems separates validation problems (reported, exit 1) from
// errors that stop the command (an unreadable directory).
func splitProblems(err error) ([]fleets.Problem, error) {
	if err == nil {
		return nil, nil
	}
	var pl fleets.ProblemList
	if errors.As(err, &pl) {
		return pl, nil
	}
	return nil, err
}

type validateReport struct {
	Host     fleets.Host      `json:"host"`
	Valid    bool             `json:"valid"`
	Fleets   []validateFleet  `json:"fleets"`
	Problems []fleets.Problem `json:"problems"`
	// Base is set with --base.
	Base *validateBase `json:"base,omitempty"`
	// Warnings name what the agent would check out without contents
	// (Git LFS files, submodules); they do not fail validate.
	Warnings []string `json:"warnings,omitempty"`
}

// validateBase is the revision --base compared with, and the problems
// introduced since (a subset of Problems).
type validateBase struct {
	Ref         string           `json:"ref"`
	Commit      string           `json:"commit"`
	NewProblems []fleets.Problem `json:"new_problems"`
}

// failed reports whether validate exits 1: any problem, or with --base any
// new problem.
func (r validateReport) failed() bool {
	if r.Base != nil {
		return len(r.Base.NewProblems) > 0
	}
	return len(r.Problems) > 0
}

type validateFleet struct {
	Name     string            `json:"name"`
	Dir      string            `json:"dir"`
	Files    []string          `json:"files"`
	Targets  bool              `json:"targets"`
	Services []validateService `json:"services"`
}

type validateService struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	Build    string `json:"build,omitempty"` // build context, relative to DIR
	Replicas int    `json:"replicas"`
	Targets  bool   `json:"targets"`
}

func newValidateReport(host fleets.Host, loaded []fleets.Fleet, problems []fleets.Problem) validateReport {
	r := validateReport{Host: host, Valid: len(problems) == 0, Fleets: []validateFleet{}, Problems: problems}
	if r.Problems == nil {
		r.Problems = []fleets.Problem{}
	}
	for _, f := range loaded {
		vf := validateFleet{Name: f.Name, Dir: f.Dir, Files: f.Files, Targets: f.Targets}
		for _, s := range f.Services {
			vs := validateService{Name: s.Name, Image: s.Spec.Image, Replicas: s.Replicas, Targets: s.Targets}
			if s.Build != nil {
				vs.Build = s.Build.ContextDir
			}
			vf.Services = append(vf.Services, vs)
		}
		r.Fleets = append(r.Fleets, vf)
	}
	return r
}

func (r validateReport) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range r.Fleets {
		target := "targets " + r.Host.Name
		if !f.Targets {
			target = "does not target " + r.Host.Name
		}
		fmt.Fprintf(tw, "fleet %s\t(%s)\t%s\n", f.Name, strings.Join(f.Files, ", "), target)
		for _, s := range f.Services {
			image := s.Image
			if s.Build != "" {
				image = "build " + s.Build + " → " + s.Image
			}
			placed := ""
			if f.Targets && !s.Targets {
				placed = "\tnot placed here (constraints)"
			}
			fmt.Fprintf(tw, "  %s\t%s\treplicas %d%s\n", s.Name, image, s.Replicas, placed)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	var fresh []fleets.Problem
	if r.Base != nil {
		fresh = r.Base.NewProblems
	}
	for _, p := range r.Problems {
		note := ""
		if r.Base != nil {
			if i := slices.Index(fresh, p); i >= 0 {
				fresh = slices.Delete(slices.Clone(fresh), i, i+1)
				note = "  (new)"
			} else {
				note = "  (already at base)"
			}
		}
		fmt.Fprintln(w, p.String()+note)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintln(w, "warning: "+warning)
	}
	summary := fmt.Sprintf("%d fleets valid, %d problems", len(r.Fleets), len(r.Problems))
	if r.Base != nil {
		short := r.Base.Commit[:min(7, len(r.Base.Commit))]
		summary += fmt.Sprintf(", %d new since base %s", len(r.Base.NewProblems), short)
		if !strings.HasPrefix(r.Base.Commit, r.Base.Ref) {
			summary += " (" + r.Base.Ref + ")"
		}
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}
