package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/client"
)

// ImageCheck is what the registry says of a tag, next to the digest the
// local image of that tag came from.
type ImageCheck struct {
	Ref string
	// Running is the digest the local image was pulled at (its
	// RepoDigests); "" when it has none (built or loaded here) or is not
	// here: such a tag is not checked, and Remote stays "".
	Running string
	// Remote is the digest the registry gives for the tag now.
	Remote string
	Err    error
}

// resolveTimeout bounds one registry question.
const resolveTimeout = 10 * time.Second

// ResolveDigest asks ref's registry, through the engine, which manifest
// digest its tag names now, with the host's credentials for that registry
// (as for pulls). The engine fetches the manifest's descriptor only:
// nothing is pulled.
func ResolveDigest(ctx context.Context, cli client.DistributionAPIClient, configDir, ref string) (string, error) {
	auth, err := RegistryAuth(configDir, ref)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	info, err := cli.DistributionInspect(ctx, ref, auth)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref, err)
	}
	if info.Descriptor.Digest == "" {
		return "", fmt.Errorf("resolve %s: the registry gave no digest", ref)
	}
	return info.Descriptor.Digest.String(), nil
}

// CheckImage compares the digest the local image of tag ref came from with
// the one its registry gives now. A reference by digest, or a local image
// without a digest of ref's repository (built or loaded here, or absent),
// is not asked about: the registry is asked only when there is something
// to compare with.
func (d *Docker) CheckImage(ctx context.Context, ref string) ImageCheck {
	out := ImageCheck{Ref: ref}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		out.Err = fmt.Errorf("image %s: %w", ref, err)
		return out
	}
	if _, pinned := named.(reference.Canonical); pinned {
		return out
	}
	img, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case isNotFound(err):
		return out
	case err != nil:
		out.Err = fmt.Errorf("inspect image %s: %w", ref, err)
		return out
	}
	out.Running = repoDigest(named, img.RepoDigests)
	if out.Running == "" {
		return out
	}
	out.Remote, out.Err = ResolveDigest(ctx, d.cli, d.dockerConfigDir, ref)
	return out
}

// repoDigest returns the digest among an image's RepoDigests
// ("name@sha256:…") that belongs to named's repository, or "".
func repoDigest(named reference.Named, repoDigests []string) string {
	for _, rd := range repoDigests {
		r, err := reference.ParseNormalizedNamed(rd)
		if err != nil {
			continue
		}
		if c, ok := r.(reference.Canonical); ok && r.Name() == named.Name() {
			return c.Digest().String()
		}
	}
	return ""
}
