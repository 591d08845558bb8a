// Package source follows the fleet repository with go-git: it keeps a clone
// in fleetd's state directory, asks the remote for the configured ref's head
// on every poll and fetches only when it moved, and materialises each
// revision as an immutable directory tree that fleets.Load reads.
//
// It owns: the clone (Config.Dir), transport authentication (HTTPS token or
// basic auth, SSH key with strict known_hosts checking), the resolution of a
// ref (branch, tag or pinned commit) to a commit, the checked-out trees, and
// the classification of its errors (ErrUnreachable, ErrAuth,
// ErrRefNotFound, ErrConfig, ErrRefused) so that the daemon can decide
// between backoff and reporting, and the admission of a new head before it
// is checked out (admit.go): signed by a trusted key when Config.Trust is
// set (OpenPGP with go-git's Commit.Verify; SSH signatures, git's
// gpg.format=ssh, against an allowed_signers file with
// github.com/hiddeco/sshsig), and descending from the current revision
// unless Config.AllowRewind. A refused head is a *RefusedError and the
// current revision stays.
//
// It must not: run the git binary (file:// and local paths are served by
// go-git's in-process upload-pack, installed for the "file" scheme when this
// package is initialised); import engine, notify, server or reconcile; read
// credentials from anywhere but Auth; print a token or password (every error
// it returns is redacted); prompt for anything (an unknown SSH host is an
// error naming the host).
//
// Layout of Config.Dir:
//
//	git/             bare repository (objects and fetched refs)
//	trees/<commit>/  the full tree of a checked-out commit, written under a
//	                 temporary name and renamed when complete
//	current          symlink to trees/<commit>, swapped atomically after a
//	                 checkout; it is what Current reports after a restart
//
// Config.Dir and git/ are 0700 (fixed when Open finds them wider); the
// trees keep Git's modes, as containers bind-mount them.
//
// A checked-out tree is never modified in place, so a Revision's Dir stays
// valid while a newer commit is checked out; the last Config.Keep trees are
// kept and Checkout re-materialises any commit already fetched. A tree is
// checked against Config.Limits before anything of it is written (Sync
// refuses a head over them, ReasonTooLarge); submodules are left out and
// Git LFS pointers written as they are, each named to Config.Warn.
package source
