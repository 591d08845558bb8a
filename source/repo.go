package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Revision is a commit checked out on disk.
type Revision struct {
	Commit  string    // 40 hex
	Ref     string    // the ref followed (Config.Ref)
	Dir     string    // absolute directory of the tree at Config.Path; what fleets.Load reads
	Root    string    // absolute directory of the whole tree, Dir's checkout
	Subject string    // first line of the commit message
	Author  string    // "Name <email>"
	Time    time.Time // committer time
}

// Repo is fleetd's clone of the fleet repository. Sync and Head may be
// called from one goroutine at a time (they serialise); Current from any.
type Repo struct {
	cfg  Config
	ep   *transport.Endpoint
	auth transport.AuthMethod
	red  redactor
	git  *git.Repository

	syncMu sync.Mutex // serialises Sync and Checkout

	mu  sync.Mutex // guards cur
	cur *Revision
}

// Open validates cfg (errors are ErrConfig and name the field) and opens
// the clone in cfg.Dir, creating an empty one if there is none. It does not
// touch the network: the first Sync fetches. So fleetd starts, and Current
// reports the last checked-out revision, while the Git server is down.
func Open(ctx context.Context, cfg Config) (*Repo, error) {
	cfg, ep, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	red := cfg.Auth.secrets(cfg.URL)
	auth, err := cfg.Auth.transportAuth(ep)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.Dir, filepath.Join(cfg.Dir, "git")} {
		if err := private(dir); err != nil {
			return nil, red.wrap(err, "create source dir")
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "trees"), 0o755); err != nil {
		return nil, red.wrap(err, "create source dir")
	}
	g, err := openOrInit(filepath.Join(cfg.Dir, "git"))
	if err != nil {
		return nil, red.wrap(err, "open clone in "+cfg.Dir)
	}
	r := &Repo{cfg: cfg, ep: ep, auth: auth, red: red, git: g}
	r.cur = r.loadCurrent()
	return r, nil
}

func openOrInit(dir string) (*git.Repository, error) {
	g, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return git.PlainInit(dir, true)
	}
	return g, err
}

// Head asks the remote which commit the ref points at, without fetching.
// A pinned commit is its own head.
func (r *Repo) Head(ctx context.Context) (string, error) {
	t, err := r.resolve(ctx)
	if err != nil {
		return "", err
	}
	return t.hash.String(), nil
}

// Sync brings the checkout to the remote's head of the ref. When the head
// is the commit already checked out it returns (Current, false, nil) having
// listed the remote's refs only, with no fetch. Otherwise it fetches (with
// force, following rewritten history), checks the head (admitHead: its
// signature with Config.Trust, and that it descends from the current
// revision unless Config.AllowRewind; a *RefusedError otherwise), writes the
// commit's tree and makes it current. On error the previous revision stays
// current.
func (r *Repo) Sync(ctx context.Context) (Revision, bool, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	t, err := r.resolve(ctx)
	if err != nil {
		return Revision{}, false, err
	}
	cur, ok := r.Current()
	if ok && cur.Commit == t.hash.String() {
		return cur, false, nil
	}
	h, err := r.fetch(ctx, t)
	if err != nil {
		return Revision{}, false, err
	}
	if ok && cur.Commit == h.String() {
		return cur, false, nil
	}
	if err := r.admitHead(ctx, h); err != nil {
		return Revision{}, false, err
	}
	rev, err := r.checkout(ctx, h)
	if le := (*limitError)(nil); errors.As(err, &le) { // no retry takes this commit: refused as untrusted ones are
		return Revision{}, false, &RefusedError{Commit: h.String(), Reason: ReasonTooLarge, Why: le.msg}
	}
	if err != nil {
		return Revision{}, false, err
	}
	return rev, true, nil
}

// Current is the last checked-out revision; after a restart it is read from
// the clone.
func (r *Repo) Current() (Revision, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return Revision{}, false
	}
	return *r.cur, true
}

// Checkout returns the tree of a commit already fetched, writing it again if
// it was pruned, without making it current and without the network. The
// daemon uses it to go back to its last good revision.
func (r *Repo) Checkout(ctx context.Context, commit string) (Revision, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if !isCommit(commit) {
		return Revision{}, r.red.wrap(nil, "checkout "+commit+": not a 40-hex commit", ErrRefNotFound)
	}
	h := plumbing.NewHash(commit)
	c, err := r.git.CommitObject(h)
	if err != nil {
		return Revision{}, r.red.wrap(err, "checkout "+commit, ErrRefNotFound)
	}
	dir, err := r.materialize(ctx, c)
	if err != nil {
		return Revision{}, err
	}
	return revisionOf(c, r.cfg.Ref, dir, r.cfg.Path), nil
}
