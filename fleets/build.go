package fleets

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Build context limits: hashing runs on every load, so a context that
// would make a load slow is refused rather than silently hashed.
const (
	maxContextFiles = 10_000
	maxContextBytes = 256 << 20
)

const defaultDockerfile = "Dockerfile"

// build converts a build: section and hashes its context. The context has
// been confined to the fleet's tree by checkProjectFiles.
func (c *converter) build(s types.ServiceConfig) *Build {
	b := &Build{
		Context:    s.Build.Context,
		Dockerfile: cmpOr(s.Build.Dockerfile, defaultDockerfile),
		Args:       environment(s.Build.Args),
		Target:     s.Build.Target,
	}
	c.buildOptions(s, b)
	rel, err := filepath.Rel(c.absRoot, b.Context)
	if err != nil {
		c.r.servicef(s.Name, "build.context", "%s", err)
		return nil
	}
	b.ContextDir = filepath.ToSlash(rel)
	sum, err := contextHash(b)
	if err != nil {
		c.r.servicef(s.Name, "build.context", "%s", err)
		return nil
	}
	b.ContextHash = sum
	return b
}

// buildImage tags a built image by its content: <repository>:ctx-<12 hex>,
// the repository being image: without its tag when given, else
// <fleet>-<service> as Compose names built images.
func buildImage(fleet string, s types.ServiceConfig, contextHash string) string {
	repo := fleet + "-" + s.Name
	if s.Image != "" {
		repo = imageRepository(s.Image)
	}
	return repo + ":ctx-" + contextHash[:12]
}

// imageRepository strips a tag or digest from an image reference; a colon
// before the last slash belongs to a registry's port.
func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// contextHash is the hex sha256 over the Dockerfile name, the build args
// (sorted), the target, the options that change the image (hashOptions)
// and, for every file Docker would send (the .dockerignore honoured with
// Docker's own pattern matcher), its slash path, mode and contents in path
// order. The Dockerfile and .dockerignore are always included, as Docker
// always sends them.
func contextHash(b *Build) (string, error) {
	h := sha256.New()
	field(h, "dockerfile", b.Dockerfile)
	for _, k := range sortedKeys(b.Args) {
		field(h, "arg", k+"="+b.Args[k])
	}
	field(h, "target", b.Target)
	hashOptions(h, b)
	// The Dockerfile may live outside the context; hash it by itself too.
	if err := hashFile(h, dockerfilePath(b)); err != nil {
		return "", fmt.Errorf("dockerfile: %w", err)
	}
	pm, err := dockerignore(b.Context)
	if err != nil {
		return "", err
	}
	w := contextWalker{h: h, root: b.Context, pm: pm, keep: map[string]bool{
		filepath.ToSlash(filepath.Clean(b.Dockerfile)): true, ".dockerignore": true,
	}}
	if err := filepath.WalkDir(b.Context, w.visit); err != nil {
		return "", fmt.Errorf("hash build context: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashOptions hashes the options that change the image. Each is written
// only when set, so that a build without them keeps the tag it had before
// fleetd knew them. CacheFrom is left out: it says where cached layers may
// come from, not what the image holds. A secret counts by its digest, an
// SSH key by its ID and path.
func hashOptions(h hash.Hash, b *Build) {
	for _, k := range sortedKeys(b.Labels) {
		field(h, "label", k+"="+b.Labels[k])
	}
	if b.Network != "" {
		field(h, "network", b.Network)
	}
	if b.Platform != "" {
		field(h, "platform", b.Platform)
	}
	if b.ShmSize != 0 {
		field(h, "shm_size", itoa(b.ShmSize))
	}
	for _, host := range b.ExtraHosts {
		field(h, "extra_host", host)
	}
	for _, s := range b.Secrets {
		field(h, "secret", s.ID+"="+s.Digest)
	}
	for _, s := range b.SSH {
		field(h, "ssh", s.ID+"="+s.Source)
	}
}

type contextWalker struct {
	h     hash.Hash
	root  string
	pm    *patternmatcher.PatternMatcher
	keep  map[string]bool
	files int
	bytes int64
}

func (w *contextWalker) visit(p string, d fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(w.root, p)
	if err != nil || rel == "." {
		return err
	}
	slash := filepath.ToSlash(rel)
	if w.pm != nil && !w.keep[slash] {
		ignored, err := w.pm.MatchesOrParentMatches(slash)
		if err != nil {
			return err
		}
		if ignored {
			if d.IsDir() && !w.pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
	}
	return w.add(p, slash, d)
}

func (w *contextWalker) add(p, slash string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	w.files++
	if w.files > maxContextFiles {
		return fmt.Errorf("more than %d files: add a .dockerignore", maxContextFiles)
	}
	field(w.h, "path", slash)
	field(w.h, "mode", info.Mode().String())
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		field(w.h, "link", target)
	case info.Mode().IsRegular():
		w.bytes += info.Size()
		if w.bytes > maxContextBytes {
			return fmt.Errorf("more than %d bytes: add a .dockerignore", maxContextBytes)
		}
		return hashFile(w.h, p)
	case !info.IsDir():
		// A named pipe, socket or device: Docker would send it as what
		// it is, but nothing a build needs is one, and reading one hangs.
		return fmt.Errorf("%s: %s cannot be in a build context: leave it out with a .dockerignore", slash, fileKind(info.Mode()))
	}
	return nil
}

// hashFile hashes p's size and contents; p must be a regular file.
func hashFile(h hash.Hash, p string) error {
	f, err := openRegular(p)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(info.Size()))
	h.Write(n[:])
	_, err = io.CopyN(h, f, info.Size())
	return err
}

// field writes a length-prefixed name and value, so that no two
// different inputs hash alike.
func field(h hash.Hash, name, value string) {
	var n [8]byte
	for _, s := range []string{name, value} {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
}

func dockerignore(dir string) (*patternmatcher.PatternMatcher, error) {
	data, err := readFile(filepath.Join(dir, ".dockerignore"), maxDataFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf(".dockerignore: %w", err)
	}
	return pm, nil
}

// dockerfilePath is the Dockerfile on disk: relative to the context unless
// absolute.
func dockerfilePath(b *Build) string {
	if filepath.IsAbs(b.Dockerfile) {
		return b.Dockerfile
	}
	return filepath.Join(b.Context, b.Dockerfile)
}
