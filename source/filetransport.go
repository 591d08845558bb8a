package source

import (
	"errors"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

// go-git's default file transport runs the git-upload-pack binary; fleetd
// must not need git at run time, so file:// and local paths are served by
// go-git's in-process upload-pack instead. Installing it is process-wide,
// which is why it happens once, here, before any transport is used.
func init() {
	client.InstallProtocol("file", server.NewServer(repoLoader{}))
}

// repoLoader opens bare and non-bare repositories (go-git's filesystem
// loader takes a non-bare worktree for the git directory).
type repoLoader struct{}

func (repoLoader) Load(ep *transport.Endpoint) (storer.Storer, error) {
	repo, err := git.PlainOpen(ep.Path)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, transport.ErrRepositoryNotFound
	}
	if err != nil {
		return nil, err
	}
	return repo.Storer, nil
}
