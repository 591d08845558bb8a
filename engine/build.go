package engine

import (
	"archive/tar"
	"bytes"
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
	"syscall"

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
	return d.builtImage(ctx, resp.Body, ref, logf)
}

// builtImage reads a build's stream (either builder's) to its end, handing
// its lines to logf, and returns the image built: the ID the stream names,
// else the one ref now resolves to.
func (d *Docker) builtImage(ctx context.Context, stream io.Reader, ref string, logf func(string)) (string, error) {
	res, err := readBuildStream(stream, newTraceLog(logf))
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

// maxDockerignore bounds the .dockerignore read, as the loader does.
const maxDockerignore = 1 << 20

// readDockerignore reads dir's .dockerignore. The loader confined it to
// the repository and checked it is a regular file; it is checked again
// here, as the build reads the tree later, and never read past its bound.
func readDockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	p := filepath.Join(dir, ".dockerignore")
	f, err := openRegular(p)
	if errors.Is(err, fs.ErrNotExist) {
		return patternmatcher.New(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDockerignore+1))
	if err == nil && len(data) > maxDockerignore {
		err = fmt.Errorf("%s: larger than %d bytes", p, maxDockerignore)
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
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
	switch m := info.Mode(); {
	case m&fs.ModeSymlink != 0:
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	case !m.IsRegular() && !m.IsDir():
		// Nothing a build needs is a pipe, socket or device, and
		// reading one hangs: refused, as the loader refuses it.
		return fmt.Errorf("%s: not a regular file, directory or symlink (mode %s): leave it out of the build context with a .dockerignore", rel, m)
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
	return copyFile(tw, path, hdr.Size)
}

// copyFile copies the first size bytes of the regular file path: what the
// tar header announced, even if the file changed since.
func copyFile(w io.Writer, path string, size int64) error {
	f, err := openRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(w, f, size)
	return err
}

// openRegular opens path for reading if it is a regular file, without
// blocking on a named pipe swapped in for it.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file (mode %s)", path, info.Mode())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
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
