package fleets

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Size limits for what the loader reads from the repository. They are
// checked before a file is read into memory.
const (
	maxComposeFileSize = 1 << 20 // per compose file
	maxDataFileSize    = 1 << 20 // per .env, env_file, label_file, secret or config file
)

var (
	errOutside  = errors.New("resolves outside the fleet directory")
	errTooLarge = errors.New("file too large")
)

// fleetTree is a fleet's directory: everything the fleet reads from the
// repository must resolve inside it, lexically and after symlinks.
type fleetTree struct {
	dir  string // absolute, clean
	real string // dir with symlinks resolved
}

func newFleetTree(dir string) (fleetTree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fleetTree{}, fmt.Errorf("fleet directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fleetTree{}, fmt.Errorf("fleet directory: %w", err)
	}
	return fleetTree{dir: abs, real: real}, nil
}

// resolve returns the absolute form of p (relative paths are relative to the
// fleet directory) or errOutside when p, or the target of a symlink on its
// way, lies outside the fleet directory. A path that does not exist is
// checked lexically only.
func (t fleetTree) resolve(p string) (string, error) {
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(t.dir, abs)
	}
	abs = filepath.Clean(abs)
	if !within(t.dir, abs) {
		return "", fmt.Errorf("%s: %w", p, errOutside)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err == nil && !within(t.real, real) {
		return "", fmt.Errorf("%s: symlink %w", p, errOutside)
	}
	return abs, nil
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// readFile reads p (already resolved inside the tree) if it is a regular
// file no larger than limit. The limit is enforced on the read too, so a
// file that grows after the size check cannot exhaust memory.
func readFile(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", filepath.Base(p))
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes, limit %d)", filepath.Base(p), errTooLarge, info.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w (limit %d)", filepath.Base(p), errTooLarge, limit)
	}
	return b, nil
}
