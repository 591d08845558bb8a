package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// writeTree writes every file of tree under dest: regular files with their
// executable bit, symlinks as symlinks; submodules are left out. The tree
// is checked against lim first (survey), so a tree over the limits writes
// nothing; the warnings name the submodules and Git LFS pointer files
// written as they are. All writes go through an os.Root, so a crafted tree
// (an entry named "..", a file under a symlinked directory) cannot write
// outside dest.
func writeTree(ctx context.Context, tree *object.Tree, dest string, skip map[string]bool, lim Limits) ([]string, error) {
	warnings, err := survey(ctx, tree, skip, lim.withDefaults())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	made := map[string]bool{".": true} // directories created so far
	files := tree.Files()
	defer files.Close()
	for {
		f, err := files.Next()
		if errors.Is(err, io.EOF) {
			return warnings, nil
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(skip) > 0 && skipped(f.Name, skip) {
			continue
		}
		if err := writeFile(root, f, made); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
}

// skipped reports whether a file lies in a directory skip names.
func skipped(name string, skip map[string]bool) bool {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if skip[dir] {
			return true
		}
	}
	return false
}

func writeFile(root *os.Root, f *object.File, made map[string]bool) error {
	name := filepath.FromSlash(f.Name)
	if !filepath.IsLocal(name) {
		return errors.New("path escapes the tree")
	}
	if dir := path.Dir(f.Name); !made[dir] {
		if err := root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
			return err
		}
		for ; dir != "."; dir = path.Dir(dir) {
			made[dir] = true
		}
	}
	if f.Mode == filemode.Symlink {
		target, err := f.Contents()
		if err != nil {
			return err
		}
		return root.Symlink(target, name)
	}
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	return copyBlob(root, name, f, perm)
}

func copyBlob(root *os.Root, name string, f *object.File, perm os.FileMode) error {
	src, err := f.Reader()
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(dst, src, f.Size); err != nil { // the size survey admitted
		dst.Close()
		return err
	}
	return dst.Close()
}

// subject is the first line of a commit message.
func subject(msg string) string {
	for i, c := range msg {
		if c == '\n' || c == '\r' {
			return msg[:i]
		}
	}
	return msg
}

// revisionOf describes commit c checked out at root.
func revisionOf(c *object.Commit, ref, root, subPath string) Revision {
	return Revision{
		Commit:  c.Hash.String(),
		Ref:     ref,
		Dir:     filepath.Join(root, filepath.FromSlash(subPath)),
		Root:    root,
		Subject: subject(c.Message),
		Author:  fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Time:    c.Committer.When,
	}
}
