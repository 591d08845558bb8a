package fleets

import (
	"cmp"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// BuildSecret is a build secret (build.secrets), which a Dockerfile reads
// with RUN --mount=type=secret,id=<ID>; BuildKit only. Its contents enter
// neither JSON, a label nor a log: only Digest, which is part of the
// build's hash. The engine reads them at build time from Source (a file
// in the fleet's tree) or Content (a secret from environment:).
type BuildSecret struct {
	ID      string      `json:"id"`     // target, else the secret's key
	Name    string      `json:"secret"` // the top-level secrets: key
	Digest  string      `json:"digest"`
	Source  string      `json:"-"`
	Content SecretBytes `json:"-"`
}

// BuildSSH is an SSH agent or key a build may use (build.ssh), which a
// Dockerfile reads with RUN --mount=type=ssh,id=<ID>; BuildKit only.
// Without a path it forwards the agent at fleetd's $SSH_AUTH_SOCK.
type BuildSSH struct {
	ID string `json:"id"`
	// Source is the path as the model shows it: repo:<path relative to
	// the repository> for one in the fleet's tree, else the host's path.
	Source string `json:"path,omitempty"`
	Path   string `json:"-"` // the socket or key file on disk
}

// buildOptions converts the build: options besides the context, Dockerfile,
// args and target into b.
func (c *converter) buildOptions(s types.ServiceConfig, b *Build) {
	cfg := s.Build
	b.Labels = mapOrNil(cfg.Labels)
	b.CacheFrom = c.cacheFrom(s.Name, cfg.CacheFrom)
	b.Network = cfg.Network
	b.ExtraHosts = buildHosts(cfg.ExtraHosts)
	b.ShmSize = int64(cfg.ShmSize)
	b.Platform = c.buildPlatform(s)
	b.Secrets = c.buildSecrets(s)
	b.SSH = c.buildSSH(s)
}

// cacheFrom takes image references, and buildx's type=registry,ref=<image>
// spelling of one; other cache sources need buildx.
func (c *converter) cacheFrom(service string, entries []string) []string {
	var out []string
	for i, e := range entries {
		if !strings.Contains(e, "=") {
			out = append(out, e)
			continue
		}
		ref, ok := registryCacheRef(e)
		if !ok {
			c.r.servicef(service, "build.cache_from."+itoa(int64(i)), "%q: fleetd imports cache from an image only (an image reference, or type=registry,ref=<image>)", e)
			continue
		}
		out = append(out, ref)
	}
	return out
}

func registryCacheRef(entry string) (string, bool) {
	var ref string
	for _, kv := range strings.Split(entry, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch {
		case k == "type" && v == "registry":
		case k == "ref" && v != "":
			ref = v
		default:
			return "", false
		}
	}
	return ref, ref != ""
}

// buildHosts renders extra_hosts as the engine takes them, "host:ip",
// sorted.
func buildHosts(hosts types.HostsList) []string {
	var out []string
	for host, ips := range hosts {
		for _, ip := range ips {
			out = append(out, host+":"+ip)
		}
	}
	slices.Sort(out)
	return out
}

var platformPattern = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_.]+)?$`)

// buildPlatform is the one platform fleetd builds for: build.platforms'
// only entry, else the service's platform. A host runs one image per
// service, so a multi-platform build has nowhere to go.
func (c *converter) buildPlatform(s types.ServiceConfig) string {
	platforms := s.Build.Platforms
	switch {
	case len(platforms) > 1:
		c.r.servicef(s.Name, "build.platforms", "%d platforms: fleetd builds one image for the host, name one platform (or none, for the engine's own)", len(platforms))
		return ""
	case len(platforms) == 0:
		return s.Platform
	}
	p := platforms[0]
	switch {
	case !platformPattern.MatchString(p):
		c.r.servicef(s.Name, "build.platforms", "%q: want os/arch or os/arch/variant, as linux/arm64", p)
		return ""
	case s.Platform != "" && s.Platform != p:
		c.r.servicef(s.Name, "build.platforms", "%s does not include the service's platform %s", p, s.Platform)
		return ""
	}
	return p
}

// buildSecrets converts build.secrets: each refers to a top-level secret,
// read (within the size limit; checkProjectFiles confined its file) and
// represented by its digest.
func (c *converter) buildSecrets(s types.ServiceConfig) []BuildSecret {
	var out []BuildSecret
	for i, ref := range s.Build.Secrets {
		field := "build.secrets." + itoa(int64(i))
		obj, ok := c.project.Secrets[ref.Source]
		if !ok {
			c.r.servicef(s.Name, field, "undefined secret %q: declare it under the top-level secrets", ref.Source)
			continue
		}
		fr := c.fileRef(fileObject{"secrets", ref.Source, types.FileObjectConfig(obj)}, "", nil)
		if fr.Digest == "" {
			continue // reported by fileRef, or external (refused elsewhere)
		}
		out = append(out, BuildSecret{
			ID: cmpOr(ref.Target, ref.Source), Name: ref.Source, Digest: fr.Digest,
			Source: fr.Source, Content: fr.Content,
		})
	}
	slices.SortFunc(out, func(a, b BuildSecret) int { return cmp.Compare(a.ID, b.ID) })
	for i := 1; i < len(out); i++ {
		if out[i].ID == out[i-1].ID {
			c.r.servicef(s.Name, "build.secrets", "two secrets with the id %q: give one a target", out[i].ID)
		}
	}
	return out
}

// buildSSH converts build.ssh. A path in the repository checkout is
// confined like every file the fleet reads; any other absolute path is
// the host's (a key or agent socket the operator put there) and kept.
func (c *converter) buildSSH(s types.ServiceConfig) []BuildSSH {
	var out []BuildSSH
	for _, key := range s.Build.SSH {
		ssh := BuildSSH{ID: cmpOr(key.ID, "default"), Source: key.Path, Path: key.Path}
		if key.Path != "" && (!filepath.IsAbs(key.Path) || within(c.ft.bound, key.Path)) {
			abs, err := c.ft.resolve(key.Path)
			if err != nil {
				c.r.servicef(s.Name, "build.ssh."+ssh.ID, "%s", err)
				continue
			}
			rel, _ := filepath.Rel(c.absRoot, abs)
			ssh.Source, ssh.Path = RepoBindPrefix+filepath.ToSlash(rel), abs
		}
		out = append(out, ssh)
	}
	slices.SortFunc(out, func(a, b BuildSSH) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
