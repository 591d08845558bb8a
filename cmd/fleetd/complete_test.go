package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
)

// completionRepo writes a repository of two fleets, shop (store, web) and
// hello (hello), and returns its directory. shop's obsolete `version:` makes
// compose-go warn, which a completion must not print.
func completionRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"shop/compose.yaml":  "version: \"3\"\nservices:\n  web:\n    image: shop/web:1\n  store:\n    image: shop/store:1\n",
		"hello/compose.yaml": "services:\n  hello:\n    image: hello:1\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// probeRoot is fleetd's command tree with its completions: diff takes
// --fleet and --service, with --repo, --host and --label.
func probeRoot() *cobra.Command {
	root := newRootCmd()
	registerCompletions(root)
	return root
}

// complete runs `fleetd __complete args...` as a shell's completion script
// does and returns the lines offered (name, tab, description) and the
// directive. Nothing but cobra's note of the directive may reach stderr:
// not through cobra, nor os.Stderr, nor logrus (compose-go's logger).
func complete(t *testing.T, root *cobra.Command, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	var out, errOut, logOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = stderr
	logrus.SetOutput(&logOut)
	err = root.ExecuteContext(t.Context())
	os.Stderr = saved
	logrus.SetOutput(saved)
	if err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		if !strings.HasPrefix(line, "Completion ended with directive:") {
			t.Errorf("__complete %q wrote to stderr: %q", args, errOut.String())
		}
	}
	if b, _ := os.ReadFile(stderr.Name()); len(b) > 0 || logOut.Len() > 0 {
		t.Errorf("__complete %q wrote to stderr: %q%q", args, b, logOut.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	d, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if err != nil || !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete %q: no directive last: %q", args, out.String())
	}
	return lines[:len(lines)-1], cobra.ShellCompDirective(d)
}

func names(lines []string) []string {
	out := []string{}
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "\t")
		out = append(out, name)
	}
	return out
}

func TestCompleteFleetsAndServices(t *testing.T) {
	repo := completionRepo(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--fleet", ""}, []string{"hello", "shop"}},
		{[]string{"--fleet", "s"}, []string{"shop"}},
		{[]string{"--fleet", "x"}, []string{}},
		{[]string{"--fleet", "shop", "--fleet", ""}, []string{"hello"}}, // chosen already
		{[]string{"--fleet", "shop", "--service", ""}, []string{"store", "web"}},
		{[]string{"--fleet", "shop", "--service", "w"}, []string{"web"}},
		{[]string{"--service", ""}, []string{"hello", "store", "web"}}, // no --fleet: every fleet's
		{[]string{"--host", "web-1", "--label", "role=web", "--service", "h"}, []string{"hello"}},
	} {
		args := append([]string{"diff", "--repo", repo}, tc.args...)
		lines, d := complete(t, probeRoot(), args...)
		if got := names(lines); !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.args, got, tc.want)
		}
		if d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("complete %q: directive %d, want NoFileComp", tc.args, d)
		}
	}
}

func TestCompleteDescribes(t *testing.T) {
	repo := completionRepo(t)
	lines, _ := complete(t, probeRoot(), "diff", "--repo", repo, "--fleet", "")
	if want := []string{"hello\t1 service", "shop\t2 services"}; !slices.Equal(lines, want) {
		t.Errorf("fleets offered %q, want %q", lines, want)
	}
	lines, _ = complete(t, probeRoot(), "diff", "--repo", repo, "--service", "s")
	if want := []string{"store\tfleet shop"}; !slices.Equal(lines, want) {
		t.Errorf("services offered %q, want %q", lines, want)
	}
}

// Without --repo, the fleets are the current directory's, as the commands
// load them.
func TestCompleteFleetsOfCurrentDirectory(t *testing.T) {
	t.Chdir(completionRepo(t))
	lines, _ := complete(t, probeRoot(), "diff", "--fleet", "h")
	if got := names(lines); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("fleets offered %q, want [hello]", got)
	}
}

// A repository that cannot be loaded completes nothing, and says nothing.
func TestCompleteFailsQuietly(t *testing.T) {
	for _, args := range [][]string{
		{"diff", "--repo", filepath.Join(t.TempDir(), "missing"), "--fleet", ""},
		{"diff", "--repo", completionRepo(t), "--label", "nokeyvalue", "--service", ""},
	} {
		lines, d := complete(t, probeRoot(), args...)
		if len(lines) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("complete %q = %q, directive %d; want nothing, NoFileComp", args, lines, d)
		}
	}
}

// The invalid fleets of a repository are left out; the valid still complete.
func TestCompleteSkipsInvalidFleets(t *testing.T) {
	repo := completionRepo(t)
	if err := os.MkdirAll(filepath.Join(repo, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "broken", "compose.yaml"), []byte("services:\n  x:\n    image: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, _ := complete(t, probeRoot(), "diff", "--repo", repo, "--fleet", "")
	if got := names(lines); !slices.Equal(got, []string{"hello", "shop"}) {
		t.Errorf("fleets offered %q, want [hello shop]", got)
	}
}

// fleetd's own commands: --format values, directories for --repo,
// --state-dir and validate's DIR.
func TestCompleteCommands(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want      []string
		directive cobra.ShellCompDirective
	}{
		{[]string{"diff", "--format", ""}, []string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp},
		{[]string{"validate", "--format", "j"}, []string{"json"}, cobra.ShellCompDirectiveNoFileComp},
		{[]string{"plan", "--format", "m"}, []string{"markdown"}, cobra.ShellCompDirectiveNoFileComp},
		{[]string{"status", "--format", ""}, []string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp},
		{[]string{"apply", "--repo", ""}, []string{}, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"plan", "--state-dir", ""}, []string{}, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"validate", ""}, []string{}, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"validate", "fleets", ""}, []string{}, cobra.ShellCompDirectiveNoFileComp},
	} {
		lines, d := complete(t, newRootCmd(), tc.args...)
		if got := names(lines); !slices.Equal(got, tc.want) || d != tc.directive {
			t.Errorf("complete %q = %q, directive %d; want %q, %d", tc.args, got, d, tc.want, tc.directive)
		}
	}
}

func TestFleetScope(t *testing.T) {
	desired := []fleets.Fleet{{Name: "shop"}, {Name: "hello"}, {Name: "sw", Engine: fleets.EngineSwarm}}
	l := liveFlags{repo: "fleets"}
	if got, err := l.scope(desired); err != nil || got != nil {
		t.Errorf("no --fleet: scope %v, err %v; want nil, nil (every fleet)", got, err)
	}
	l.fleets = []string{"hello"}
	if got, err := l.scope(desired); err != nil || !slices.Equal(got, []string{"hello"}) {
		t.Errorf("--fleet hello: scope %v, err %v", got, err)
	}
	for name, want := range map[string]string{
		"nope": "--fleet nope: no such fleet in fleets (fleets: shop, hello, sw)",
		"sw":   "--fleet sw: a swarm fleet",
	} {
		l.fleets = []string{"shop", name}
		_, err := l.scope(desired)
		var ee *exitError
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &ee) || ee.code != exitFailure {
			t.Errorf("--fleet %s: err = %v, want a usage error containing %q", name, err, want)
		}
	}
}
