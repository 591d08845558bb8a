package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
)

func newValidateCmd() *cobra.Command {
	var hf hostFlags
	var format string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Load every fleet under DIR and report what this host would run",
		Long: `validate loads every fleet (a directory holding a compose.yaml) under DIR,
reports every problem it finds with file, line, fleet, service and field, and
prints each valid fleet's services, images, replicas and whether it targets
the host. Exit 0 when every fleet is valid, 1 when any is invalid, 2 for usage
errors.`,
		Args: cobra.MaximumNArgs(1),
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
			loaded, loadErr := fleets.Load(cmd.Context(), dir, host)
			problems, err := splitProblems(loadErr)
			if err != nil {
				return err
			}
			report := newValidateReport(host, loaded, problems)
			if format == "json" {
				err = writeJSON(cmd.OutOrStdout(), report)
			} else {
				err = report.writeText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if len(problems) > 0 {
				return &exitError{code: exitFailure, err: errors.New("")}
			}
			return nil
		},
	}
	hf.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
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
	for _, p := range r.Problems {
		fmt.Fprintln(w, p.String())
	}
	_, err := fmt.Fprintf(w, "%d fleets valid, %d problems\n", len(r.Fleets), len(r.Problems))
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
