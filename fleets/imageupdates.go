package fleets

import "strings"

// What the agent does when the registry's digest for a service's tag
// moves (x-fleetd.image_updates).
const (
	// ImageUpdatesNotify reports the update (status, metrics, one
	// notification per new digest) and changes nothing: the default.
	ImageUpdatesNotify = "notify"
	// ImageUpdatesApply also pulls the tag within the sync windows and
	// applies the fleet: the image drift rolls out through the service's
	// health-gated rollout.
	ImageUpdatesApply = "apply"
	// ImageUpdatesOff does not ask the registry about the service's tag.
	ImageUpdatesOff = "off"
)

var imageUpdatesValues = []string{ImageUpdatesApply, ImageUpdatesNotify, ImageUpdatesOff}

// imageUpdates reads a service's x-fleetd.image_updates. Apply is refused
// where it could do nothing: an image fleetd builds or may not pull, a tag
// pinned to a digest, a swarm fleet (whose tags are pinned to digests at
// each revision).
func (c *converter) imageUpdates(svc Service, raw string) string {
	const field = extensionKey + ".image_updates"
	switch raw {
	case "":
		return ImageUpdatesNotify
	case ImageUpdatesNotify, ImageUpdatesOff:
		return raw
	case ImageUpdatesApply:
	default:
		c.r.servicef(svc.Name, field, "%q: want %s", raw, strings.Join(imageUpdatesValues, ", "))
		return ImageUpdatesNotify
	}
	switch {
	case svc.Build != nil || svc.PullPolicy == "build":
		c.r.servicef(svc.Name, field, "apply needs an image pulled from a registry; this service builds its image")
	case svc.PullPolicy == "never":
		c.r.servicef(svc.Name, field, "apply pulls the new image, and pull_policy is never")
	case strings.Contains(svc.Spec.Image, "@"):
		c.r.servicef(svc.Name, field, "apply follows a tag; image %s is pinned to a digest", svc.Spec.Image)
	case c.fleet.Engine == EngineSwarm:
		c.r.servicef(svc.Name, field, "apply is for docker fleets; a swarm fleet pins its tags to digests at each revision")
	}
	return raw
}
