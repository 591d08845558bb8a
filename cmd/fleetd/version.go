package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/engine"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	return v
}

// build is what the binary knows of how it was built.
type build struct {
	Version, Revision, Time, GoVersion, Platform string
	Modified                                     bool
}

// buildOf reads the build from the binary's build information.
func buildOf() build {
	b := build{Version: versionString(), Revision: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print fleetd's version and how it was built",
		Example: "  fleetd version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := buildOf()
			rev := b.Revision
			if b.Time != "" {
				rev += " (" + b.Time + ")"
			}
			if b.Modified {
				rev += ", with uncommitted changes"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "fleetd %s\n  commit      %s\n  go          %s %s\n  Docker API  up to %s (negotiated with the engine)\n",
				b.Version, rev, b.GoVersion, b.Platform, engine.MaxAPIVersion())
			return err
		},
	}
}
