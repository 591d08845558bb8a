package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Shell completion: cobra's `fleetd completion bash|zsh|fish|powershell`
// scripts ask the hidden `fleetd __complete` for the values of a flag, and
// the functions here answer. Fleet and service names are read from the
// command's repository directory (--repo, else the current directory) by
// fleets.Load for the command's --host and --label, as the command itself
// loads them. A completion makes no Docker call, reaches no network and
// prints nothing: whatever fails completes no name.

// flagCompletions completes a flag's value by the flag's name, on every
// command that has a flag of that name.
var flagCompletions = map[string]cobra.CompletionFunc{
	"fleet":     completeFleets,
	"service":   completeServices,
	"repo":      completeDirs,
	"state-dir": completeDirs,
	"state":     completeDirs,
	"format":    completeFormats,
}

// registerCompletions registers flagCompletions on root and every command
// under it; call it once the tree is built.
func registerCompletions(root *cobra.Command) {
	for name, fn := range flagCompletions {
		if root.Flags().Lookup(name) != nil {
			// The only error: fn is registered already.
			_ = root.RegisterFlagCompletionFunc(name, fn)
		}
	}
	for _, sub := range root.Commands() {
		registerCompletions(sub)
	}
}

// completionTimeout bounds the loading behind one completion: the shell
// waits for it.
const completionTimeout = 2 * time.Second

// completeFleets completes fleet names, leaving out those the flag holds
// already (--fleet may be repeated).
func completeFleets(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	chosen := flagValues(cmd, "fleet")
	var out []cobra.Completion
	for _, f := range completionFleets(cmd) {
		if strings.HasPrefix(f.Name, toComplete) && !slices.Contains(chosen, f.Name) {
			n := len(f.Services)
			out = append(out, cobra.CompletionWithDesc(f.Name, fmt.Sprintf("%d %s", n, reconcile.Plural(n, "service", "services"))))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeServices completes the service names of the fleets chosen with
// --fleet, or of every fleet when none is.
func completeServices(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	chosen := flagValues(cmd, "fleet")
	var out []cobra.Completion
	seen := map[string]bool{}
	for _, f := range completionFleets(cmd) {
		if len(chosen) > 0 && !slices.Contains(chosen, f.Name) {
			continue
		}
		for _, s := range f.Services {
			if strings.HasPrefix(s.Name, toComplete) && !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, cobra.CompletionWithDesc(s.Name, "fleet "+f.Name))
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionFleets loads the valid fleets of the command's repository
// directory for its host; nil when that fails.
func completionFleets(cmd *cobra.Command) []fleets.Fleet {
	// compose-go warns through logrus (an obsolete `version:`); the shell
	// would show it.
	logrus.SetOutput(io.Discard)
	repo := "."
	if f := cmd.Flags().Lookup("repo"); f != nil {
		repo = f.Value.String()
	}
	hf := hostFlags{labels: flagValues(cmd, "label")}
	if f := cmd.Flags().Lookup("host"); f != nil {
		hf.name = f.Value.String()
	}
	host, err := hf.host()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	// With an invalid fleet, Load still returns the valid ones: complete those.
	loaded, _ := fleets.Load(ctx, repo, host, fleets.Checkout(fleets.FindCheckout(repo)))
	return loaded
}

// flagValues is the value of the command's flag name as a list: the values
// of a repeatable flag, or the one value of another; nil when the command
// has no such flag or it is not set.
func flagValues(cmd *cobra.Command, name string) []string {
	f := cmd.Flags().Lookup(name)
	if f == nil || !f.Changed {
		return nil
	}
	if sv, ok := f.Value.(cobra.SliceValue); ok {
		return sv.GetSlice()
	}
	return []string{f.Value.String()}
}

// completeDirs completes a flag's value with a directory.
func completeDirs(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// completeDirArg completes a command's only argument, a directory
// (validate DIR).
func completeDirArg(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// completeFormats completes --format: text and json, and for plan (between
// revisions) markdown.
func completeFormats(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	formats := []string{"text", "json"}
	if cmd.Name() == "plan" {
		formats = append(formats, "markdown")
	}
	var out []cobra.Completion
	for _, f := range formats {
		if strings.HasPrefix(f, toComplete) {
			out = append(out, f)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
