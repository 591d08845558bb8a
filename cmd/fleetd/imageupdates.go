package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine"
)

// imageUpdatesConfig is the image update check (docs/image-updates.md):
// how often the registries are asked which digest each tag names now.
type imageUpdatesConfig struct {
	// Interval is a duration of at least 1m, or "off"; default 6h.
	Interval string `yaml:"interval"`
}

// minImageCheck keeps the check from hammering registries (Docker Hub
// counts manifest requests).
const minImageCheck = time.Minute

// interval returns the check's period; 0 when it is off.
func (c imageUpdatesConfig) interval() (time.Duration, error) {
	switch c.Interval {
	case "":
		return 6 * time.Hour, nil
	case "off":
		return 0, nil
	}
	d, err := time.ParseDuration(c.Interval)
	if err != nil || d < minImageCheck {
		return 0, fmt.Errorf("image_updates.interval: %q is not \"off\" or a duration of at least %s", c.Interval, minImageCheck)
	}
	return d, nil
}

// checkImages asks the registry of every tag in turn (one at a time: a
// check is rare, and registries rate-limit).
func checkImages(eng *engine.Docker) func(ctx context.Context, refs []string) []agent.ImageCheck {
	return func(ctx context.Context, refs []string) []agent.ImageCheck {
		out := make([]agent.ImageCheck, 0, len(refs))
		for _, ref := range refs {
			c := eng.CheckImage(ctx, ref)
			ic := agent.ImageCheck{Ref: c.Ref, Running: c.Running, Remote: c.Remote}
			if c.Err != nil {
				ic.Err = c.Err.Error()
			}
			out = append(out, ic)
		}
		return out
	}
}
