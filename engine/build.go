package engine

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// BuildImage builds b, tags it ref and labels it io.fleetd.managed=true
// (over b's own labels); it returns the image ID. It builds with BuildKit,
// through a session as `docker build` does (buildKit), when the engine has
// it, and with the classic builder when the engine lacks it, the session
// cannot be opened, or DOCKER_BUILDKIT=0 says so; a build that needs
// BuildKit (secrets, ssh) then fails, naming the field. logf (which may be
// nil) is handed the build's output line by line, with the contents of b's
// secrets redacted. The build context is streamed as a tar that honours
// .dockerignore.
func (d *Docker) BuildImage(ctx context.Context, b fleets.Build, ref string, logf func(string)) (_ string, err error) {
	defer classified(&err)
	defer func() {
		if err != nil {
			err = fmt.Errorf("build %s from %s: %w", ref, b.ContextDir, err)
		}
	}()
	secrets, err := readBuildSecrets(b)
	if err != nil {
		return "", err
	}
	logf = redacting(logf, secrets)
	why, err := d.classicReason(ctx, b)
	if err != nil {
		return "", err
	}
	if why == "" {
		id, err := d.buildKit(ctx, b, ref, secrets, logf)
		if !errors.Is(err, errNoSession) || ctx.Err() != nil {
			return id, redactErr(err, secrets)
		}
		why = err.Error()
	}
	if err := needsBuildKit(b, ref, why); err != nil {
		return "", err
	}
	logf("classic builder: " + why)
	return d.buildClassic(ctx, b, ref, logf)
}

// needsBuildKit refuses, naming the field, a build the classic builder
// cannot do.
func needsBuildKit(b fleets.Build, ref, why string) error {
	field := ""
	switch {
	case len(b.Secrets) > 0:
		field = "build.secrets"
	case len(b.SSH) > 0:
		field = "build.ssh"
	default:
		return nil
	}
	return fault.New(fault.Permanent, fault.InvalidSpec, ref,
		fmt.Errorf("%s needs BuildKit, and this build falls back to the classic builder: %s", field, why))
}

// buildClassic builds b with the classic builder.
func (d *Docker) buildClassic(ctx context.Context, b fleets.Build, ref string, logf func(string)) (string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarContext(pw, b.Context, cmp.Or(b.Dockerfile, "Dockerfile"))) }()
	defer pr.Close()
	opts := buildOptions(b, ref)
	opts.Remove, opts.ForceRemove, opts.Version = true, true, build.BuilderV1
	resp, err := d.cli.ImageBuild(ctx, pr, opts)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	res, err := readBuildStream(resp.Body, newTraceLog(logf))
	if err != nil {
		return "", err
	}
	if res.ImageID != "" {
		return res.ImageID, nil
	}
	return d.ImageID(ctx, ref)
}

// buildOptions are the options of b both builders take.
func buildOptions(b fleets.Build, ref string) build.ImageBuildOptions {
	labels := maps.Clone(b.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[fleets.LabelManaged] = "true"
	return build.ImageBuildOptions{
		Tags:        []string{ref},
		Dockerfile:  filepath.ToSlash(cmp.Or(b.Dockerfile, "Dockerfile")),
		BuildArgs:   buildArgs(b.Args),
		Target:      b.Target,
		Labels:      labels,
		CacheFrom:   b.CacheFrom,
		NetworkMode: b.Network,
		ExtraHosts:  b.ExtraHosts,
		ShmSize:     b.ShmSize,
		Platform:    b.Platform,
	}
}

func buildArgs(args map[string]string) map[string]*string {
	out := make(map[string]*string, len(args))
	for k, v := range args {
		out[k] = &v
	}
	return out
}

// tarContext writes the build context dir to w, skipping what .dockerignore
// excludes except the Dockerfile and .dockerignore themselves (the builder
// needs them, as with `docker build`). Symlinks are archived as links, never
// followed.
func tarContext(w io.Writer, dir, dockerfile string) error {
	pm, err := readDockerignore(dir)
	if err != nil {
		return err
	}
	keep := map[string]bool{filepath.ToSlash(filepath.Clean(dockerfile)): true, ".dockerignore": true}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip, err := ignored(pm, rel, keep); err != nil || skip {
			if err == nil && entry.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return err
		}
		return addToTar(tw, path, rel, entry)
	})
	if err != nil {
		return fmt.Errorf("archive build context %s: %w", dir, err)
	}
	return tw.Close()
}

func readDockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return patternmatcher.New(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return patternmatcher.New(patterns)
}

func ignored(pm *patternmatcher.PatternMatcher, rel string, keep map[string]bool) (bool, error) {
	if keep[rel] {
		return false, nil
	}
	return pm.MatchesOrParentMatches(rel)
}

func addToTar(tw *tar.Writer, path, rel string, entry fs.DirEntry) error {
	info, err := entry.Info()
	if err != nil {
		return err
	}
	var link string
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	return copyFile(tw, path)
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// BuildFiles builds an image tagged ref from files held in memory (a
// Dockerfile among them) with the classic builder, and returns its ID:
// what fleetd builds of its own, such as the ingress image from its
// binary.
func BuildFiles(ctx context.Context, cli *client.Client, ref string, files map[string][]byte, mode map[string]int64) (_ string, err error) {
	defer classified(&err)
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for _, name := range slices.Sorted(maps.Keys(files)) {
			m := cmp.Or(mode[name], 0o644)
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: m, Size: int64(len(files[name]))}); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := tw.Write(files[name]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	defer pr.Close()
	resp, err := cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Labels: map[string]string{fleets.LabelManaged: "true"}, Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	defer resp.Body.Close()
	res, err := readStream(resp.Body)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", ref, err)
	}
	if res.ImageID != "" {
		return res.ImageID, nil
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", ref, err)
	}
	return img.ID, nil
}
