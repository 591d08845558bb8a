package fleets

import (
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
)

// unsupported is a Compose attribute fleetd does not honour, with what to do
// instead. Silently ignoring one would run something other than what the
// file says, so each is an error.
type unsupported struct {
	path    string
	detect  func(any) bool // nil: presence alone
	message string
}

// swarmHonours lists the attributes only Swarm honours: refused for docker
// fleets, taken by swarm fleets (SwarmDeploy).
var swarmHonours = map[string]bool{
	"services.*.deploy.mode":                            true,
	"services.*.deploy.endpoint_mode":                   true,
	"services.*.deploy.placement.preferences":           true,
	"services.*.deploy.placement.max_replicas_per_node": true,
	"services.*.deploy.labels":                          true,
	"services.*.deploy.restart_policy.delay":            true,
	"services.*.deploy.restart_policy.window":           true,
	"services.*.deploy.resources.reservations.cpus":     true,
	"secrets.*.external":                                true,
	"configs.*.external":                                true,
}

const notYet = "not supported by fleetd"

// buildTakes is what a build: section may hold.
const buildTakes = "fleetd builds with context, dockerfile, args, target, labels, cache_from, network, extra_hosts, shm_size, one platforms entry, and, with BuildKit, secrets and ssh"

// buildRefused are the build: keys refused for a reason of their own.
var buildRefused = map[string]string{
	"additional_contexts": "fleetd sends one context from the repository: copy what the build needs into it",
	"tags":                "fleetd tags a built image itself, by its inputs (<image>:ctx-<hash>), and pushes none",
	"cache_to":            "fleetd keeps the build cache in the engine and exports none",
	"no_cache":            "fleetd builds only when the context or an option changed, with the engine's cache",
	"no_cache_filter":     "fleetd builds only when the context or an option changed, with the engine's cache",
	"pull":                "fleetd rebuilds only when the context or an option changed: name base images by tag or digest in the Dockerfile",
}

var unsupportedAttributes = buildUnsupported()

func buildUnsupported() []unsupported {
	list := []unsupported{
		{"jobs", nil, "jobs are containers run to completion on triggers, which fleetd does not run: a service with restart: no and depends_on service_completed_successfully runs once per deploy"},
		{"services.*.deploy.mode", notReplicated, "Swarm-only: every host the fleet targets runs deploy.replicas; select hosts with x-fleetd hosts/labels"},
		{"services.*.deploy.endpoint_mode", nil, "Swarm-only: replicas share the service name as a DNS alias on each network"},
		{"services.*.deploy.placement.preferences", nil, "Swarm-only: select hosts with constraints or x-fleetd hosts/labels"},
		{"services.*.deploy.placement.max_replicas_per_node", nil, "Swarm-only: deploy.replicas already counts per host"},
		{"services.*.deploy.labels", nil, "Swarm service labels have no container to go on: use labels"},
		{"services.*.deploy.restart_policy.delay", nil, "Swarm-only: Docker's restart policy backs off by itself"},
		{"services.*.deploy.restart_policy.window", nil, "Swarm-only: Docker's restart policy backs off by itself"},
		{"services.*.deploy.resources.reservations.generic_resources", nil, "Swarm-only: generic resources are advertised by Swarm nodes; on one engine reserve devices with deploy.resources.reservations.devices or gpus"},
		{"services.*.deploy.resources.reservations.cpus", nil, "Swarm-only scheduling hint: use cpu_shares"},
		{"services.*.external_links", nil, "an external link names a container fleetd did not create, and fleetd never changes one: put both on an external network (networks: {x: {external: true}})"},
		{"secrets.*.external", isTrue, "external secrets need Swarm: use file: or environment:"},
		{"configs.*.external", isTrue, "external configs need Swarm: use file:, content: or environment:"},
		{"secrets.*.driver", nil, "Swarm-only: use file: or environment:"},
		{"secrets.*.template_driver", nil, "Swarm-only"},
		{"configs.*.template_driver", nil, "Swarm-only"},
		{"services.*.build.dockerfile_inline", nil, "write the Dockerfile into the build context"},
	}
	for i := range list {
		if swarmHonours[list[i].path] {
			list[i].message += " (or run the fleet on Swarm: x-fleetd engine: swarm)"
		}
	}
	for _, key := range []string{"ulimits", "isolation", "privileged", "entitlements", "provenance", "sbom"} {
		list = append(list, unsupported{"services.*.build." + key, nil, buildTakes})
	}
	for _, key := range sortedKeys(buildRefused) {
		list = append(list, unsupported{"services.*.build." + key, nil, buildRefused[key] + " (" + buildTakes + ")"})
	}
	refusedFor := map[string]string{
		"pre_start":          "a pre_start hook is a one-off container run to completion before the service starts, and fleetd runs none: make it a service the others depend on with condition service_completed_successfully, or run the command from the image's entrypoint",
		"umask":              "the Docker Engine API takes no umask: set it in the image's entrypoint",
		"use_api_socket":     "it hands the container the Docker socket and this host's registry credentials: bind /var/run/docker.sock in volumes if the service must drive Docker (and allow it in the host's policy.deny_binds)",
		"provider":           "a provider service is run by a docker compose plugin, not by the engine",
		"models":             "models are served by Docker Model Runner, outside the engine",
		"pull_refresh_after": "pull_policy refresh is not supported: use pull_policy always, or a new tag",
		"volume_driver":      "name the driver on the volume (volumes: {x: {driver: …}})",
	}
	for _, key := range sortedKeys(refusedFor) {
		list = append(list, unsupported{"services.*." + key, nil, refusedFor[key]})
	}
	list = append(list, unsupported{"services.*.credential_spec", nil,
		"Windows containers only (a group managed service account); fleetd runs Linux containers"})
	return list
}

// compose-go's check matches every node of the model against every
// pattern, splitting path strings each time; with one pattern per attribute
// that was a third of a load's CPU. So compose-go gets one pattern per top
// level ("include", "jobs") or per entry of a section ("services.*",
// "secrets.*", "configs.*"), whose Detect looks the attributes up in the
// entry directly, and unsupportedFindings expands a flagged entry into its
// attributes.
var (
	unsupportedPatterns = toPatterns(unsupportedAttributes)
	byEntry             = entryRules(unsupportedAttributes)
)

// entryRule is an unsupported attribute below a section entry: parts is
// its path relative to the entry ("deploy", "mode").
type entryRule struct {
	parts  []string
	detect func(any) bool
}

func entryRules(list []unsupported) map[string][]entryRule {
	out := map[string][]entryRule{}
	for _, u := range list {
		parts := strings.Split(u.path, ".")
		if len(parts) > 2 && parts[1] == "*" {
			out[parts[0]] = append(out[parts[0]], entryRule{parts: parts[2:], detect: u.detect})
		}
	}
	return out
}

func toPatterns(list []unsupported) []loader.UnsupportedAttributePattern {
	var out []loader.UnsupportedAttributePattern
	sections := map[string]bool{}
	for _, u := range list {
		section, _, nested := strings.Cut(u.path, ".*.")
		switch {
		case !nested:
			out = append(out, loader.UnsupportedAttributePattern{Path: tree.Path(u.path), Detect: u.detect})
		case !sections[section]:
			sections[section] = true
			out = append(out, loader.UnsupportedAttributePattern{Path: tree.Path(section + ".*"),
				Detect: func(v any) bool {
					return len(entryFindings(section, v)) > 0 || (section == "services" && len(zeroMonitors(v)) > 0)
				}})
		}
	}
	return out
}

// entryFindings returns the paths, relative to a section entry, of the
// unsupported attributes it sets.
func entryFindings(section string, entry any) []string {
	var out []string
	for _, rule := range byEntry[section] {
		v, ok := lookup(entry, rule.parts)
		if ok && (rule.detect == nil || rule.detect(v)) {
			out = append(out, strings.Join(rule.parts, "."))
		}
	}
	return out
}

func lookup(v any, parts []string) (any, bool) {
	for _, p := range parts {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

// monitorPaths are where a service sets a rollout's monitor window.
var monitorPaths = map[string][]string{
	"update_config":   {"deploy", "update_config", "monitor"},
	"rollback_config": {"deploy", "rollback_config", "monitor"},
}

// zeroMonitors returns which of a raw service entry's update_config and
// rollback_config set monitor to zero ("0s", "0", 0). compose-go's model
// reads an explicit zero as unset (UpdateConfig.Monitor is no pointer), so
// the raw entry is the only place that tells "no monitoring window" from
// "the default one". The services.* pattern sees every entry, so the
// finding rides on compose-go's unsupported-attributes walk.
func zeroMonitors(entry any) []string {
	var out []string
	for _, key := range sortedKeys(monitorPaths) {
		if v, ok := lookup(entry, monitorPaths[key]); ok && isZeroDuration(v) {
			out = append(out, key)
		}
	}
	return out
}

// isZeroDuration reports whether a raw duration value is zero.
func isZeroDuration(v any) bool {
	switch v := v.(type) {
	case int:
		return v == 0
	case int64:
		return v == 0
	case uint64:
		return v == 0
	case float64:
		return v == 0
	case string:
		if strings.TrimSpace(v) == "0" {
			return true
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		return err == nil && d == 0
	}
	return false
}

// explicitZeroMonitors returns, from compose-go's findings, the services
// whose update_config or rollback_config set monitor to zero, keyed
// "<service>.update_config" or "<service>.rollback_config".
func explicitZeroMonitors(found []loader.UnsupportedAttribute) map[string]bool {
	out := map[string]bool{}
	for _, f := range found {
		parts := f.Path.Parts()
		if len(parts) != 2 || parts[0] != "services" {
			continue
		}
		for _, key := range zeroMonitors(f.Value) {
			out[parts[1]+"."+key] = true
		}
	}
	return out
}

// unsupportedFindings turns compose-go's findings into the paths of the
// unsupported attributes, expanding a flagged section entry.
func unsupportedFindings(found []loader.UnsupportedAttribute) []tree.Path {
	var out []tree.Path
	for _, f := range found {
		parts := f.Path.Parts()
		if len(parts) != 2 || byEntry[parts[0]] == nil {
			out = append(out, f.Path)
			continue
		}
		for _, rel := range entryFindings(parts[0], f.Value) {
			out = append(out, tree.Path(string(f.Path)+"."+rel))
		}
	}
	return out
}

// unsupportedMessage returns the message for a finding at path in a fleet
// on engine, and false when the engine honours the attribute.
func unsupportedMessage(path tree.Path, engine string) (string, bool) {
	for _, u := range unsupportedAttributes {
		if path.Matches(tree.Path(u.path)) {
			return u.message, !(swarmHonours[u.path] && engine == EngineSwarm)
		}
	}
	return notYet, true
}

func notReplicated(v any) bool { s, _ := v.(string); return s != "" && s != "replicated" }

func isTrue(v any) bool { b, _ := v.(bool); return b }
