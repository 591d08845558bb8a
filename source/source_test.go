package source_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/source"
)

const composeV1 = "services:\n  web:\n    image: nginx:1\n"

func open(t testing.TB, cfg source.Config) *source.Repo {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "repo")
	}
	r, err := source.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func mustSync(t testing.TB, r *source.Repo, wantChanged bool) source.Revision {
	t.Helper()
	rev, changed, err := r.Sync(t.Context())
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if changed != wantChanged {
		t.Fatalf("Sync changed = %v, want %v", changed, wantChanged)
	}
	return rev
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v), want it gone", path, err)
	}
}

func TestSyncClonesAndChecksOutPath(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	commit := u.commit("add web\n\nbody", map[string]string{
		"fleets/web/compose.yaml": composeV1,
		"README.md":               "hi\n",
	})
	srv := serveHTTP(t, u, "", "")
	r := open(t, source.Config{URL: srv.repoURL(), Path: "fleets"})
	if _, ok := r.Current(); ok {
		t.Fatal("Current before the first Sync")
	}
	rev := mustSync(t, r, true)
	if rev.Commit != commit || rev.Ref != "main" || rev.Subject != "add web" ||
		rev.Author != "Ada <ada@example.com>" || rev.Time.IsZero() {
		t.Errorf("revision = %+v, want commit %s on main by Ada", rev, commit)
	}
	if !filepath.IsAbs(rev.Dir) || filepath.Base(rev.Dir) != "fleets" {
		t.Errorf("Dir = %s, want an absolute path ending in fleets", rev.Dir)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "web", "compose.yaml")); got != composeV1 {
		t.Errorf("compose.yaml = %q", got)
	}
	if cur, ok := r.Current(); !ok || cur != rev {
		t.Errorf("Current = %+v, %v; want %+v", cur, ok, rev)
	}
}

// The cost of a poll with nothing new is one ref advertisement: no
// upload-pack POST, so no pack is negotiated or transferred.
func TestSyncUnchangedDoesNotFetch(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	r := open(t, source.Config{URL: srv.repoURL()})
	first := mustSync(t, r, true)
	if got := srv.take(); got["POST /fleet.git/git-upload-pack"] == 0 {
		t.Fatalf("the first Sync did not fetch: %v", got)
	}
	for range 3 {
		if rev := mustSync(t, r, false); rev != first {
			t.Fatalf("unchanged Sync = %+v, want %+v", rev, first)
		}
	}
	want := map[string]int{"GET /fleet.git/info/refs?service=git-upload-pack": 3}
	if got := srv.take(); !equalCounts(got, want) {
		t.Errorf("requests for 3 unchanged polls = %v, want only %v", got, want)
	}
	head, err := r.Head(t.Context())
	if err != nil || head != first.Commit {
		t.Errorf("Head = %s, %v; want %s", head, err, first.Commit)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSyncFollowsPushAndKeepsOldTree(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"a/compose.yaml": composeV1, "b/compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	r := open(t, source.Config{URL: srv.repoURL()})
	old := mustSync(t, r, true)

	second := u.commit("two", map[string]string{"a/compose.yaml": "services: {}\n", "b/compose.yaml": ""})
	rev := mustSync(t, r, true)
	if rev.Commit != second || rev.Subject != "two" {
		t.Fatalf("revision = %+v, want %s", rev, second)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "a", "compose.yaml")); got != "services: {}\n" {
		t.Errorf("a/compose.yaml = %q", got)
	}
	assertMissing(t, filepath.Join(rev.Dir, "b"))
	// The previous revision's tree is untouched: the daemon may still run it.
	if got := readFile(t, filepath.Join(old.Dir, "b", "compose.yaml")); got != composeV1 {
		t.Errorf("old tree changed: b/compose.yaml = %q", got)
	}
}

func TestSyncFollowsForcePush(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"compose.yaml": composeV1})
	u.commit("two", map[string]string{"compose.yaml": "services: {two: {image: x}}\n"})
	srv := serveHTTP(t, u, "", "")
	r := open(t, source.Config{URL: srv.repoURL(), AllowRewind: true}) // rewinds are refused by default (TestRewindRefused)
	mustSync(t, r, true)

	u.run("reset", "-q", "--hard", first)
	rewritten := u.commit("two, rewritten", map[string]string{"other.yaml": "x: 1\n"})
	rev := mustSync(t, r, true)
	if rev.Commit != rewritten {
		t.Fatalf("after force-push: %s, want %s", rev.Commit, rewritten)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "compose.yaml")); got != composeV1 {
		t.Errorf("compose.yaml = %q, want the rewritten history's", got)
	}

	// Force-pushing back to a commit the clone already has needs no fetch.
	u.run("reset", "-q", "--hard", first)
	u.run("push", "-q", "-f", "origin", "HEAD:main")
	srv.take()
	if rev := mustSync(t, r, true); rev.Commit != first {
		t.Fatalf("after reset to the first commit: %s, want %s", rev.Commit, first)
	}
	if got := srv.take(); got["POST /fleet.git/git-upload-pack"] != 0 {
		t.Errorf("a known commit was fetched again: %v", got)
	}
}

func TestRefs(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"compose.yaml": composeV1})
	u.run("tag", "v1")
	second := u.commit("two", map[string]string{"compose.yaml": "services: {}\n"})
	u.run("tag", "-a", "-m", "release 2", "v2")
	u.run("push", "-q", "origin", "v1", "v2")
	u.run("checkout", "-q", "-b", "feature")
	feature := u.commit("feature", map[string]string{"f": "1\n"})
	u.run("push", "-q", "origin", "HEAD:feature")
	u.run("tag", "main") // a tag named like the branch: the branch wins
	u.run("push", "-q", "origin", "refs/tags/main")
	srv := serveHTTP(t, u, "", "")

	for _, tc := range []struct{ ref, want string }{
		{"v1", first},
		{"v2", second}, // annotated: peeled to the commit
		{"refs/tags/v2", second},
		{"feature", feature},
		{"main", feature}, // main was pushed from the feature branch by commit()
		{"refs/tags/main", feature},
		{first, first}, // pinned
	} {
		t.Run(tc.ref, func(t *testing.T) {
			r := open(t, source.Config{URL: srv.repoURL(), Ref: tc.ref})
			rev := mustSync(t, r, true)
			if rev.Commit != tc.want || rev.Ref != tc.ref {
				t.Errorf("Sync = %s (ref %s), want %s", rev.Commit, rev.Ref, tc.want)
			}
			mustSync(t, r, false)
		})
	}
}

func TestPinnedCommitNeedsNoNetworkOnceFetched(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	first := u.commit("one", map[string]string{"compose.yaml": composeV1})
	u.commit("two", map[string]string{"compose.yaml": "services: {}\n"})
	srv := serveHTTP(t, u, "", "")
	r := open(t, source.Config{URL: srv.repoURL(), Ref: first})
	mustSync(t, r, true)
	srv.Close()
	head, err := r.Head(t.Context())
	if err != nil || head != first {
		t.Errorf("Head of a pinned commit = %s, %v; want itself", head, err)
	}
	mustSync(t, r, false)
}

func TestRefNotFound(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	for _, ref := range []string{"nope", strings.Repeat("ab", 20)} {
		r := open(t, source.Config{URL: srv.repoURL(), Ref: ref})
		_, _, err := r.Sync(t.Context())
		if !errors.Is(err, source.ErrRefNotFound) || errors.Is(err, source.ErrUnreachable) {
			t.Errorf("ref %s: err = %v, want ErrRefNotFound only", ref, err)
		}
		if err != nil && !strings.Contains(err.Error(), ref) {
			t.Errorf("ref %s: error %q does not name the ref", ref, err)
		}
	}
}

func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	commit := u.commit("one", map[string]string{"compose.yaml": composeV1})
	const secret = "s3cr3t-t0ken-value"
	srv := serveHTTP(t, u, "x-access-token", secret)
	basic := serveHTTP(t, u, "deploy", secret)

	ok := []source.Config{
		{URL: srv.repoURL(), Auth: source.Auth{Token: secret}},
		{URL: basic.repoURL(), Auth: source.Auth{Username: "deploy", Password: secret}},
		{URL: strings.Replace(basic.repoURL(), "://", "://deploy:"+secret+"@", 1)},
	}
	for i, cfg := range ok {
		if rev := mustSync(t, open(t, cfg), true); rev.Commit != commit {
			t.Errorf("case %d: %s, want %s", i, rev.Commit, commit)
		}
	}

	const wrong = "wrong-password-123"
	bad := []source.Config{
		{URL: srv.repoURL(), Auth: source.Auth{Token: wrong}},
		{URL: basic.repoURL(), Auth: source.Auth{Username: "deploy", Password: wrong}},
		{URL: strings.Replace(basic.repoURL(), "://", "://deploy:"+wrong+"@", 1)},
		{URL: basic.repoURL()},
	}
	for i, cfg := range bad {
		_, _, err := open(t, cfg).Sync(t.Context())
		if !errors.Is(err, source.ErrAuth) || !errors.Is(err, source.ErrUnreachable) {
			t.Errorf("case %d: err = %v, want ErrAuth and ErrUnreachable", i, err)
		}
		if err != nil && (strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), secret)) {
			t.Errorf("case %d: error leaks the secret: %v", i, err)
		}
		if err != nil && !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("case %d: error does not name the URL: %v", i, err)
		}
	}
}

func TestSSH(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	commit := u.commit("one", map[string]string{"compose.yaml": composeV1})
	dir := t.TempDir()
	key, pub := writeClientKey(t, dir, "")
	srv := serveSSH(t, u, pub)
	known := writeKnownHosts(t, dir, srv.addr, srv.hostKey.PublicKey())
	auth := source.Auth{SSHKeyFile: key, KnownHostsFile: known}

	r := open(t, source.Config{URL: sshURL(srv.addr), Auth: auth})
	if rev := mustSync(t, r, true); rev.Commit != commit {
		t.Fatalf("ssh Sync = %s, want %s", rev.Commit, commit)
	}
	mustSync(t, r, false)

	t.Run("passphrase", func(t *testing.T) {
		dir := t.TempDir()
		key, pub := writeClientKey(t, dir, "correct horse")
		srv := serveSSH(t, u, pub)
		known := writeKnownHosts(t, dir, srv.addr, srv.hostKey.PublicKey())
		r := open(t, source.Config{URL: sshURL(srv.addr), Auth: source.Auth{
			SSHKeyFile: key, SSHKeyPassphrase: "correct horse", KnownHostsFile: known}})
		mustSync(t, r, true)
	})
	t.Run("unknown host", func(t *testing.T) {
		otherKnown := writeKnownHosts(t, t.TempDir(), "127.0.0.1:1", srv.hostKey.PublicKey())
		r := open(t, source.Config{URL: sshURL(srv.addr), Auth: source.Auth{SSHKeyFile: key, KnownHostsFile: otherKnown}})
		_, _, err := r.Sync(t.Context())
		if !errors.Is(err, source.ErrAuth) || !strings.Contains(err.Error(), srv.addr) {
			t.Errorf("err = %v, want ErrAuth naming %s", err, srv.addr)
		}
	})
	t.Run("changed host key", func(t *testing.T) {
		wrongKnown := writeKnownHosts(t, t.TempDir(), srv.addr, newSigner(t).PublicKey())
		r := open(t, source.Config{URL: sshURL(srv.addr), Auth: source.Auth{SSHKeyFile: key, KnownHostsFile: wrongKnown}})
		_, _, err := r.Sync(t.Context())
		if !errors.Is(err, source.ErrAuth) || !strings.Contains(err.Error(), srv.addr) {
			t.Errorf("err = %v, want ErrAuth naming %s", err, srv.addr)
		}
	})
	t.Run("key not authorised", func(t *testing.T) {
		other, _ := writeClientKey(t, t.TempDir(), "")
		r := open(t, source.Config{URL: sshURL(srv.addr), Auth: source.Auth{SSHKeyFile: other, KnownHostsFile: known}})
		_, _, err := r.Sync(t.Context())
		if !errors.Is(err, source.ErrAuth) {
			t.Errorf("err = %v, want ErrAuth", err)
		}
	})
}

func TestServerDownKeepsRevision(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	dir := filepath.Join(t.TempDir(), "repo")
	r := open(t, source.Config{URL: srv.repoURL(), Dir: dir})
	rev := mustSync(t, r, true)
	srv.Close()

	_, _, err := r.Sync(t.Context())
	if !errors.Is(err, source.ErrUnreachable) || errors.Is(err, source.ErrAuth) {
		t.Fatalf("Sync with the server down: %v, want ErrUnreachable", err)
	}
	if _, err := r.Head(t.Context()); !errors.Is(err, source.ErrUnreachable) {
		t.Errorf("Head with the server down: %v, want ErrUnreachable", err)
	}
	if cur, ok := r.Current(); !ok || cur != rev {
		t.Errorf("Current = %+v, %v; want %+v", cur, ok, rev)
	}
	if got := readFile(t, filepath.Join(rev.Dir, "compose.yaml")); got != composeV1 {
		t.Errorf("tree changed: %q", got)
	}

	// A restart while the server is still down: the revision is read from
	// the clone, without the network.
	again := open(t, source.Config{URL: srv.repoURL(), Dir: dir})
	if cur, ok := again.Current(); !ok || cur != rev {
		t.Errorf("Current after reopen = %+v, %v; want %+v", cur, ok, rev)
	}
}

func TestReopenResumesWithoutFetch(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"fleets/web/compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	cfg := source.Config{URL: srv.repoURL(), Path: "fleets", Dir: filepath.Join(t.TempDir(), "repo")}
	rev := mustSync(t, open(t, cfg), true)

	srv.take()
	r := open(t, cfg)
	if cur, ok := r.Current(); !ok || cur != rev {
		t.Fatalf("Current after reopen = %+v, %v; want %+v", cur, ok, rev)
	}
	if got := srv.take(); len(got) != 0 {
		t.Errorf("Open used the network: %v", got)
	}
	mustSync(t, r, false)
	if got := srv.take(); got["POST /fleet.git/git-upload-pack"] != 0 {
		t.Errorf("Sync after reopen fetched: %v", got)
	}
}

// file:// and local paths are served in-process: no git binary at run time.
func TestLocalPathWithoutGitBinary(t *testing.T) { // not parallel: it empties PATH
	u := newUpstream(t)
	commit := u.commit("one", map[string]string{"compose.yaml": composeV1})
	for _, url := range []string{u.bare, "file://" + u.bare, u.work} {
		r := open(t, source.Config{URL: url})
		t.Setenv("PATH", "")
		if rev := mustSync(t, r, true); rev.Commit != commit {
			t.Errorf("%s: %s, want %s", url, rev.Commit, commit)
		}
		mustSync(t, r, false)
		t.Setenv("PATH", os.Getenv("PATH"))
	}
}

func TestKeepPrunesOldTrees(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	srv := serveHTTP(t, u, "", "")
	dir := filepath.Join(t.TempDir(), "repo")
	u.commit("c0", map[string]string{"n": "0\n"})
	r := open(t, source.Config{URL: srv.repoURL(), Dir: dir, Keep: 2})
	var revs []source.Revision
	for i := range 4 {
		if i > 0 {
			u.commit("c", map[string]string{"n": strings.Repeat("x", i) + "\n"})
		}
		revs = append(revs, mustSync(t, r, true))
	}
	entries, err := os.ReadDir(filepath.Join(dir, "trees"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%d trees kept, want 2", len(entries))
	}
	assertMissing(t, revs[0].Dir)
	// A pruned commit is written again from the clone, offline.
	srv.Close()
	back, err := r.Checkout(t.Context(), revs[0].Commit)
	if err != nil || readFile(t, filepath.Join(back.Dir, "n")) != "0\n" {
		t.Errorf("Checkout of a pruned commit: %+v, %v", back, err)
	}
	if cur, _ := r.Current(); cur.Commit != revs[3].Commit {
		t.Errorf("Checkout changed Current to %s", cur.Commit)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg   source.Config
		field string
	}{
		{source.Config{Dir: dir}, "url"},
		{source.Config{URL: "ftp://example.com/x.git", Dir: dir}, "url"},
		{source.Config{URL: "https://example.com/x.git"}, "dir"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Ref: "a..b"}, "ref"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Path: "../up"}, "path"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Path: "/abs"}, "path"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Keep: -1}, "keep"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Auth: source.Auth{Token: "t", Password: "p"}}, "auth.token"},
		{source.Config{URL: "https://example.com/x.git", Dir: dir, Auth: source.Auth{SSHKeyFile: "k"}}, "auth.ssh_key_file"},
		{source.Config{URL: "git@example.com:ops/fleet.git", Dir: dir}, "auth.ssh_key_file"},
		{source.Config{URL: "git@example.com:ops/fleet.git", Dir: dir, Auth: source.Auth{SSHKeyFile: "k"}}, "auth.known_hosts_file"},
		{source.Config{URL: "ssh://git@example.com/x.git", Dir: dir, Auth: source.Auth{Token: "t"}}, "auth.token"},
		{source.Config{URL: "git@example.com:x.git", Dir: dir, Auth: source.Auth{SSHKeyFile: filepath.Join(dir, "nokey"), KnownHostsFile: "kh"}}, "auth.ssh_key_file"},
	} {
		_, err := source.Open(t.Context(), tc.cfg)
		if !errors.Is(err, source.ErrConfig) || !strings.Contains(err.Error(), "source "+tc.field+":") {
			t.Errorf("%+v: err = %v, want ErrConfig naming %s", tc.cfg, err, tc.field)
		}
	}
}

// A fleetd killed while writing a tree leaves a temporary directory and the
// previous current link: reopening reports the previous revision, and the
// next checkout removes the leftover.
func TestInterruptedCheckout(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.commit("one", map[string]string{"compose.yaml": composeV1})
	srv := serveHTTP(t, u, "", "")
	cfg := source.Config{URL: srv.repoURL(), Dir: filepath.Join(t.TempDir(), "repo")}
	rev := mustSync(t, open(t, cfg), true)
	leftover := filepath.Join(cfg.Dir, "trees", ".tmp-123")
	if err := os.MkdirAll(filepath.Join(leftover, "half"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := open(t, cfg)
	if cur, ok := r.Current(); !ok || cur != rev {
		t.Fatalf("Current = %+v, %v; want %+v", cur, ok, rev)
	}
	u.commit("two", map[string]string{"compose.yaml": "services: {}\n"})
	mustSync(t, r, true)
	assertMissing(t, leftover)

	// A current link whose tree is gone is no revision: Sync writes it again.
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "trees")); err != nil {
		t.Fatal(err)
	}
	r = open(t, cfg)
	if _, ok := r.Current(); ok {
		t.Fatal("Current reports a revision whose tree is gone")
	}
	mustSync(t, r, true)
}
