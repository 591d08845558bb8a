package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Refusal reasons, CamelCase as the agent's condition reasons are.
const (
	ReasonUntrusted = "UntrustedCommit" // unsigned, a bad signature, or a key not trusted
	ReasonRewind    = "Rewind"          // not a descendant of the last revision taken
)

// ErrRefused: the remote's head is not taken (untrusted or a rewind); the
// previous revision stays current. Retrying cannot help until the head
// moves.
var ErrRefused = errors.New("revision refused")

// RefusedError is a head the source will not hand over: Sync returns it
// (errors.As) and keeps the previous revision current. It is ErrRefused.
type RefusedError struct {
	Commit string // 40 hex
	Reason string // ReasonUntrusted or ReasonRewind
	Why    string // for people: what is wrong with it
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("revision %s refused: %s", short(e.Commit), e.Why)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// short abbreviates a commit as the agent's messages do.
func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// lineage is how a new head relates to the last revision taken.
type lineage int

const (
	lineFirst     lineage = iota // nothing taken before (or a pinned commit): not checked
	lineDescends                 // the head descends from it (or is it)
	lineRewind                   // the head is one of its ancestors: history went back
	lineUnrelated                // neither: history was rewritten
	lineUnknown                  // the last revision's commit is gone from the clone: lineage cannot be told
)

// admission is everything admit decides from.
type admission struct {
	Head, Prev  string // commits; Prev "" when nothing was taken
	Sig         signature
	Line        lineage
	AllowRewind bool
}

// admit decides whether a head may be handed over: with trust configured
// it must be signed by a trusted key; unless rewinds are allowed it must
// descend from the last revision taken. It returns nil or why not. It is
// pure.
func admit(a admission) *RefusedError {
	refuse := func(reason, why string) *RefusedError {
		return &RefusedError{Commit: a.Head, Reason: reason, Why: why}
	}
	switch a.Sig.State {
	case sigUnsigned, sigUnknownKey, sigBad:
		return refuse(ReasonUntrusted, a.Sig.Why)
	}
	if a.AllowRewind {
		return nil
	}
	switch a.Line {
	case lineRewind:
		return refuse(ReasonRewind, fmt.Sprintf("it is an ancestor of %s, the last revision taken: the branch was moved back (set source.allow_rewind to follow it)", short(a.Prev)))
	case lineUnrelated:
		return refuse(ReasonRewind, fmt.Sprintf("it does not descend from %s, the last revision taken: history was rewritten (set source.allow_rewind to follow it)", short(a.Prev)))
	case lineUnknown:
		return refuse(ReasonRewind, fmt.Sprintf("%s, the last revision taken, is gone from fleetd's clone, so whether it descends from it cannot be told (set source.allow_rewind to follow it)", short(a.Prev)))
	}
	return nil
}

// lineOf tells how head relates to prev, walking head's history with
// go-git (Commit.IsAncestor).
func lineOf(ctx context.Context, head, prev *object.Commit) (lineage, error) {
	if prev == nil {
		return lineFirst, nil
	}
	if head.Hash == prev.Hash {
		return lineDescends, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if ok, err := prev.IsAncestor(head); err != nil {
		return 0, err
	} else if ok {
		return lineDescends, nil
	}
	if ok, err := head.IsAncestor(prev); err != nil {
		return 0, err
	} else if ok {
		return lineRewind, nil
	}
	return lineUnrelated, nil
}

// admitHead checks a fetched head before it is checked out: its signature
// (with Config.Trust) and its lineage from the current revision (unless
// Config.AllowRewind, or the ref pins a commit: moving the pin is the
// operator's own choice).
func (r *Repo) admitHead(ctx context.Context, h plumbing.Hash) error {
	head, err := r.git.CommitObject(h)
	if err != nil {
		return r.red.wrap(err, r.what("verify"), ErrRefNotFound)
	}
	a := admission{Head: h.String(), Sig: r.cfg.Trust.check(head), AllowRewind: r.cfg.AllowRewind || isCommit(r.cfg.Ref)}
	if last, ok := r.lastTaken(); ok && !a.AllowRewind {
		a.Prev = last
		prev, err := r.git.CommitObject(plumbing.NewHash(last))
		switch {
		case errors.Is(err, plumbing.ErrObjectNotFound):
			a.Line = lineUnknown // never "first": that would let any head through
		case err != nil:
			return r.red.wrap(err, r.what("verify"))
		default:
			if a.Line, err = lineOf(ctx, head, prev); err != nil {
				return r.red.wrap(err, r.what("verify"))
			}
		}
	}
	if refused := admit(a); refused != nil {
		return refused
	}
	return nil
}
