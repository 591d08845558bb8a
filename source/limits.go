package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Limits bound what a commit's tree may expand to on disk: a small
// repository can hold a blob that is huge once inflated (issue 17: 420 KB
// became a 268 MB file). A zero field takes its default (DefaultLimits).
type Limits struct {
	MaxFileSize  int64 // bytes of one file (a symlink counts its target's length)
	MaxFiles     int   // files and symlinks in the tree
	MaxTotalSize int64 // bytes of all files together
}

// DefaultLimits are generous for a repository of Compose files, their
// configuration and build contexts, and small enough that one commit
// cannot fill a host's disk.
var DefaultLimits = Limits{MaxFileSize: 64 << 20, MaxFiles: 100_000, MaxTotalSize: 1 << 30}

// ErrTooLarge: a commit's tree is over Limits. Retrying the same commit
// cannot help; a new commit can: Sync refuses such a head (a
// *RefusedError with ReasonTooLarge) and keeps the previous revision.
var ErrTooLarge = errors.New("checkout over the limits")

// ReasonTooLarge is the refusal reason of a head whose tree is over Limits.
const ReasonTooLarge = "CheckoutTooLarge"

// withDefaults fills the zero fields of l.
func (l Limits) withDefaults() Limits {
	if l.MaxFileSize == 0 {
		l.MaxFileSize = DefaultLimits.MaxFileSize
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxTotalSize == 0 {
		l.MaxTotalSize = DefaultLimits.MaxTotalSize
	}
	return l
}

// validate names the first negative limit.
func (l Limits) validate() error {
	switch {
	case l.MaxFileSize < 0:
		return configError("limits.max_file_size", "must not be negative")
	case l.MaxFiles < 0:
		return configError("limits.max_files", "must not be negative")
	case l.MaxTotalSize < 0:
		return configError("limits.max_total_size", "must not be negative")
	}
	return nil
}

// tally is what a tree holds so far.
type tally struct {
	files int
	bytes int64
}

// admit adds a file of size bytes named name to t, or says which limit it
// breaks, naming the file and the limit.
func (l Limits) admit(t tally, name string, size int64) (tally, error) {
	t.files++
	t.bytes += size
	switch {
	case size > l.MaxFileSize:
		return t, overLimit("%s: %d bytes, over source.limits.max_file_size (%d)", name, size, l.MaxFileSize)
	case t.files > l.MaxFiles:
		return t, overLimit("%s: more than source.limits.max_files (%d) files", name, l.MaxFiles)
	case t.bytes > l.MaxTotalSize:
		return t, overLimit("%s: the tree reaches %d bytes, over source.limits.max_total_size (%d)", name, t.bytes, l.MaxTotalSize)
	}
	return t, nil
}

// limitError is a tree over Limits: it names the file and the limit. It is
// ErrTooLarge.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }
func (e *limitError) Unwrap() error { return ErrTooLarge }

func overLimit(format string, args ...any) error {
	return &limitError{msg: fmt.Sprintf(format, args...)}
}

// lfsPointer is how a Git LFS pointer file starts
// (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
var lfsPointer = []byte("version https://git-lfs.github.com/spec/v1")

// maxLFSPointer bounds the size of a pointer file: the spec keeps them
// under 1024 bytes.
const maxLFSPointer = 1024

// isLFSPointer reports whether a file's contents are a Git LFS pointer.
func isLFSPointer(data []byte) bool {
	return len(data) <= maxLFSPointer && bytes.HasPrefix(data, lfsPointer)
}

// survey checks the files of tree (but those below skip) against l before
// anything is written, so that a tree over the limits writes nothing, and
// lists what fleetd does not fetch: submodules and Git LFS pointer files,
// as warnings naming them. It reads blob sizes and the contents of small
// files only.
func survey(ctx context.Context, tree *object.Tree, skip map[string]bool, l Limits) ([]string, error) {
	var warnings []string
	var t tally
	w := object.NewTreeWalker(tree, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return warnings, nil
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if e.Mode == filemode.Dir || (len(skip) > 0 && skipped(name, skip)) {
			continue
		}
		if e.Mode == filemode.Submodule {
			warnings = append(warnings, fmt.Sprintf("%s: a submodule (commit %s): fleetd does not fetch submodules, the directory is left out", name, e.Hash))
			continue
		}
		f, err := tree.TreeEntryFile(&e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if t, err = l.admit(t, name, f.Size); err != nil {
			return nil, err
		}
		if e.Mode != filemode.Symlink && f.Size <= maxLFSPointer && f.Size >= int64(len(lfsPointer)) {
			data, err := f.Contents()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if isLFSPointer([]byte(data)) {
				warnings = append(warnings, name+": a Git LFS pointer: fleetd does not fetch LFS objects, the file holds the pointer")
			}
		}
	}
}

// warn hands each warning about commit to f, if set.
func warn(f func(commit, warning string), commit string, warnings []string) {
	if f == nil {
		return
	}
	for _, w := range warnings {
		f(commit, w)
	}
}
