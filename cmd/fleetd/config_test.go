package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadConfig(t *testing.T, text string, env map[string]string) (daemonConfig, error) {
	t.Helper()
	cfg, err := readConfig(writeConfig(t, text))
	if err != nil {
		return cfg, err
	}
	cfg.overrideFromEnv(func(k string) string { return env[k] })
	cfg.applyDefaults()
	return cfg, cfg.validate()
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	cases := []struct{ name, text, want string }{
		{"unknown key", "source: {url: x, branch: main}\n", "line 1: unknown key source.branch (source takes allow_rewind, auth, interval, limits, path, ref, schedule, url, verify, web_url, windows)"},
		{"misspelled key", "source: {url: x, intervall: 1m}\n", "line 1: unknown key source.intervall; did you mean interval?"},
		{"misspelled section", "sorce: {url: x}\n", "unknown key sorce; did you mean source?"},
		{"mistyped", "source: {url: x}\nreconcile: {parallelism: many}\n", `line 2: reconcile.parallelism: "many" is not a whole number`},
		{"missing url", "listen: 127.0.0.1:1\n", "source.url: required"},
		{"bad interval", "source: {url: x, interval: often}\n", "source.interval"},
		{"both schedules", "source: {url: x, interval: 1m, schedule: '* * * * *'}\n", "source.schedule"},
		{"bad cron", "source: {url: x, schedule: 'every day'}\n", "source.schedule"},
		{"bad window", "source: {url: x, windows: ['nope']}\n", "source.windows[0]"},
		{"empty CRON_TZ (robfig/cron panics)", "source: {url: x, schedule: 'CRON_TZ='}\n", `source.schedule: invalid cron expression "CRON_TZ="`},
		{"empty TZ in a window", "source: {url: x, windows: ['TZ=']}\n", `source.windows[0]: invalid cron expression "TZ="`},
		{"missing secret file", "source: {url: x}\napi: {token_file: /nonexistent/token}\n", "api.token_file"},
		{"missing read token file", "source: {url: x}\napi: {read_token_file: /nonexistent/token}\nwebhook: {listen: ':9751'}\n", "api.read_token_file"},
		{"slack token without channel", "source: {url: x}\nnotify: {slack: {token_file: " + secret + "}}\n", "notify.slack.channel"},
		{"bad severity", "source: {url: x}\nnotify: {webhooks: [{url: 'http://127.0.0.1:1/x', min_severity: loud}]}\n", "notify.webhooks[0]: min_severity"},
		{"unknown event kind", "source: {url: x}\nnotify: {slack: {webhook_url_file: " + secret + ", kinds: [drift]}}\n", "unknown event kind"},
		{"webhook url", "source: {url: x}\nnotify: {webhooks: [{url: 'ftp://x'}]}\n", "notify.webhooks[0].url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(t, c.text, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	cfg, err := loadConfig(t, "source: {url: https://git.example.com/ops/fleet.git}\nlisten: 127.0.0.1:1\n",
		map[string]string{"FLEETD_LISTEN": "127.0.0.1:2", "FLEETD_SOURCE_REF": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:2" || cfg.Source.Ref != "prod" || cfg.Source.Path != "." || cfg.Source.Interval != "1m" || cfg.Reconcile.Parallelism != 4 {
		t.Errorf("config = %+v", cfg)
	}
}

func TestWindows(t *testing.T) {
	in, err := windowFunc([]string{"* 9-17 * * 1-5"})
	if err != nil {
		t.Fatal(err)
	}
	monday10 := mustTime(t, "2026-11-23T10:30:20Z")
	monday18 := mustTime(t, "2026-11-23T18:00:00Z")
	sunday10 := mustTime(t, "2026-11-22T10:30:00Z")
	if !in(monday10) || in(monday18) || in(sunday10) {
		t.Errorf("window: monday 10:30 %v, monday 18:00 %v, sunday 10:30 %v", in(monday10), in(monday18), in(sunday10))
	}
	if none, _ := windowFunc(nil); none != nil {
		t.Errorf("no windows must mean always")
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The agent names a fleet kept at the repository's root after the
// repository, not after the commit's directory it loads from: the name,
// and so the containers, stay the same from one commit to the next.
func TestAgentNamesRootFleetAfterRepository(t *testing.T) {
	cfg, err := loadConfig(t, "source: {url: https://git.example.com/ops/fleet.git}\nlisten: 127.0.0.1:1\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agentConfig(cfg, fleets.Host{Name: "h1"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, commit := range []string{"3f2a9c1e0b", "77d04e2a19"} {
		dir := filepath.Join(t.TempDir(), commit)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    image: nginx\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		loaded, err := ac.Load(t.Context(), reconcile.Revision{Dir: dir, Root: dir})
		if err != nil || len(loaded) != 1 || loaded[0].Name != "fleet" {
			t.Fatalf("root fleet at %s loaded as %+v, %v; want it named fleet", commit, loaded, err)
		}
	}
}

// Every command shows an example of its use (--help).
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && c.Name() != "fleetd" && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("fleetd %s has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}

// TestConfigChat: notify.chat is checked at start-up, naming the entry;
// a good entry becomes a sink named by its scheme, filtered by fleet, its
// URL's secrets added to the scrubber's.
func TestConfigChat(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("discord.url", "discord://dcTokenSecret0123456789@123456789012345678\n")
	unknown := write("unknown.url", "nosuch://tokenSecretXYZ@host\n")
	for _, c := range []struct{ name, chat, want string }{
		{"unreadable url_file", "[{url_file: /nonexistent/discord.url}]", "notify.chat[0].url_file"},
		{"missing url_file", "[{min_severity: warning}]", "notify.chat[0].url_file: required"},
		{"unknown scheme", "[{url_file: " + good + "}, {url_file: " + unknown + "}]", `notify.chat[1]: unknown chat service "nosuch"`},
		{"bad severity", "[{url_file: " + good + ", min_severity: loud}]", "notify.chat[0]: min_severity"},
		{"empty fleet", "[{url_file: " + good + ", fleets: ['']}]", "notify.chat[0]: fleets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(t, "source: {url: x}\nnotify: {chat: "+c.chat+"}\n", nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "tokenSecretXYZ") {
				t.Errorf("the error shows the URL's token: %v", err)
			}
		})
	}

	cfg, err := loadConfig(t, "source: {url: x}\nnotify: {chat: [{url_file: "+good+", min_severity: warning, fleets: [shop]}], slack: {webhook_url_file: "+good+", fleets: [web]}}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := notifyOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Routes) != 2 || opts.Routes[1].Sink.Name() != "discord" {
		t.Fatalf("routes %+v", opts.Routes)
	}
	if f := opts.Routes[1].Filter; len(f.Fleets) != 1 || f.Fleets[0] != "shop" || f.MinSeverity.String() != "warning" {
		t.Errorf("chat filter %+v", f)
	}
	if f := opts.Routes[0].Filter; len(f.Fleets) != 1 || f.Fleets[0] != "web" {
		t.Errorf("slack filter %+v", f)
	}
	if !slices.Contains(opts.Secrets, "dcTokenSecret0123456789") {
		t.Errorf("the URL's token is not a secret: %q", opts.Secrets)
	}
}
