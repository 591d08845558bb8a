package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// remoteName names the remote only in refspecs and messages: the remote is
// never written into the clone's config, so a URL with credentials in it
// never lands on disk.
const remoteName = "origin"

// target is what a ref resolved to on the remote.
type target struct {
	name plumbing.ReferenceName // empty for a pinned commit
	hash plumbing.Hash          // the commit (annotated tags peeled)
}

func (r *Repo) remote() *git.Remote {
	return git.NewRemote(r.git.Storer, &config.RemoteConfig{Name: remoteName, URLs: []string{r.cfg.URL}})
}

// resolve asks the remote for the ref's commit: one ls-remote, no fetch. A
// pinned commit resolves to itself without the network.
func (r *Repo) resolve(ctx context.Context) (target, error) {
	if isCommit(r.cfg.Ref) {
		return target{hash: plumbing.NewHash(r.cfg.Ref)}, nil
	}
	refs, err := r.remote().ListContext(ctx, &git.ListOptions{Auth: r.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return target{}, r.red.remoteError(err, r.what("list"))
	}
	t, err := findRef(refs, r.cfg.Ref)
	if err != nil {
		return target{}, r.red.remoteError(err, r.what("list"))
	}
	return t, nil
}

// what names the operation, the URL (redacted) and the ref for messages.
func (r *Repo) what(op string) string {
	return fmt.Sprintf("%s %s ref %s", op, redactURL(r.cfg.URL), r.cfg.Ref)
}

// refCandidates are the full names a short ref may stand for, in order of
// preference: a branch wins over a tag of the same name (write refs/tags/x
// to follow the tag).
func refCandidates(ref string) []plumbing.ReferenceName {
	if ref == "HEAD" || strings.HasPrefix(ref, "refs/") {
		return []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	}
	return []plumbing.ReferenceName{
		plumbing.NewBranchReferenceName(ref),
		plumbing.NewTagReferenceName(ref),
	}
}

// findRef picks ref out of an advertisement, peeling annotated tags and
// following a symbolic HEAD.
func findRef(refs []*plumbing.Reference, ref string) (target, error) {
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	for _, name := range refCandidates(ref) {
		adv, ok := byName[name]
		if !ok {
			continue
		}
		if adv.Type() == plumbing.SymbolicReference {
			name = adv.Target()
			if adv, ok = byName[name]; !ok {
				continue
			}
		}
		hash := adv.Hash()
		if peeled, ok := byName[name+"^{}"]; ok {
			hash = peeled.Hash()
		}
		return target{name: name, hash: hash}, nil
	}
	return target{}, fmt.Errorf("%w: no branch or tag %q on the remote", ErrRefNotFound, ref)
}

// fetch makes t's commit available locally and returns it. Refs are fetched
// with force, so rewritten history is followed. A commit already present
// (say, a revert by force-push) needs no fetch at all.
func (r *Repo) fetch(ctx context.Context, t target) (plumbing.Hash, error) {
	if t.name == "" {
		return t.hash, r.fetchPinned(ctx, t.hash)
	}
	if r.hasCommit(t.hash) {
		return t.hash, nil
	}
	spec := config.RefSpec("+" + t.name + ":" + t.name)
	if err := r.fetchSpecs(ctx, spec); err != nil {
		return plumbing.ZeroHash, err
	}
	ref, err := r.git.Reference(t.name, true)
	if err != nil {
		return plumbing.ZeroHash, r.red.wrap(err, r.what("fetch"), ErrRefNotFound)
	}
	return peelCommit(r.git, ref.Hash())
}

// fetchPinned fetches every branch and tag until the pinned commit is
// present, then asks for the commit itself (servers that allow it).
func (r *Repo) fetchPinned(ctx context.Context, h plumbing.Hash) error {
	if r.hasCommit(h) {
		return nil
	}
	if err := r.fetchSpecs(ctx, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return err
	}
	if r.hasCommit(h) {
		return nil
	}
	// Most servers refuse a bare commit that no ref points at; the first
	// fetch proved the server reachable, so a refusal means "not there".
	_ = r.fetchSpecs(ctx, config.RefSpec(h.String()+":refs/fleetd/pinned"))
	if r.hasCommit(h) {
		return nil
	}
	return r.red.wrap(fmt.Errorf("commit %s is on no branch or tag of the remote", h), r.what("fetch"), ErrRefNotFound)
}

func (r *Repo) fetchSpecs(ctx context.Context, specs ...config.RefSpec) error {
	err := r.remote().FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs,
		Auth:     r.auth,
		Tags:     git.NoTags,
		Force:    true,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return r.red.remoteError(err, r.what("fetch"))
}

func (r *Repo) hasCommit(h plumbing.Hash) bool {
	_, err := r.git.CommitObject(h)
	return err == nil
}

// peelCommit follows annotated tags to the commit.
func peelCommit(g *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for range 8 {
		if _, err := g.CommitObject(h); err == nil {
			return h, nil
		}
		tag, err := g.TagObject(h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%w: %s is not a commit or tag", ErrRefNotFound, h)
		}
		h = tag.Target
	}
	return plumbing.ZeroHash, fmt.Errorf("%w: tag chain at %s too deep", ErrRefNotFound, h)
}
