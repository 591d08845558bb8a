package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	pathpkg "path"
	"path/filepath"
	"slices"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Snapshot is a repository opened for exporting revisions, for `fleetd
// plan --base/--head` and `validate --base`. A local repository (a path or
// file:// URL) is opened in place, read-only: its own branches, tags and
// remote-tracking refs are visible. A remote one is fetched into memory
// (all branches and tags) once, never into a directory. Its methods must
// not run concurrently.
type Snapshot struct {
	g    *git.Repository
	repo string
	red  redactor
	// Limits bound an exported tree (zero fields: DefaultLimits).
	Limits Limits
	// Warn, when set, is told what an exported tree holds that fleetd
	// does not fetch (see Config.Warn).
	Warn func(commit, warning string)
}

// OpenSnapshot opens repo (a local path or file:// URL, or a remote URL).
func OpenSnapshot(ctx context.Context, repo string, auth Auth) (*Snapshot, error) {
	red := auth.secrets(repo)
	g, err := openForExport(ctx, repo, auth, red)
	if err != nil {
		return nil, err
	}
	return &Snapshot{g: g, repo: repo, red: red}, nil
}

// WorktreeRoot is the top directory of a local repository's work tree, or
// "" for a remote or bare one: Export's path is relative to it.
func (s *Snapshot) WorktreeRoot() string {
	wt, err := s.g.Worktree()
	if err != nil {
		return ""
	}
	return wt.Filesystem.Root()
}

// Export writes the full tree of ref into dest (which must be missing or
// empty) and returns the revision with Dir = dest/path. ref is anything
// go-git's ResolveRevision takes: a branch, a tag, a commit (also
// abbreviated) or "HEAD~1"; empty means HEAD.
func (s *Snapshot) Export(ctx context.Context, ref, path, dest string) (Revision, error) {
	return s.ExportExcept(ctx, ref, path, dest, nil)
}

// ExportExcept is Export leaving out the directories in skip (slash
// paths relative to the repository's root), and everything below them.
func (s *Snapshot) ExportExcept(ctx context.Context, ref, path, dest string, skip map[string]bool) (Revision, error) {
	if path == "" {
		path = "."
	}
	if ref == "" {
		ref = "HEAD"
	}
	red := s.red
	what := fmt.Sprintf("export %s ref %s", redactURL(s.repo), ref)
	if err := validatePath(path); err != nil {
		return Revision{}, err
	}
	c, err := resolveCommit(s.g, ref)
	if err != nil {
		return Revision{}, red.wrap(err, what, ErrRefNotFound)
	}
	if err := emptyDir(dest); err != nil {
		return Revision{}, red.wrap(err, what)
	}
	tree, err := c.Tree()
	var warnings []string
	if err == nil {
		warnings, err = writeTree(ctx, tree, dest, skip, s.Limits)
	}
	if err != nil {
		return Revision{}, red.wrap(err, what)
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return Revision{}, red.wrap(err, what)
	}
	warn(s.Warn, c.Hash.String(), warnings)
	return revisionOf(c, ref, abs, path), nil
}

// ReadFile returns the contents of the file name (a slash path from the
// repository's root) at ref, and whether it exists there.
func (s *Snapshot) ReadFile(ref, name string) ([]byte, bool, error) {
	what := fmt.Sprintf("read %s at %s", name, ref)
	c, err := resolveCommit(s.g, ref)
	if err != nil {
		return nil, false, s.red.wrap(err, what, ErrRefNotFound)
	}
	// A symlink is followed inside the tree, as a checkout would.
	for hops := 0; ; hops++ {
		f, err := c.File(name)
		if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, s.red.wrap(err, what)
		}
		data, err := f.Contents()
		if err != nil {
			return nil, false, s.red.wrap(err, what)
		}
		if f.Mode != filemode.Symlink {
			return []byte(data), true, nil
		}
		next := pathpkg.Join(pathpkg.Dir(name), data)
		switch {
		case hops == 8:
			return nil, false, fmt.Errorf("%s: too many symlinks", what)
		case pathpkg.IsAbs(data) || !fs.ValidPath(next):
			return nil, false, fmt.Errorf("%s: symlink to %s leaves the repository", what, data)
		}
		name = next
	}
}

// Changed lists the files (slash paths from the repository's root) that
// differ between the trees of base and head below path: added, removed,
// or with other contents or mode. Git compares subtrees by hash, so what
// did not change costs nothing.
func (s *Snapshot) Changed(ctx context.Context, base, head, path string) ([]string, error) {
	what := fmt.Sprintf("compare %s and %s", base, head)
	trees := make([]*object.Tree, 2)
	for i, ref := range []string{base, head} {
		t, err := s.subtree(ref, path, what)
		if err != nil {
			return nil, err
		}
		if t == nil {
			t = &object.Tree{} // the whole path is added or removed
		}
		trees[i] = t
	}
	changes, err := object.DiffTreeWithOptions(ctx, trees[0], trees[1], nil)
	if err != nil {
		return nil, s.red.wrap(err, what)
	}
	var out []string
	for _, ch := range changes {
		for _, name := range []string{ch.From.Name, ch.To.Name} {
			if name != "" {
				out = append(out, pathpkg.Join(path, name))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// List returns the files (slash paths from the repository's root) below
// path in the tree of ref, reading trees only, no file contents; nothing
// when path is not there.
func (s *Snapshot) List(ref, path string) ([]string, error) {
	t, err := s.subtree(ref, path, fmt.Sprintf("list %s at %s", path, ref))
	if err != nil || t == nil {
		return nil, err
	}
	w := object.NewTreeWalker(t, true, nil)
	defer w.Close()
	var out []string
	for {
		name, e, err := w.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, s.red.wrap(err, "list "+path+" at "+ref)
		}
		if e.Mode != filemode.Dir {
			out = append(out, pathpkg.Join(path, name))
		}
	}
}

// subtree returns the tree of path at ref, or nil when path is not there;
// a path that is there but is not a directory is an error. what names the
// operation in errors.
func (s *Snapshot) subtree(ref, path, what string) (*object.Tree, error) {
	c, err := resolveCommit(s.g, ref)
	if err != nil {
		return nil, s.red.wrap(err, what, ErrRefNotFound)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, s.red.wrap(err, what)
	}
	if path == "." || path == "" {
		return t, nil
	}
	sub, err := t.Tree(path)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		if e, ferr := t.FindEntry(path); ferr == nil && e.Mode != filemode.Dir {
			return nil, fmt.Errorf("%s: %s is not a directory at %s (%s)", what, path, ref, e.Mode)
		}
		return nil, nil
	}
	if err != nil {
		return nil, s.red.wrap(err, what)
	}
	return sub, nil
}

// Kind says what p (a slash path from the repository's root) is in the
// tree of ref: "dir", "file", "symlink" (or another mode's name), or ""
// when it is not there.
func (s *Snapshot) Kind(ref, p string) (string, error) {
	c, err := resolveCommit(s.g, ref)
	if err != nil {
		return "", s.red.wrap(err, "find "+p+" at "+ref, ErrRefNotFound)
	}
	if p == "." || p == "" {
		return "dir", nil
	}
	t, err := c.Tree()
	if err != nil {
		return "", s.red.wrap(err, "find "+p+" at "+ref)
	}
	e, err := t.FindEntry(p)
	switch {
	case errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound):
		return "", nil
	case err != nil:
		return "", s.red.wrap(err, "find "+p+" at "+ref)
	case e.Mode == filemode.Dir:
		return "dir", nil
	case e.Mode == filemode.Symlink:
		return "symlink", nil
	case e.Mode.IsFile():
		return "file", nil
	}
	return e.Mode.String(), nil
}

func openForExport(ctx context.Context, repo string, auth Auth, red redactor) (*git.Repository, error) {
	ep, err := parseURL(repo, "repo")
	if err != nil {
		return nil, err
	}
	if ep.Protocol == "file" {
		g, err := git.PlainOpen(ep.Path) // bare or a worktree's top
		if errors.Is(err, git.ErrRepositoryNotExists) {
			g, err = git.PlainOpenWithOptions(ep.Path, &git.PlainOpenOptions{DetectDotGit: true})
		}
		if err != nil {
			return nil, red.wrap(err, "open "+ep.Path, ErrConfig)
		}
		return g, nil
	}
	if err := auth.validate(ep); err != nil {
		return nil, err
	}
	method, err := auth.transportAuth(ep)
	if err != nil {
		return nil, err
	}
	return fetchToMemory(ctx, repo, method, red)
}

// fetchToMemory fetches all branches and tags of a remote into memory and
// points HEAD where the remote's HEAD points.
func fetchToMemory(ctx context.Context, url string, auth transport.AuthMethod, red redactor) (*git.Repository, error) {
	what := "fetch " + redactURL(url)
	g, err := git.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, red.wrap(err, what)
	}
	remote, err := g.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{url}})
	if err != nil {
		return nil, red.wrap(err, what)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return nil, red.remoteError(err, what)
	}
	err = remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"},
		Auth:     auth,
		Tags:     git.NoTags,
		Force:    true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil, red.remoteError(err, what)
	}
	return g, setHead(g, refs)
}

// setHead makes HEAD what the remote advertised as HEAD.
func setHead(g *git.Repository, refs []*plumbing.Reference) error {
	for _, ref := range refs {
		if ref.Name() != plumbing.HEAD {
			continue
		}
		if ref.Type() == plumbing.SymbolicReference {
			return g.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref.Target()))
		}
		return g.Storer.SetReference(plumbing.NewHashReference(plumbing.HEAD, ref.Hash()))
	}
	return nil
}

// resolveCommit resolves a revision expression to a commit, peeling tags.
func resolveCommit(g *git.Repository, ref string) (*object.Commit, error) {
	h, err := g.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return nil, err
	}
	c, err := peelCommit(g, *h)
	if err != nil {
		return nil, err
	}
	return g.CommitObject(c)
}

// emptyDir makes sure dest exists and holds nothing.
func emptyDir(dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	d, err := os.Open(dest)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); !errors.Is(err, io.EOF) {
		return fmt.Errorf("destination %s is not empty", dest)
	}
	return nil
}
