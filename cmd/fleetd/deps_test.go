package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection pins the architecture down (docs/architecture.md):
// the domain (fault; fleets ← drift ← reconcile ← agent, review; ingress)
// imports no adapter, only engine imports the Docker SDK, and adapters do
// not import each other (engine/ingress drives the ingress/proxy it runs).
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "github.com/fleetd/fleetd/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/fleetd/fleetd/"
	adapters := []string{"engine", "source", "server", "notify", "ingress/proxy", "ui"}
	forbidden := map[string][]string{
		"fault":     append([]string{"fleets", "drift", "reconcile", "agent", "review", "cmd"}, adapters...),
		"fleets":    append([]string{"drift", "reconcile", "agent", "review", "cmd"}, adapters...),
		"drift":     append([]string{"reconcile", "agent", "review", "cmd"}, adapters...),
		"reconcile": append([]string{"agent", "review", "cmd"}, adapters...),
		"agent":     append([]string{"review", "cmd"}, adapters...),
		"review":    append([]string{"agent", "cmd"}, adapters...),
		"engine":    {"source", "server", "notify", "agent", "review", "cmd", "ui"},
		"source":    {"engine", "server", "notify", "reconcile", "drift", "agent", "review", "cmd", "ui"},
		"server":    {"engine", "source", "notify", "reconcile", "drift", "agent", "review", "cmd", "ui"},
		"notify":    {"engine", "source", "server", "agent", "review", "cmd", "ui"},
		// The dashboard reads the agent's status and events; the engine
		// (Observer) and the agents' HTTP API (Remote) come from cmd.
		"ui": {"engine", "source", "server", "notify", "review", "cmd"},
		// The ingress's decisions are domain; its data plane serves a
		// table and knows nothing of fleets, Docker or the agent.
		"ingress":       append([]string{"drift", "reconcile", "agent", "review", "cmd"}, adapters...),
		"ingress/proxy": {"fleets", "drift", "reconcile", "agent", "review", "cmd", "engine", "source", "server", "notify"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "github.com/docker/") && pkg != "engine" && !strings.HasPrefix(pkg, "engine/") {
				t.Errorf("%s imports the Docker SDK (%s); only engine may", pkg, imp)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			for _, bad := range forbidden[pkg] {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s imports %s: dependencies point from adapters to the domain, never back or sideways", pkg, dep)
				}
			}
		}
	}
}
