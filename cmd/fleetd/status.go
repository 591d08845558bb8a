package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/agent"
	eingress "github.com/fleetd/fleetd/engine/ingress"
	"github.com/fleetd/fleetd/server"
)

func newStatusCmd() *cobra.Command {
	var addr, format, tokenFile string
	cmd := &cobra.Command{
		Use: "status",
		Example: `  fleetd status
  fleetd status --addr 10.0.0.5:9750 --format json --token-file /etc/fleetd/read-token`,
		Short: "Show a running agent's status (GET /v1/status) as a table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := readSecret(tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			body, err := server.FetchStatus(cmd.Context(), addr, token)
			if err != nil {
				return err
			}
			if format == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var st statusDoc
			if err := json.Unmarshal(body, &st); err != nil {
				return fmt.Errorf("status from %s: %w", addr, err)
			}
			if err := writeStatus(cmd.OutOrStdout(), st.Status); err != nil {
				return err
			}
			return writeIngress(cmd.OutOrStdout(), st.Ingress)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr(), "the agent's address (default $FLEETD_LISTEN or 127.0.0.1:9750)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the read (or API) bearer token, when the agent sets api.read_token_file")
	return cmd
}

func newSyncCmd() *cobra.Command {
	var addr, tokenFile string
	cmd := &cobra.Command{
		Use:     "sync",
		Example: `  fleetd sync --token-file /etc/fleetd/api-token`,
		Short:   "Ask a running agent to sync now (POST /v1/sync), retrying failed rollouts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := readSecret(tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			if err := server.TriggerSync(cmd.Context(), addr, token); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "sync requested from %s\n", addr)
			return err
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultAddr(), "the agent's address")
	cmd.Flags().StringVar(&tokenFile, "token-file", "/etc/fleetd/api-token", "file holding the API bearer token")
	return cmd
}

func defaultAddr() string {
	if v := os.Getenv("FLEETD_LISTEN"); v != "" {
		return v
	}
	return "127.0.0.1:9750"
}

func writeStatus(w io.Writer, st agent.Status) error {
	rev := "(none yet)"
	if st.Revision != nil {
		rev = short12(st.Revision.Commit) + " " + st.Revision.Subject
	}
	fmt.Fprintf(w, "host %s  ready %v  revision %s\n", st.Host, st.Ready, rev)
	if !st.Engine.Up && st.Engine.Error != "" {
		fmt.Fprintf(w, "engine unreachable since %s: %s\n", st.Engine.Since.Local().Format(time.TimeOnly), st.Engine.Error)
	}
	if st.Invalid != "" {
		fmt.Fprintf(w, "newest revision invalid (fleets it breaks keep their last good revision):\n  %s\n", strings.ReplaceAll(st.Invalid, "\n", "\n  "))
	}
	if st.Backoff != "" {
		fmt.Fprintf(w, "source unreachable, retrying in %s\n", st.Backoff)
	}
	if st.Error != "" {
		fmt.Fprintf(w, "last error: %s\n", st.Error)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET\tDESIRED\tAPPLIED\tREADY\tSTATE\tDRIFT\tROLLOUTS\tNEXT RETRY\tERROR")
	for _, f := range st.Fleets {
		var rollouts []string
		for _, r := range f.Rollouts {
			rollouts = append(rollouts, r.Service+" "+r.Status)
		}
		retry := "-"
		if !f.NextRetry.IsZero() {
			retry = f.NextRetry.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", f.Name, short12(f.Desired), short12(f.Applied),
			orDash(f.Condition(agent.Ready).Status), fleetState(f), len(f.Drift), orDash(strings.Join(rollouts, ", ")), retry, orDash(firstLine(f.Error)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range st.Fleets {
		for _, u := range f.Updates {
			fmt.Fprintf(w, "%s/%s: %s\n", f.Name, u.Service, u)
		}
	}
	return nil
}

// fleetState is the reason of the first of Stalled, Degraded and
// Progressing that holds, else Ready's.
func fleetState(f agent.FleetStatus) string {
	for _, typ := range []string{agent.Stalled, agent.Degraded, agent.Progressing} {
		if c := f.Condition(typ); c.Status == "True" {
			return c.Reason
		}
	}
	return orDash(f.Condition(agent.Ready).Reason)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return orDash(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statusDoc is /v1/status: the agent's status and the host's ingress.
type statusDoc struct {
	agent.Status
	Ingress *eingress.Status `json:"ingress,omitempty"`
}

// writeIngress adds the ingress's line to the status table, when there is
// an ingress.
func writeIngress(w io.Writer, in *eingress.Status) error {
	if in == nil {
		return nil
	}
	line := fmt.Sprintf("ingress %s  %s  ports %s  table %d  backends %d (%d draining, %d down)",
		in.Container, in.State, cmp.Or(in.Ports, "-"), in.Table, in.Backends, in.Draining, in.Down)
	if in.Error != "" {
		line += "  error: " + in.Error
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
