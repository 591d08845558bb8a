package source

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

const (
	treesDir    = "trees"
	currentLink = "current"
	tmpPrefix   = ".tmp-"
)

// checkout writes commit h's tree (unless already on disk), makes it current
// and prunes old trees.
func (r *Repo) checkout(ctx context.Context, h plumbing.Hash) (Revision, error) {
	c, err := r.git.CommitObject(h)
	if err != nil {
		return Revision{}, r.red.wrap(err, r.what("checkout"), ErrRefNotFound)
	}
	dir, err := r.materialize(ctx, c)
	if err != nil {
		return Revision{}, err
	}
	if err := r.setCurrent(h); err != nil {
		return Revision{}, r.red.wrap(err, r.what("checkout"))
	}
	rev := revisionOf(c, r.cfg.Ref, dir, r.cfg.Path)
	r.mu.Lock()
	r.cur = &rev
	r.mu.Unlock()
	r.prune(h.String())
	return rev, nil
}

// materialize returns the directory holding c's tree, writing it under a
// temporary name and renaming it when complete: a tree directory is either
// whole or absent, even if fleetd is killed mid-write. A tree over
// Config.Limits is not written (ErrTooLarge). What it holds but fleetd does
// not fetch (submodules, LFS pointers) goes to Config.Warn when it is
// written.
func (r *Repo) materialize(ctx context.Context, c *object.Commit) (string, error) {
	dir := filepath.Join(r.cfg.Dir, treesDir, c.Hash.String())
	if _, err := os.Stat(dir); err == nil {
		now := time.Now()
		return dir, os.Chtimes(dir, now, now) // most recently used: pruned last
	}
	tree, err := c.Tree()
	if err != nil {
		return "", r.red.wrap(err, r.what("checkout"))
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), tmpPrefix)
	if err != nil {
		return "", r.red.wrap(err, r.what("checkout"))
	}
	warnings, err := writeTree(ctx, tree, tmp, nil, r.cfg.Limits)
	if err != nil {
		os.RemoveAll(tmp)
		return "", r.red.wrap(err, r.what("checkout "+c.Hash.String()))
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", r.red.wrap(err, r.what("checkout"))
	}
	warn(r.cfg.Warn, c.Hash.String(), warnings)
	return dir, nil
}

// setCurrent points the current symlink at h's tree, atomically.
func (r *Repo) setCurrent(h plumbing.Hash) error {
	link := filepath.Join(r.cfg.Dir, currentLink)
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(treesDir, h.String()), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// lastTaken is the commit the current symlink names, whether or not its
// tree and commit are still there: the record admitHead measures a new
// head's lineage from.
func (r *Repo) lastTaken() (string, bool) {
	if cur, ok := r.Current(); ok {
		return cur.Commit, true
	}
	target, err := os.Readlink(filepath.Join(r.cfg.Dir, currentLink))
	if err != nil {
		return "", false
	}
	commit := filepath.Base(target)
	return commit, isCommit(commit)
}

// loadCurrent reads the revision the current symlink names, if its tree and
// commit are both there.
func (r *Repo) loadCurrent() *Revision {
	target, err := os.Readlink(filepath.Join(r.cfg.Dir, currentLink))
	if err != nil {
		return nil
	}
	commit := filepath.Base(target)
	if !isCommit(commit) {
		return nil
	}
	dir := filepath.Join(r.cfg.Dir, treesDir, commit)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	c, err := r.git.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil
	}
	rev := revisionOf(c, r.cfg.Ref, dir, r.cfg.Path)
	return &rev
}

// prune removes leftovers of interrupted writes and all but the Keep most
// recently used trees; the current tree is always kept.
func (r *Repo) prune(current string) {
	root := filepath.Join(r.cfg.Dir, treesDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type tree struct {
		name string
		used time.Time
	}
	var trees []tree
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) || !isCommit(e.Name()) {
			os.RemoveAll(filepath.Join(root, e.Name()))
			continue
		}
		if info, err := e.Info(); err == nil && e.Name() != current {
			trees = append(trees, tree{e.Name(), info.ModTime()})
		}
	}
	slices.SortFunc(trees, func(a, b tree) int { return b.used.Compare(a.used) })
	for i, t := range trees {
		if i+1 >= r.cfg.Keep {
			os.RemoveAll(filepath.Join(root, t.name))
		}
	}
}
