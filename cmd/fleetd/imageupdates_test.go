package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
)

func TestImageUpdatesConfig(t *testing.T) {
	for _, c := range []struct {
		text string
		want time.Duration
		err  string
	}{
		{"source: {url: x}\n", 6 * time.Hour, ""},
		{"source: {url: x}\nimage_updates: {interval: 30m}\n", 30 * time.Minute, ""},
		{"source: {url: x}\nimage_updates: {interval: \"off\"}\n", 0, ""},
		{"source: {url: x}\nimage_updates: {interval: 10s}\n", 0, `image_updates.interval: "10s" is not "off" or a duration of at least 1m0s`},
		{"source: {url: x}\nimage_updates: {interval: daily}\n", 0, `image_updates.interval: "daily"`},
		{"source: {url: x}\nimage_updates: {every: 1h}\n", 0, "unknown key image_updates.every"},
	} {
		cfg, err := loadConfig(t, c.text, nil)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err = %v, want %q", c.text, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		ac, err := agentConfig(cfg, fleets.Host{Name: "h1"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if ac.Rules.ImageCheck != c.want {
			t.Errorf("%q: ImageCheck %s, want %s", c.text, ac.Rules.ImageCheck, c.want)
		}
	}
}
