package main

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseCron: no schedule or window expression makes fleetd panic;
// a parsed one has a next time.
func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 9-17 * * 1-5", "@hourly", "@every 1h", "CRON_TZ=", "TZ=", "CRON_TZ=UTC 0 9 * * *",
		"TZ=Europe/Paris @daily", "60 * * * *", "* * * *", "", "CRON_TZ=Nowhere/Else * * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		sched, err := parseCron(spec)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid cron expression") {
				t.Fatalf("error %q does not say what is wrong", err)
			}
			return
		}
		if sched == nil {
			t.Fatal("no error and no schedule")
		}
		sched.Next(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	})
}

// FuzzConfig: no configuration file makes fleetd panic; every refusal
// names the file; what parses goes through defaults and validation.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"source: {url: x}\n",
		"source: {url: x, intervall: 1m}\n",
		"source: {url: x, schedule: 'CRON_TZ='}\n",
		"source: {url: x, windows: ['TZ=', '* 9-17 * * 1-5']}\nreconcile: {parallelism: many}\n",
		"host: {name: h, labels: {a: b}}\nswarm: {enabled: true, lease: {duration: 1s}}\ningress: {access_log: true}\n",
		"notify: {webhooks: [{url: 'http://127.0.0.1:1/x', min_severity: loud}]}\n",
		"- a\n- b\n", ":\n", "source: &a {url: *a}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := decodeConfig("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config fuzz.yaml: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		cfg.applyDefaults()
		_ = cfg.validate()
	})
}
