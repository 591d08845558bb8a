package fleets

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Size limits for what the loader reads from the repository. They are
// checked before a file is read into memory.
const (
	maxComposeFileSize = 1 << 20 // per compose file
	maxDataFileSize    = 1 << 20 // per .env, env_file, label_file, secret or config file
)

var (
	errOutside  = errors.New("resolves outside the repository")
	errTooLarge = errors.New("file too large")
)

// fleetTree is a fleet's directory inside its repository checkout: what
// the fleet reads from the repository must resolve inside the checkout,
// lexically and after symlinks; relative paths are relative to the fleet's
// directory, so `..` may reach the rest of the repository. The paths it
// resolves outside the fleet's own directory are recorded (outside), for
// the plan of a pull request, which cannot tell such a fleet unchanged by
// its directory alone.
type fleetTree struct {
	dir       string // absolute, clean
	real      string // dir with symlinks resolved
	bound     string // the checkout: absolute, clean; dir is inside it
	boundReal string // bound with symlinks resolved
	outside   *pathSet
}

// newFleetTree confines the fleet at dir to the checkout bound (dir
// itself when bound is empty).
func newFleetTree(dir, bound string) (fleetTree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fleetTree{}, fmt.Errorf("fleet directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fleetTree{}, fmt.Errorf("fleet directory: %w", err)
	}
	t := fleetTree{dir: abs, real: real, bound: abs, boundReal: real, outside: &pathSet{}}
	if bound != "" {
		if t.boundReal, err = filepath.EvalSymlinks(bound); err != nil {
			return fleetTree{}, fmt.Errorf("repository checkout: %w", err)
		}
		if !within(t.boundReal, real) {
			return fleetTree{}, fmt.Errorf("fleet directory %s is not inside the repository checkout %s", real, t.boundReal)
		}
		// Paths are built from dir, which the loader has resolved: check
		// them against the resolved checkout too.
		t.bound = t.boundReal
		if abs != real {
			if t.bound, err = filepath.Abs(bound); err != nil {
				return fleetTree{}, fmt.Errorf("repository checkout: %w", err)
			}
		}
	}
	return t, nil
}

// resolve returns the absolute form of p (relative paths are relative to the
// fleet directory) or errOutside when p, or the target of a symlink on its
// way, lies outside the checkout. A path that does not exist is checked
// as far as it resolves (see evalPath): a dangling symlink to a path
// outside the checkout is refused too, since creating or reading through
// it would reach there. A path that cannot be resolved (a loop, a
// directory it may not read) is refused.
func (t fleetTree) resolve(p string) (string, error) {
	abs := p
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(t.dir, abs)
	}
	abs = filepath.Clean(abs)
	if !within(t.bound, abs) {
		return "", fmt.Errorf("%s: %w", p, errOutside)
	}
	real, err := evalPath(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if !within(t.boundReal, real) {
		return "", fmt.Errorf("%s: symlink %w", p, errOutside)
	}
	if !within(t.dir, abs) || !within(t.real, real) {
		t.outside.add(abs)
	}
	return abs, nil
}

// maxLinks bounds the symlinks evalPath follows, as the kernel's
// MAXSYMLINKS does.
const maxLinks = 40

var errLinkLoop = errors.New("too many levels of symbolic links")

// evalPath returns the path the absolute, clean p reaches through its
// symlinks, as filepath.EvalSymlinks does, also when p does not exist: a
// missing tail is joined to what its existing parent resolves to, and a
// dangling symlink to what its target resolves to. Errors other than a
// missing path (a loop, a permission) are returned.
func evalPath(p string) (string, error) { return evalLinks(p, 0) }

func evalLinks(p string, links int) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err == nil {
		return real, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p, nil
	}
	dir, err := evalLinks(parent, links)
	if err != nil {
		return "", err
	}
	q := filepath.Join(dir, filepath.Base(p))
	info, err := os.Lstat(q)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return q, nil
	case err != nil:
		return "", err
	case info.Mode()&fs.ModeSymlink == 0:
		return q, nil
	case links >= maxLinks:
		return "", fmt.Errorf("%s: %w", p, errLinkLoop)
	}
	target, err := os.Readlink(q)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(dir, target)
	}
	return evalLinks(filepath.Clean(target), links+1)
}

// pathSet is a set of paths, safe for concurrent use.
type pathSet struct {
	mu    sync.Mutex
	paths []string
}

func (s *pathSet) add(p string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if !slices.Contains(s.paths, p) {
		s.paths = append(s.paths, p)
	}
	s.mu.Unlock()
}

// list returns the paths, sorted.
func (s *pathSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.paths))
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
	f, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
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

// openRegular opens p for reading if it is a regular file (symlinks
// followed). A named pipe or a device in a checkout must not hang the
// loader, which opening it for reading would (a FIFO blocks until a
// writer comes): p is checked before it is opened, and opened
// non-blocking and checked again, in case it was swapped in between.
func openRegular(p string) (*os.File, error) {
	if err := regular(p, os.Stat); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := regular(p, func(string) (os.FileInfo, error) { return f.Stat() }); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// regular returns an error naming p and its kind unless stat says p is a
// regular file.
func regular(p string, stat func(string) (os.FileInfo, error)) error {
	info, err := stat(p)
	if err != nil {
		return err
	}
	if k := fileKind(info.Mode()); k != "" {
		return fmt.Errorf("%s: %w (%s)", filepath.Base(p), errNotRegular, k)
	}
	return nil
}

var errNotRegular = errors.New("not a regular file")

// fileKind names what a mode that is not a regular file is: "" for a
// regular file.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symlink"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "an irregular file"
}
