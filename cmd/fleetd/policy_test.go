package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

func TestReadPolicyFile(t *testing.T) {
	def := fleets.DefaultHostPolicy()
	strict := def
	strict.Privileged = false
	strict.Binds = []string{"/srv"}
	strict.HostNamespaces = []string{}
	tests := []struct {
		name, file string
		want       fleets.HostPolicy
		err        string
	}{
		{"defaults for keys left out", "policy: {}\n", def, ""},
		{"an agent's configuration file", "host: {name: web-1}\nsource: {url: x}\npolicy:\n  privileged: false\n  binds: [/srv]\n  host_namespaces: []\n", strict, ""},
		{"no section", "host: {name: web-1}\n", fleets.HostPolicy{}, "no policy: section"},
		{"unknown key", "policy:\n  bind: [/srv]\n", fleets.HostPolicy{}, "line 2: unknown key policy.bind; did you mean binds?"},
		{"wrong type", "policy:\n  privileged: sometimes\n", fleets.HostPolicy{}, `policy.privileged: "sometimes" is not`},
		{"bad value", "policy:\n  binds: [srv]\n", fleets.HostPolicy{}, `policy.binds: "srv" is not an absolute path`},
		{"bad namespace", "policy:\n  host_namespaces: [net]\n", fleets.HostPolicy{}, `policy.host_namespaces: unknown namespace "net"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readPolicyFile(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policy = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigPolicy(t *testing.T) {
	cfg, err := decodeConfig("c.yaml", []byte("source: {url: x}\npolicy: {deny_binds: [/etc, relative]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), `policy.deny_binds: "relative" is not an absolute path`) {
		t.Errorf("validate = %v, want the policy's error", err)
	}
}

// The agent loads each revision under its policy: a fleet that asks for
// more is invalid on this host (and so not applied), the others load.
func TestAgentEnforcesPolicy(t *testing.T) {
	for _, tt := range []struct {
		name, policy string
		invalid      string
	}{
		{"default", "", "volumes.0: a bind of /var/run/docker.sock reaches /var/run/docker.sock"},
		{"allowed", "policy: {deny_binds: []}\n", ""},
		{"strict", "policy: {deny_binds: [], binds: [/srv]}\n", "policy.binds: [/srv]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(t, "source: {url: https://git.example.com/ops/fleet.git}\nlisten: 127.0.0.1:1\n"+tt.policy, nil)
			if err != nil {
				t.Fatal(err)
			}
			ac, err := agentConfig(cfg, fleets.Host{Name: "h1"}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for name, data := range map[string]string{
				"ci/compose.yaml":  "services:\n  runner:\n    image: runner\n    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n",
				"web/compose.yaml": "services:\n  web:\n    image: nginx\n",
			} {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			loaded, err := ac.Load(t.Context(), reconcile.Revision{Dir: dir, Root: dir})
			if tt.invalid == "" {
				if err != nil || len(loaded) != 2 {
					t.Fatalf("loaded %d fleets, %v; want both", len(loaded), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.invalid) || len(loaded) != 1 || loaded[0].Name != "web" {
				t.Fatalf("loaded %d fleets, %v; want web only and %q", len(loaded), err, tt.invalid)
			}
		})
	}
}
