package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Export writes the full tree of ref into dest (which must be missing or
// empty) for `fleetd plan --base/--head`, and returns the revision with Dir
// = dest/path. ref is anything go-git's ResolveRevision takes: a branch, a
// tag, a commit (also abbreviated) or "HEAD~1"; empty means HEAD.
//
// A local repository (a path or file:// URL) is opened in place, read-only:
// its own branches, tags and remote-tracking refs are visible. A remote one
// is fetched into memory (all branches and tags), never into a directory.
// To export several revisions of a remote, open a Snapshot once.
func Export(ctx context.Context, repo, ref, path, dest string, auth Auth) (Revision, error) {
	s, err := OpenSnapshot(ctx, repo, auth)
	if err != nil {
		return Revision{}, err
	}
	return s.Export(ctx, ref, path, dest)
}

// Snapshot is a repository opened for exporting revisions: a local one in
// place, a remote one fetched into memory once. Its Export calls must not
// run concurrently.
type Snapshot struct {
	g    *git.Repository
	repo string
	red  redactor
}

// OpenSnapshot opens repo for Export; see Export for what it accepts.
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

// Export writes the tree of ref into dest, as the package's Export does.
func (s *Snapshot) Export(ctx context.Context, ref, path, dest string) (Revision, error) {
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
	if err == nil {
		err = writeTree(ctx, tree, dest)
	}
	if err != nil {
		return Revision{}, red.wrap(err, what)
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return Revision{}, red.wrap(err, what)
	}
	return revisionOf(c, ref, abs, path), nil
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
